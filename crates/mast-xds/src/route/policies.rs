//! Per-route policies of a VirtualService HTTP rule, as Istio translates them: retries
//! (`route/retry/retry.go`), fault injection, CORS, header operations, timeouts and the
//! percentage conversions they share. Each function turns one Istio message into the Envoy
//! message that carries it; nothing here knows about services or virtual hosts.

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, RuntimeFractionalPercent,
};
use envoy_types::pb::envoy::config::route::v3::RetryPolicy;
use envoy_types::pb::envoy::config::route::v3::retry_policy::{
    RetryBackOff, RetryHostPredicate, RetryPriority, retry_host_predicate, retry_priority,
};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::FaultDelay;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy as EnvoyCors;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::fault_abort::ErrorType;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{FaultAbort, HttpFault};
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType;
use envoy_types::pb::google::protobuf::{BoolValue, Duration as PbDuration, UInt32Value};
use mast_config::networking::virtual_service::{
    CorsPolicy, HeaderOperations, Headers, HttpFaultAbort, HttpFaultDelay, HttpFaultInjection,
    HttpRetry, UnmatchedPreflights,
};
use mast_config::types::Percent;
use mast_config::types::grpc_status_code;

use super::matching::string_matcher;

/// Istio's default `retryOn` when a route sets no `retries`.
pub const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";
/// Istio's default number of retries.
pub const DEFAULT_NUM_RETRIES: u32 = 2;
/// Istio's `HostSelectionRetryMaxAttempts`.
pub const HOST_SELECTION_RETRY_MAX_ATTEMPTS: i64 = 5;
/// The retry host predicate that avoids hosts already tried.
pub const PREVIOUS_HOSTS_PREDICATE: &str = "envoy.retry_host_predicates.previous_hosts";
/// The retry priority that moves retries to other localities.
pub const PREVIOUS_PRIORITIES: &str = "envoy.retry_priorities.previous_priorities";

/// The `retry_on` conditions Envoy understands (HTTP and gRPC); anything else would make Envoy
/// reject the route, so it is left out with a warning.
const ENVOY_RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// A protobuf `Duration` from a standard one (saturating at `i64::MAX` seconds).
pub fn pb_duration(d: std::time::Duration) -> PbDuration {
    PbDuration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// The zero duration, Istio's "no timeout".
pub fn no_timeout() -> PbDuration {
    PbDuration {
        seconds: 0,
        nanos: 0,
    }
}

/// An Istio `Percent` (a double, 0–100) as a fraction of a million, as Istio writes it.
pub fn percent_to_fraction(p: Percent) -> FractionalPercent {
    let millionths = (p.value * 10_000.0).clamp(0.0, 1_000_000.0);
    // In range by the clamp above; truncation matches Istio's `uint32(p.Value * 10000)`.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let numerator = millionths as u32;
    FractionalPercent {
        numerator,
        denominator: DenominatorType::Million as i32,
    }
}

/// A deprecated integer percentage (0–100) as a fraction of a hundred.
pub fn integer_to_fraction(p: i64) -> FractionalPercent {
    let numerator = u32::try_from(p.clamp(0, 100)).unwrap_or(0);
    FractionalPercent {
        numerator,
        denominator: DenominatorType::Hundred as i32,
    }
}

/// A fraction with no runtime override.
pub fn runtime_fraction(default_value: FractionalPercent) -> RuntimeFractionalPercent {
    RuntimeFractionalPercent {
        default_value: Some(default_value),
        runtime_key: String::new(),
    }
}

/// The retry policy of a route: Istio's default when `retries` is unset, `None` when
/// `attempts` is 0 (retries disabled), else the default overridden field by field.
/// `consistent_hash` drops the previous-hosts predicate so retries stay sticky.
pub fn retry_policy(input: Option<&HttpRetry>, consistent_hash: bool) -> Option<RetryPolicy> {
    let mut out = RetryPolicy {
        retry_on: DEFAULT_RETRY_ON.into(),
        num_retries: Some(UInt32Value {
            value: DEFAULT_NUM_RETRIES,
        }),
        host_selection_retry_max_attempts: HOST_SELECTION_RETRY_MAX_ATTEMPTS,
        retry_host_predicate: if consistent_hash {
            Vec::new()
        } else {
            vec![previous_hosts()]
        },
        ..Default::default()
    };
    let Some(input) = input else { return Some(out) };
    let attempts = input.attempts.unwrap_or(0);
    if attempts <= 0 {
        return None;
    }
    out.num_retries = Some(UInt32Value {
        value: u32::try_from(attempts).unwrap_or(u32::MAX),
    });
    if !input.retry_on.trim().is_empty() {
        let (conditions, codes) = parse_retry_on(&input.retry_on);
        out.retry_on = conditions;
        out.retriable_status_codes = codes;
    }
    if let Some(t) = input.per_try_timeout {
        out.per_try_timeout = Some(pb_duration(t.as_std()));
    }
    if let Some(ignore) = input.retry_ignore_previous_hosts {
        out.retry_host_predicate = if ignore {
            vec![previous_hosts()]
        } else {
            Vec::new()
        };
    }
    if input.retry_remote_localities == Some(true) {
        out.retry_priority = Some(previous_priorities());
    }
    if let Some(b) = input.backoff.filter(|b| !b.is_zero()) {
        out.retry_back_off = Some(RetryBackOff {
            base_interval: Some(pb_duration(b.as_std())),
            max_interval: None,
        });
    }
    Some(out)
}

/// Splits Istio's `retryOn` into Envoy conditions and HTTP status codes; codes imply
/// `retriable-status-codes`. Conditions Envoy does not know are dropped with a warning.
pub fn parse_retry_on(retry_on: &str) -> (String, Vec<u32>) {
    let mut conditions: Vec<&str> = Vec::new();
    let mut codes = Vec::new();
    for part in retry_on.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<u32>() {
            Ok(code) if (100..=599).contains(&code) => codes.push(code),
            _ if ENVOY_RETRY_ON.contains(&part) => conditions.push(part),
            _ => tracing::warn!(
                condition = part,
                "retryOn condition unknown to Envoy; left out"
            ),
        }
    }
    if !codes.is_empty() && !conditions.contains(&"retriable-status-codes") {
        conditions.push("retriable-status-codes");
    }
    (conditions.join(","), codes)
}

fn previous_hosts() -> RetryHostPredicate {
    RetryHostPredicate {
        name: PREVIOUS_HOSTS_PREDICATE.into(),
        config_type: Some(retry_host_predicate::ConfigType::TypedConfig(
            envoy_types::util::pack_any(PreviousHostsPredicate {}),
        )),
    }
}

fn previous_priorities() -> RetryPriority {
    RetryPriority {
        name: PREVIOUS_PRIORITIES.into(),
        config_type: Some(retry_priority::ConfigType::TypedConfig(
            envoy_types::util::pack_any(PreviousPrioritiesConfig {
                update_frequency: 2,
            }),
        )),
    }
}

/// Istio's fault injection as the `envoy.filters.http.fault` per-route config; `None` when
/// neither a usable delay nor a usable abort remains.
pub fn fault(input: &HttpFaultInjection) -> Option<HttpFault> {
    let delay = input.delay.as_ref().and_then(fault_delay);
    let abort = input.abort.as_ref().and_then(fault_abort);
    if delay.is_none() && abort.is_none() {
        return None;
    }
    Some(HttpFault {
        delay,
        abort,
        ..Default::default()
    })
}

fn fault_delay(d: &HttpFaultDelay) -> Option<FaultDelay> {
    let Some(fixed) = d.fixed_delay.filter(|f| !f.is_zero()) else {
        tracing::warn!(
            "fault delay without a non-zero fixedDelay (exponential delays are not supported); left out"
        );
        return None;
    };
    let percentage = match (d.percentage, d.percent) {
        (Some(p), _) => percent_to_fraction(p),
        (None, p) => integer_to_fraction(p.unwrap_or(0)),
    };
    Some(FaultDelay {
        percentage: Some(percentage),
        fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(pb_duration(fixed.as_std()))),
    })
}

fn fault_abort(a: &HttpFaultAbort) -> Option<FaultAbort> {
    let error_type = match (a.http_status, a.grpc_status.as_deref()) {
        (Some(status), _) => match u32::try_from(status) {
            Ok(s) if (200..600).contains(&s) => ErrorType::HttpStatus(s),
            _ => {
                tracing::warn!(status, "fault abort httpStatus outside 200-599; left out");
                return None;
            }
        },
        (None, Some(name)) => match grpc_status_code(name) {
            Some(code) => ErrorType::GrpcStatus(code),
            None => {
                tracing::warn!(
                    grpc_status = name,
                    "unknown fault abort grpcStatus; left out"
                );
                return None;
            }
        },
        (None, None) => {
            tracing::warn!(
                "fault abort without httpStatus or grpcStatus (http2Error is not supported); left out"
            );
            return None;
        }
    };
    Some(FaultAbort {
        percentage: a.percentage.map(percent_to_fraction),
        error_type: Some(error_type),
        ..Default::default()
    })
}

/// Istio's `CorsPolicy` as the `envoy.filters.http.cors` per-route config.
pub fn cors(input: &CorsPolicy) -> EnvoyCors {
    let origins = if input.allow_origins.is_empty() {
        input
            .allow_origin
            .iter()
            .filter_map(|o| string_matcher(&exact(o)))
            .collect()
    } else {
        input
            .allow_origins
            .iter()
            .filter_map(string_matcher)
            .collect()
    };
    EnvoyCors {
        allow_origin_string_match: origins,
        allow_methods: input.allow_methods.join(","),
        allow_headers: input.allow_headers.join(","),
        expose_headers: input.expose_headers.join(","),
        max_age: input
            .max_age
            .map(|d| d.as_std().as_secs().to_string())
            .unwrap_or_default(),
        allow_credentials: input.allow_credentials.map(|value| BoolValue { value }),
        filter_enabled: Some(runtime_fraction(integer_to_fraction(100))),
        forward_not_matching_preflights: Some(BoolValue {
            value: input.unmatched_preflights != Some(UnmatchedPreflights::Ignore),
        }),
        ..Default::default()
    }
}

fn exact(s: &str) -> mast_config::types::StringMatch {
    mast_config::types::StringMatch::Exact(s.to_owned())
}

/// Header operations in Envoy's terms, plus the authority a `set`/`add` of `:authority` or
/// `host` asks for (Envoy cannot set those as headers: it becomes a host rewrite).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeaderOps {
    /// `request_headers_to_add` (set: overwrite, add: append), sorted by name within each.
    pub request_add: Vec<HeaderValueOption>,
    /// `request_headers_to_remove`.
    pub request_remove: Vec<String>,
    /// `response_headers_to_add`.
    pub response_add: Vec<HeaderValueOption>,
    /// `response_headers_to_remove`.
    pub response_remove: Vec<String>,
    /// The authority to rewrite to, from `:authority`/`host` in request `set` (wins) or `add`.
    pub authority: Option<String>,
}

/// Translates Istio's `Headers` as `TranslateHeadersOperations` does.
pub fn header_ops(h: &Headers) -> HeaderOps {
    let empty = HeaderOperations::default();
    let req = h.request.as_ref().unwrap_or(&empty);
    let resp = h.response.as_ref().unwrap_or(&empty);
    let (mut request_add, set_authority) =
        header_values(req.set.iter(), HeaderAppendAction::OverwriteIfExistsOrAdd);
    let (req_append, add_authority) =
        header_values(req.add.iter(), HeaderAppendAction::AppendIfExistsOrAdd);
    request_add.extend(req_append);
    let (mut response_add, _) =
        header_values(resp.set.iter(), HeaderAppendAction::OverwriteIfExistsOrAdd);
    response_add.extend(header_values(resp.add.iter(), HeaderAppendAction::AppendIfExistsOrAdd).0);
    HeaderOps {
        request_add,
        request_remove: drop_internal(&req.remove),
        response_add,
        response_remove: drop_internal(&resp.remove),
        authority: set_authority.or(add_authority),
    }
}

fn header_values<'a>(
    headers: impl Iterator<Item = (&'a String, &'a String)>,
    action: HeaderAppendAction,
) -> (Vec<HeaderValueOption>, Option<String>) {
    let mut authority = None;
    let mut out = Vec::new();
    for (key, value) in headers {
        if key.eq_ignore_ascii_case(":authority") || key.eq_ignore_ascii_case("host") {
            authority = Some(value.clone());
        }
        if is_internal(key) {
            continue;
        }
        out.push(HeaderValueOption {
            header: Some(HeaderValue {
                key: key.clone(),
                value: value.clone(),
                ..Default::default()
            }),
            append_action: action as i32,
            ..Default::default()
        });
    }
    (out, authority)
}

/// Pseudo-headers and `host` cannot be added or removed by Envoy.
fn is_internal(key: &str) -> bool {
    key.starts_with(':') || key.eq_ignore_ascii_case("host")
}

fn drop_internal(keys: &[String]) -> Vec<String> {
    keys.iter().filter(|k| !is_internal(k)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_on_splits_codes_and_drops_unknown() {
        assert_eq!(
            parse_retry_on("5xx, 503,gateway-error"),
            ("5xx,gateway-error,retriable-status-codes".into(), vec![503])
        );
        assert_eq!(
            parse_retry_on("503"),
            ("retriable-status-codes".into(), vec![503])
        );
        assert_eq!(parse_retry_on("bogus,reset"), ("reset".into(), vec![]));
    }

    #[test]
    fn percentages() {
        assert_eq!(
            percent_to_fraction(Percent { value: 12.5 }).numerator,
            125_000
        );
        assert_eq!(
            percent_to_fraction(Percent { value: 150.0 }).numerator,
            1_000_000
        );
        assert_eq!(
            integer_to_fraction(30).denominator,
            DenominatorType::Hundred as i32
        );
    }
}
