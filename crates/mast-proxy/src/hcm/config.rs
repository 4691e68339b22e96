//! HttpConnectionManager (inside a listener's filter chain) → [`HcmConfig`]: codec, where
//! routes come from (RDS name or inline table), which HTTP filters run, upgrades, limits and
//! timeouts. Errors are `(field, reason)` pairs; the listener conversion adds the path prefix.

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier, http_filter,
};
use envoy_types::pb::google::protobuf::Duration as PbDuration;

use super::authz::{self, AuthzFilter};
use super::jwt::JwtAuthn;
use super::normalize::{EscapedSlashes, PathConfig};
use super::xfcc::Xfcc;
use crate::rbac::HttpRbac;
use crate::route::RouteTable;

const FAULT: &str = "envoy.filters.http.fault";
const CORS: &str = "envoy.filters.http.cors";
const DFP: &str = "envoy.filters.http.dynamic_forward_proxy";
const ROUTER: &str = "envoy.filters.http.router";

/// Which codec the connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// HTTP/1.1 or HTTP/2 (prior knowledge), detected per connection.
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only.
    Http2,
}

/// Where the route table comes from.
#[derive(Debug, Clone)]
pub enum RouteSource {
    /// RDS, by name.
    Rds(String),
    /// An inline table.
    Inline(Arc<RouteTable>),
}

/// A converted HTTP connection manager.
#[derive(Debug, Clone)]
pub struct HcmConfig {
    /// The codec.
    pub codec: Codec,
    /// `stat_prefix`.
    pub stat_prefix: String,
    /// The listener it runs on receives traffic for its own workload (`traffic_direction:
    /// INBOUND`): Istio's metrics are reported as `reporter="destination"`.
    pub inbound: bool,
    /// The routes.
    pub routes: RouteSource,
    /// `envoy.filters.http.fault` is in the chain.
    pub fault: bool,
    /// `envoy.filters.http.cors` is in the chain.
    pub cors: bool,
    /// `envoy.filters.http.dynamic_forward_proxy` is in the chain.
    pub forward_proxy: bool,
    /// Upgrade types allowed (lowercase: `websocket`, `connect`).
    pub upgrades: Vec<String>,
    /// HTTP/1.1 absolute-form requests accepted (an HTTP proxy).
    pub allow_absolute_url: bool,
    /// HTTP/1.0 requests accepted (else 426, Envoy's default).
    pub accept_http_10: bool,
    /// HTTP/2 extended/plain CONNECT accepted.
    pub h2_allow_connect: bool,
    /// RFC 3986 path normalisation before routing.
    pub normalize_path: bool,
    /// Merge adjacent slashes.
    pub merge_slashes: bool,
    /// `path_with_escaped_slashes_action`.
    pub escaped_slashes: EscapedSlashes,
    /// The authorization filters (`jwt_authn`, `rbac`) in list order; they run before
    /// CORS, fault and the router.
    pub authz: Vec<AuthzFilter>,
    /// `forward_client_cert_details` / `set_current_client_cert_details`.
    pub xfcc: Xfcc,
    /// `use_remote_address`.
    pub use_remote_address: bool,
    /// `xff_num_trusted_hops`.
    pub xff_num_trusted_hops: u32,
    /// Edge settings: XFF append, internal addresses, host port stripping, `server` header.
    pub edge: super::edge::Edge,
    /// Generate `x-request-id` when absent.
    pub generate_request_id: bool,
    /// Stream idle timeout (None: disabled).
    pub stream_idle_timeout: Option<Duration>,
    /// Downstream connection idle timeout (Envoy's default 1 h).
    pub idle_timeout: Option<Duration>,
    /// Time to receive the whole request headers (None: disabled).
    pub request_headers_timeout: Option<Duration>,
    /// Maximum request headers size in bytes (Envoy's default 60 KiB).
    pub max_request_headers_bytes: usize,
    /// Maximum number of request headers (Envoy's default 100).
    pub max_headers_count: usize,
    /// `tracing`: spans and trace propagation, when set.
    pub tracing: Option<Arc<crate::trace::TraceConfig>>,
}

type Failure = (String, String);

fn fail(field: &str, reason: impl Into<String>) -> Failure {
    (field.to_owned(), reason.into())
}

/// A protobuf duration, `None` when zero or unset.
pub fn duration(d: Option<&PbDuration>) -> Option<Duration> {
    let d = d?;
    let secs = u64::try_from(d.seconds).ok()?;
    let nanos = u32::try_from(d.nanos).ok()?;
    let d = Duration::new(secs, nanos);
    (!d.is_zero()).then_some(d)
}

impl HcmConfig {
    /// Converts and validates.
    pub fn from_proto(h: &HttpConnectionManager) -> Result<Self, Failure> {
        let codec = match h.codec_type {
            0 => Codec::Auto,
            1 => Codec::Http1,
            2 => Codec::Http2,
            c => return Err(fail("codec_type", format!("codec {c} is not supported"))),
        };
        let routes = match &h.route_specifier {
            Some(RouteSpecifier::Rds(rds)) => RouteSource::Rds(rds.route_config_name.clone()),
            Some(RouteSpecifier::RouteConfig(rc)) => RouteSource::Inline(Arc::new(
                RouteTable::from_proto(rc)
                    .map_err(|e| fail(&format!("route_config.{}", e.field), e.reason))?,
            )),
            _ => return Err(fail("route_specifier", "rds or route_config is required")),
        };
        let mut config = Self {
            codec,
            stat_prefix: h.stat_prefix.clone(),
            inbound: false,
            routes,
            fault: false,
            cors: false,
            forward_proxy: false,
            upgrades: Vec::new(),
            allow_absolute_url: h
                .http_protocol_options
                .as_ref()
                .and_then(|o| o.allow_absolute_url)
                .is_some_and(|b| b.value),
            accept_http_10: h
                .http_protocol_options
                .as_ref()
                .is_some_and(|o| o.accept_http_10),
            h2_allow_connect: h
                .http2_protocol_options
                .as_ref()
                .is_some_and(|o| o.allow_connect),
            normalize_path: h.normalize_path.is_some_and(|b| b.value),
            merge_slashes: h.merge_slashes,
            escaped_slashes: EscapedSlashes::from_proto(h.path_with_escaped_slashes_action)
                .ok_or_else(|| fail("path_with_escaped_slashes_action", "unknown value"))?,
            authz: Vec::new(),
            xfcc: Xfcc::from_proto(h)?,
            use_remote_address: h.use_remote_address.is_some_and(|b| b.value),
            xff_num_trusted_hops: h.xff_num_trusted_hops,
            edge: super::edge::Edge::from_proto(h)?,
            generate_request_id: h.generate_request_id.is_none_or(|b| b.value),
            stream_idle_timeout: match &h.stream_idle_timeout {
                None => Some(Duration::from_secs(300)),
                Some(d) => duration(Some(d)),
            },
            idle_timeout: match h.common_http_protocol_options.as_ref() {
                Some(o) if o.idle_timeout.is_some() => duration(o.idle_timeout.as_ref()),
                _ => Some(Duration::from_secs(3600)),
            },
            request_headers_timeout: duration(h.request_headers_timeout.as_ref()),
            max_request_headers_bytes: h.max_request_headers_kb.map_or(60, |k| k.value as usize)
                * 1024,
            max_headers_count: h
                .common_http_protocol_options
                .as_ref()
                .and_then(|o| o.max_headers_count)
                .map_or(100, |c| c.value as usize),
            tracing: h
                .tracing
                .as_ref()
                .map(|t| crate::trace::TraceConfig::from_proto(t, &h.stat_prefix).map(Arc::new))
                .transpose()
                .map_err(|(f, r)| fail(&format!("tracing.{f}"), r))?,
        };
        config.filters(h)?;
        note_access_log(&h.access_log);
        if let Some(o) = &h.common_http_protocol_options {
            let unsupported = [
                (
                    "max_requests_per_connection",
                    o.max_requests_per_connection.is_some(),
                ),
                ("max_stream_duration", o.max_stream_duration.is_some()),
                (
                    "max_connection_duration",
                    o.max_connection_duration.is_some(),
                ),
                (
                    "headers_with_underscores_action",
                    o.headers_with_underscores_action != 0,
                ),
            ];
            if let Some((field, _)) = unsupported.iter().find(|(_, set)| *set) {
                return Err(fail(
                    &format!("common_http_protocol_options.{field}"),
                    "not supported by mast-proxy yet",
                ));
            }
        }
        for (i, u) in h.upgrade_configs.iter().enumerate() {
            if !u.filters.is_empty() {
                return Err(fail(
                    &format!("upgrade_configs[{i}].filters"),
                    "per-upgrade filter chains are not supported",
                ));
            }
            if u.enabled.is_none_or(|b| b.value) {
                config.upgrades.push(u.upgrade_type.to_ascii_lowercase());
            }
        }
        Ok(config)
    }

    fn filters(&mut self, h: &HttpConnectionManager) -> Result<(), Failure> {
        let last = h.http_filters.len().checked_sub(1);
        for (i, f) in h.http_filters.iter().enumerate() {
            if let Some(http_filter::ConfigType::ConfigDiscovery(_)) = f.config_type {
                return Err(fail(
                    &format!("http_filters[{i}].config_discovery"),
                    "extension config discovery is not supported",
                ));
            }
            match f.name.as_str() {
                FAULT => self.fault = true,
                CORS => self.cors = true,
                DFP => self.forward_proxy = true,
                authz::JWT_AUTHN | authz::RBAC => {
                    let filter = authz_filter(f)
                        .map_err(|(field, r)| fail(&format!("http_filters[{i}].{field}"), r))?;
                    self.authz.push(filter);
                }
                ROUTER if Some(i) == last => {}
                ROUTER => {
                    return Err(fail(
                        &format!("http_filters[{i}]"),
                        "the router must be last",
                    ));
                }
                _ if f.is_optional => {}
                other => {
                    return Err(fail(
                        &format!("http_filters[{i}].name"),
                        format!("HTTP filter {other:?} is not supported"),
                    ));
                }
            }
        }
        if h.http_filters.last().is_none_or(|f| f.name != ROUTER) {
            return Err(fail(
                "http_filters",
                "the last filter must be envoy.filters.http.router",
            ));
        }
        Ok(())
    }

    /// The path normalisation settings.
    pub fn path_config(&self) -> PathConfig {
        PathConfig {
            normalize: self.normalize_path,
            merge_slashes: self.merge_slashes,
            escaped_slashes: self.escaped_slashes,
        }
    }

    /// Whether upgrade type `kind` (lowercase) is allowed.
    pub fn allows_upgrade(&self, kind: &str) -> bool {
        self.upgrades.iter().any(|u| u.eq_ignore_ascii_case(kind))
    }
}

/// Converts a `jwt_authn` or `rbac` HTTP filter; the field is relative to the filter.
fn authz_filter(
    f: &envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter,
) -> Result<AuthzFilter, Failure> {
    if f.disabled {
        return Err(fail(
            "disabled",
            "filters enabled per route are not supported",
        ));
    }
    let Some(http_filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        return Err(fail("typed_config", "required"));
    };
    let under = |(field, reason): Failure| {
        let field = if field.is_empty() {
            "typed_config".to_owned()
        } else {
            format!("typed_config.{field}")
        };
        (field, reason)
    };
    Ok(if f.name == authz::JWT_AUTHN {
        AuthzFilter::Jwt(Arc::new(JwtAuthn::from_any(any).map_err(under)?))
    } else {
        AuthzFilter::Rbac(Arc::new(HttpRbac::from_any(any).map_err(under)?))
    })
}

/// Istio's default TEXT access log format, the one mast-proxy's lines follow
/// ([`super::access_log`]).
const ISTIO_TEXT_FORMAT: &str = concat!(
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% ",
    "%PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% ",
    "%RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% ",
    "\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% ",
    "%DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" ",
    "\"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" ",
    "%UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% ",
    "%DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n",
);

/// Accepts the `access_log` of an HTTP connection manager or `tcp_proxy` (never a reason to
/// refuse a listener). mast-proxy always writes Istio's default text line to stdout; a
/// setting it cannot honour (another logger, another path, a JSON or custom format, a
/// filter) is logged as a warning once per process.
pub fn note_access_log(logs: &[envoy_types::pb::envoy::config::accesslog::v3::AccessLog]) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static WARNED: AtomicBool = AtomicBool::new(false);
    let Some(reason) = logs.iter().find_map(unhonoured_access_log) else {
        return;
    };
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "access log setting not honoured ({reason}): mast-proxy writes Istio's default text format to stdout"
        );
    }
}

/// What of one access log entry mast-proxy does not do, if anything.
fn unhonoured_access_log(
    log: &envoy_types::pb::envoy::config::accesslog::v3::AccessLog,
) -> Option<String> {
    use envoy_types::pb::envoy::config::accesslog::v3::access_log::ConfigType;
    use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
    use envoy_types::pb::envoy::config::core::v3::substitution_format_string::Format;
    use envoy_types::pb::envoy::extensions::access_loggers::file::v3::FileAccessLog;
    use envoy_types::pb::envoy::extensions::access_loggers::file::v3::file_access_log::AccessLogFormat;
    use prost::{Message, Name};

    if log.filter.is_some() {
        return Some("access log filters".into());
    }
    let file = match &log.config_type {
        Some(ConfigType::TypedConfig(any)) if any.type_url == FileAccessLog::type_url() => {
            FileAccessLog::decode(any.value.as_slice()).ok()
        }
        _ => None,
    };
    let Some(file) = file else {
        return Some(format!("access logger {:?}", log.name));
    };
    if !["/dev/stdout", ""].contains(&file.path.as_str()) {
        return Some(format!("path {:?}", file.path));
    }
    let text = match &file.access_log_format {
        None => return None,
        Some(AccessLogFormat::LogFormat(f)) => match &f.format {
            Some(Format::TextFormatSource(src)) => match &src.specifier {
                Some(Specifier::InlineString(s)) => s.as_str(),
                _ => return Some("a format read from a file".into()),
            },
            Some(Format::JsonFormat(_)) => return Some("JSON encoding".into()),
            _ => return Some("a format other than text_format_source".into()),
        },
        Some(_) => return Some("a deprecated format field".into()),
    };
    (text != ISTIO_TEXT_FORMAT).then(|| format!("custom format {text:?}"))
}

#[cfg(test)]
mod access_log_tests {
    use envoy_types::pb::envoy::config::accesslog::v3::AccessLog;
    use envoy_types::pb::envoy::config::accesslog::v3::access_log::ConfigType;
    use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
    use envoy_types::pb::envoy::config::core::v3::substitution_format_string::Format;
    use envoy_types::pb::envoy::config::core::v3::{DataSource, SubstitutionFormatString};
    use envoy_types::pb::envoy::extensions::access_loggers::file::v3::FileAccessLog;
    use envoy_types::pb::envoy::extensions::access_loggers::file::v3::file_access_log::AccessLogFormat;
    use envoy_types::pb::google::protobuf::Struct;
    use envoy_types::util::pack_any;

    use super::*;

    fn log(path: &str, format: Format) -> AccessLog {
        let file = FileAccessLog {
            path: path.into(),
            access_log_format: Some(AccessLogFormat::LogFormat(SubstitutionFormatString {
                format: Some(format),
                ..Default::default()
            })),
        };
        AccessLog {
            name: "envoy.access_loggers.file".into(),
            config_type: Some(ConfigType::TypedConfig(pack_any(file))),
            ..Default::default()
        }
    }

    fn text(s: &str) -> Format {
        Format::TextFormatSource(DataSource {
            specifier: Some(Specifier::InlineString(s.into())),
            ..Default::default()
        })
    }

    #[test]
    fn istios_default_on_stdout_is_honoured() {
        assert_eq!(
            unhonoured_access_log(&log("/dev/stdout", text(ISTIO_TEXT_FORMAT))),
            None
        );
    }

    #[test]
    fn what_is_not_honoured_is_named() {
        let cases = [
            (log("/tmp/a.log", text(ISTIO_TEXT_FORMAT)), "path"),
            (
                log("/dev/stdout", text("%RESPONSE_CODE%\n")),
                "custom format",
            ),
            (
                log("/dev/stdout", Format::JsonFormat(Struct::default())),
                "JSON",
            ),
        ];
        for (l, want) in cases {
            let got = unhonoured_access_log(&l).unwrap_or_default();
            assert!(got.contains(want), "{got:?} should mention {want}");
        }
        let other = AccessLog {
            name: "envoy.access_loggers.stream".into(),
            ..Default::default()
        };
        assert!(unhonoured_access_log(&other).unwrap().contains("stream"));
    }

    #[test]
    fn an_hcm_and_a_tcp_proxy_with_a_json_access_log_are_accepted() {
        use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::Rds;
        use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
        use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier;
        let json = log("/dev/stdout", Format::JsonFormat(Struct::default()));
        let hcm = HttpConnectionManager {
            stat_prefix: "x".into(),
            route_specifier: Some(RouteSpecifier::Rds(Rds {
                route_config_name: "80".into(),
                ..Default::default()
            })),
            http_filters: vec![
                envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter {
                    name: ROUTER.into(),
                    ..Default::default()
                },
            ],
            access_log: vec![json.clone()],
            ..Default::default()
        };
        let converted = HcmConfig::from_proto(&hcm);
        assert!(converted.is_ok(), "{:?}", converted.err());
        let tcp = TcpProxy {
            stat_prefix: "x".into(),
            cluster_specifier: Some(ClusterSpecifier::Cluster("c".into())),
            access_log: vec![json],
            ..Default::default()
        };
        assert!(crate::tcp::config::TcpProxyConfig::from_proto(&tcp).is_ok());
    }
}
