//! Policies of an HTTP route, as Istio checks them: CORS, fault injection, mirroring
//! percentages, redirects, direct responses, retries and rewrites (including setting the
//! authority in only one place).

use super::{headers, http};
use crate::networking::virtual_service::{
    CorsPolicy, HttpDirectResponse, HttpFaultAbort, HttpFaultDelay, HttpFaultInjection,
    HttpRedirect, HttpRetry, HttpRewrite, HttpRoute,
};
use crate::types::{Percent, StringMatch};
use crate::validate::{Report, common};

/// Envoy's `x-envoy-retry-on` and `x-envoy-retry-grpc-on` conditions that Istio accepts.
const RETRY_ON_POLICIES: [&str; 16] = [
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// HTTP status codes with a standard name (Go's `http.StatusText`).
const KNOWN_STATUS_CODES: [u16; 62] = [
    100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304,
    305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415,
    416, 417, 418, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505,
    506, 507, 508, 510, 511,
];

const CORS_METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*",
];

const KB: usize = 1024;
const MB: usize = 1024 * KB;

/// Checks the policies of the route at `f` (`spec.http[i]`).
pub(super) fn route_policies(f: &str, route: &HttpRoute, r: &mut Report) {
    if let Some(c) = &route.cors_policy {
        cors(r, &format!("{f}.corsPolicy"), c);
    }
    if let Some(fault) = &route.fault {
        fault_injection(r, &format!("{f}.fault"), fault);
    }
    mirror_shares(f, route, r);
    if let Some(rd) = &route.redirect {
        redirect(r, &format!("{f}.redirect"), rd);
    }
    if let Some(dr) = &route.direct_response {
        direct_response(r, &format!("{f}.directResponse"), dr);
    }
    if let Some(rt) = &route.retries {
        retries(r, &format!("{f}.retries"), rt);
    }
    if let Some(rw) = &route.rewrite {
        rewrite(r, &format!("{f}.rewrite"), rw);
    }
    authority_set_once(f, route, r);
}

fn cors(r: &mut Report, f: &str, c: &CorsPolicy) {
    for (i, origin) in c.allow_origins.iter().enumerate() {
        let fi = format!("{f}.allowOrigins[{i}]");
        let text = match origin {
            StringMatch::Exact(s) | StringMatch::Prefix(s) => s.as_str(),
            StringMatch::Regex(re) => re.as_str(),
            StringMatch::Any => "",
        };
        if text.is_empty() {
            r.error(&fi, "'' is not a valid match type for CORS allow origins");
        } else {
            http::regex_match(r, &fi, origin, "corsPolicy.allowOrigins");
        }
    }
    if !c.allow_origin.is_empty() {
        r.warn(
            format!("{f}.allowOrigin"),
            "using deprecated setting \"allowOrigin\", use \"allowOrigins\" instead",
        );
    }
    for (i, m) in c.allow_methods.iter().enumerate() {
        if !CORS_METHODS.contains(&m.as_str()) {
            r.error(
                format!("{f}.allowMethods[{i}]"),
                format!("{m:?} is not a supported HTTP method"),
            );
        }
    }
    for (key, list) in [
        ("allowHeaders", &c.allow_headers),
        ("exposeHeaders", &c.expose_headers),
    ] {
        for (i, name) in list.iter().enumerate() {
            if let Some(e) = headers::cors_name_error(name) {
                r.error(format!("{f}.{key}[{i}]"), e);
            }
        }
    }
    if let Some(age) = c.max_age {
        common::duration(r, &format!("{f}.maxAge"), age);
        if age.as_std().subsec_nanos() != 0 {
            r.error(
                format!("{f}.maxAge"),
                "max_age duration is accurate only to seconds precision",
            );
        }
    }
}

fn fault_injection(r: &mut Report, f: &str, fault: &HttpFaultInjection) {
    if fault.abort.is_none() && fault.delay.is_none() {
        r.error(f, "HTTP fault injection must have an abort and/or a delay");
    }
    if let Some(a) = &fault.abort {
        abort(r, &format!("{f}.abort"), a);
    }
    if let Some(d) = &fault.delay {
        delay(r, &format!("{f}.delay"), d);
    }
}

/// Istio's `validatePercentage`: 0, or 0.0001 to 100.
fn fault_percentage(r: &mut Report, f: &str, p: Option<Percent>) {
    if let Some(p) = p
        && (p.value < 0.0 || p.value > 100.0 || (p.value > 0.0 && p.value < 0.0001))
    {
        r.error(
            f,
            format!(
                "percentage {} is neither 0.0, nor in range [0.0001, 100.0]",
                p.value
            ),
        );
    }
}

fn abort(r: &mut Report, f: &str, a: &HttpFaultAbort) {
    fault_percentage(r, &format!("{f}.percentage"), a.percentage);
    let set = [
        a.http_status.is_some(),
        a.grpc_status.is_some(),
        a.http2_error.is_some(),
    ];
    if set.iter().filter(|s| **s).count() > 1 {
        r.error(
            f,
            "only one of httpStatus, grpcStatus or http2Error may be set",
        );
    }
    if let Some(s) = &a.grpc_status {
        if !crate::types::GRPC_STATUS_NAMES.contains(&s.as_str()) {
            let msg = format!(
                "gRPC status {s:?} is not supported. See https://github.com/grpc/grpc/blob/master/doc/statuscodes.md for a list of supported codes, for example 'NOT_FOUND'"
            );
            r.error(format!("{f}.grpcStatus"), msg);
        }
    } else if a.http2_error.is_some() {
        r.error(
            format!("{f}.http2Error"),
            "HTTP/2 abort fault injection not supported yet",
        );
    } else if let Some(s) = a.http_status {
        http_status(r, &format!("{f}.httpStatus"), s);
    } else {
        r.warn(f, "abort configured, but error type not set");
    }
}

fn delay(r: &mut Report, f: &str, d: &HttpFaultDelay) {
    fault_percentage(r, &format!("{f}.percentage"), d.percentage);
    if let Some(p) = d.percent {
        if !(0..=100).contains(&p) {
            r.error(
                format!("{f}.percent"),
                format!("percentage {p} is not in range 0..100"),
            );
        }
        r.warn(
            format!("{f}.percent"),
            "using deprecated setting \"percent\", use \"percentage\" instead",
        );
    }
    if d.fixed_delay.is_some() && d.exponential_delay.is_some() {
        r.error(f, "only one of fixedDelay or exponentialDelay may be set");
    }
    if let Some(fixed) = d.fixed_delay {
        common::duration(r, &format!("{f}.fixedDelay"), fixed);
    } else if let Some(exp) = d.exponential_delay {
        common::duration(r, &format!("{f}.exponentialDelay"), exp);
        r.error(
            format!("{f}.exponentialDelay"),
            "exponentialDelay not supported yet",
        );
    }
}

/// Istio's `validateHTTPStatus` (its message says 599, its bound is 600).
fn http_status(r: &mut Report, f: &str, status: i64) {
    if !(200..=600).contains(&status) {
        r.error(f, format!("HTTP status {status} is not in range 200-599"));
    }
}

/// `mirrorPercent` (deprecated), `mirrorPercentage` and each of `mirrors`.
fn mirror_shares(f: &str, route: &HttpRoute, r: &mut Report) {
    if let Some(p) = route.mirror_percent {
        let fp = format!("{f}.mirrorPercent");
        if p > 100 {
            r.error(
                &fp,
                format!("mirror_percent must have a max value of 100 (it has {p})"),
            );
        } else if p < 0 {
            r.error(
                &fp,
                format!("mirror_percent must have a min value of 0 (it has {p})"),
            );
        }
        r.warn(
            &fp,
            "using deprecated setting \"mirrorPercent\", use \"mirrorPercentage\" instead",
        );
    }
    if let Some(p) = route.mirror_percentage {
        mirror_percentage(r, &format!("{f}.mirrorPercentage"), p, "mirror_percentage");
    }
    for (k, m) in route.mirrors.iter().enumerate() {
        let fk = format!("{f}.mirrors[{k}]");
        http::destination(r, &format!("{fk}.destination"), &m.destination);
        if let Some(p) = m.percentage {
            mirror_percentage(r, &format!("{fk}.percentage"), p, "mirror percentage");
        }
    }
}

fn mirror_percentage(r: &mut Report, f: &str, p: Percent, what: &str) {
    if p.value > 100.0 {
        r.error(
            f,
            format!(
                "{what} must have a max value of 100 (it has {:.6})",
                p.value
            ),
        );
    } else if p.value < 0.0 {
        r.error(
            f,
            format!("{what} must have a min value of 0 (it has {:.6})", p.value),
        );
    }
}

fn redirect(r: &mut Report, f: &str, rd: &HttpRedirect) {
    if rd.uri.is_empty()
        && rd.authority.is_empty()
        && rd.port.is_none()
        && rd.derive_port.is_none()
        && rd.scheme.is_empty()
    {
        r.error(f, "redirect must specify URI, authority, scheme, or port");
    }
    if rd.port.is_some() && rd.derive_port.is_some() {
        r.error(f, "only one of port or derivePort may be set");
    }
    if let Some(code) = rd
        .redirect_code
        .filter(|c| *c != 0 && !(300..=399).contains(c))
    {
        r.error(
            format!("{f}.redirectCode"),
            format!("{code} is not a valid redirect code, must be 3xx"),
        );
    }
    if !rd.scheme.is_empty() && rd.scheme != "http" && rd.scheme != "https" {
        r.error(
            format!("{f}.scheme"),
            "invalid redirect scheme, must be \"http\" or \"https\"",
        );
    }
    if let Some(p) = rd.port.filter(|p| *p != 0) {
        common::port(r, &format!("{f}.port"), p);
    }
}

fn direct_response(r: &mut Report, f: &str, dr: &HttpDirectResponse) {
    if let Some(body) = &dr.body {
        let fb = format!("{f}.body");
        if body.string.is_some() && body.bytes.is_some() {
            r.error(&fb, "only one of string or bytes may be set");
        }
        let size = match (&body.string, &body.bytes) {
            (Some(s), _) => s.len(),
            (None, Some(b)) => base64_decoded_len(b).unwrap_or_else(|| {
                r.error(format!("{fb}.bytes"), "bytes must be base64-encoded");
                0
            }),
            (None, None) => 0,
        };
        if size > MB {
            r.error(&fb, "large direct_responses may impact control plane performance, must be less than 1MB");
        } else if size > 100 * KB {
            r.warn(
                &fb,
                "large direct_responses may impact control plane performance",
            );
        }
    }
    http_status(r, &format!("{f}.status"), dr.status);
}

/// The length of standard or URL-safe base64 once decoded, or `None` if it is not base64.
fn base64_decoded_len(s: &str) -> Option<usize> {
    let data = s.trim_end_matches('=');
    let padding = s.len() - data.len();
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_');
    if padding > 2
        || !data.bytes().all(alphabet)
        || data.len() % 4 == 1
        || (padding > 0 && !s.len().is_multiple_of(4))
    {
        return None;
    }
    Some(data.len() * 3 / 4)
}

fn retries(r: &mut Report, f: &str, rt: &HttpRetry) {
    let attempts = rt.attempts.unwrap_or(0);
    if attempts < 0 {
        r.error(format!("{f}.attempts"), "attempts cannot be negative");
    }
    if attempts == 0
        && (rt.per_try_timeout.is_some()
            || !rt.retry_on.is_empty()
            || rt.retry_remote_localities.is_some())
    {
        r.error(
            format!("{f}.attempts"),
            "http retry policy configured when attempts are set to 0 (disabled)",
        );
    }
    if let Some(t) = rt.per_try_timeout {
        common::duration(r, &format!("{f}.perTryTimeout"), t);
    }
    if !rt.retry_on.is_empty() {
        for policy in rt.retry_on.split(',') {
            let is_status = policy
                .parse::<u16>()
                .is_ok_and(|c| KNOWN_STATUS_CODES.contains(&c));
            if !is_status && !RETRY_ON_POLICIES.contains(&policy) {
                r.error(
                    format!("{f}.retryOn"),
                    format!("{policy:?} is not a valid retryOn policy"),
                );
            }
        }
    }
    if let Some(b) = rt.backoff {
        common::duration(r, &format!("{f}.backoff"), b);
    }
}

fn rewrite(r: &mut Report, f: &str, rw: &HttpRewrite) {
    if !rw.uri.is_empty() && rw.uri_regex_rewrite.is_some() {
        r.error(f, "rewrite may only contain one of URI or UriRegexRewrite");
    }
    if rw.uri.is_empty() && rw.uri_regex_rewrite.is_none() && rw.authority.is_empty() {
        r.error(
            f,
            "rewrite must specify at least one of URI, UriRegexRewrite, or authority. Only one of URI or UriRegexRewrite may be specified",
        );
    }
    let Some(rx) = &rw.uri_regex_rewrite else {
        return;
    };
    let fr = format!("{f}.uriRegexRewrite");
    if rx.r#match.is_empty() || rx.rewrite.is_empty() {
        r.error(
            &fr,
            "UriRegexRewrite requires both Rewrite and Match fields to be specified",
        );
        return;
    }
    let what = "HTTPRewrite.UriRegexRewrite.Match";
    if rx.r#match.len() > 1024 {
        r.error(
            format!("{fr}.match"),
            format!("{what:?}: regex is too large, max length allowed is 1024"),
        );
    } else if let Err(e) = regex::Regex::new(&rx.r#match) {
        let detail = e
            .to_string()
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or("invalid regex")
            .trim_start_matches("error: ")
            .to_owned();
        let msg = format!(
            "{what:?}: {detail}; Istio uses RE2 style regex-based match (https://github.com/google/re2/wiki/Syntax)"
        );
        r.error(format!("{fr}.match"), msg);
    }
}

/// Istio's `validateAuthorityRewrite`: the authority is rewritten in one place only
/// (`rewrite.authority`, or one `:authority`/`Host` entry of `headers.request`).
fn authority_set_once(f: &str, route: &HttpRoute, r: &mut Report) {
    let mut current = route
        .rewrite
        .as_ref()
        .map_or("", |rw| rw.authority.as_str());
    let Some(ops) = route.headers.as_ref().and_then(|h| h.request.as_ref()) else {
        return;
    };
    for (verb, map) in [("set", &ops.set), ("add", &ops.add)] {
        for (name, value) in map.iter().filter(|(k, _)| headers::is_authority(k)) {
            if !current.is_empty() {
                let msg = format!(
                    "authority header cannot be set multiple times: have {current:?}, attempting to set {value:?}"
                );
                r.error(format!("{f}.headers.request.{verb}.{name}"), msg);
                return;
            }
            current = value;
        }
    }
}
