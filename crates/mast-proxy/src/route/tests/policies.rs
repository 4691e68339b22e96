//! Per-route policies: fault draws, CORS preflights and responses, retry decisions and
//! back-off bounds.

use std::time::Duration;

use http::{HeaderMap, Method, StatusCode};
use serde_json::json;

use super::*;
use crate::route::{Abort, Cors, Fault, Preflight, RetryPolicy, UpstreamFailure};

const FAULT: &str = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault";
const CORS: &str = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy";

fn fault(cfg: serde_json::Value) -> Fault {
    let mut cfg = cfg;
    merge(&mut cfg, json!({"@type": FAULT}));
    let t = one(json!({"match": {"prefix": "/"}, "route": {"cluster": "c"},
        "typed_per_filter_config": {"envoy.filters.http.fault": cfg}}));
    only(&t).fault.clone().expect("fault")
}

#[test]
fn fault_draws() {
    let always = fault(json!({
        "delay": {"fixed_delay": "1s", "percentage": {"numerator": 100}},
        "abort": {"http_status": 503, "percentage": {"numerator": 1000000, "denominator": "MILLION"}}
    }));
    for _ in 0..2_000 {
        assert_eq!(always.delay(), Some(Duration::from_secs(1)));
        assert_eq!(
            always.abort(),
            Some(Abort::Http(StatusCode::SERVICE_UNAVAILABLE))
        );
    }
    let never = fault(json!({
        "delay": {"fixed_delay": "1s", "percentage": {"numerator": 0}},
        "abort": {"grpc_status": 14}
    }));
    for _ in 0..2_000 {
        assert_eq!(never.delay(), None);
        assert_eq!(never.abort(), None, "no percentage aborts nothing");
    }
    let half = fault(json!({
        "delay": {"fixed_delay": "0.010s", "percentage": {"numerator": 50}},
        "abort": {"grpc_status": 14, "percentage": {"numerator": 5000, "denominator": "TEN_THOUSAND"}}
    }));
    let delays = (0..2_000).filter(|_| half.delay().is_some()).count();
    let aborts = (0..2_000)
        .filter(|_| half.abort() == Some(Abort::Grpc(14)))
        .count();
    assert!((850..1150).contains(&delays), "{delays} delays of 2,000");
    assert!((850..1150).contains(&aborts), "{aborts} aborts of 2,000");
    let none = one(fwd("/", "c", json!({})));
    assert!(only(&none).fault.is_none());
}

fn cors(cfg: serde_json::Value) -> Cors {
    let mut cfg = cfg;
    merge(&mut cfg, json!({"@type": CORS}));
    let t = one(json!({"match": {"prefix": "/"}, "route": {"cluster": "c"},
        "typed_per_filter_config": {"envoy.filters.http.cors": cfg}}));
    only(&t).cors.clone().expect("cors")
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut r = Req::get("h", "/");
    for (k, v) in pairs {
        r = r.header(k, v);
    }
    r.headers
}

fn rich_cors(forward_not_matching: bool) -> Cors {
    cors(json!({
        "allow_origin_string_match": [{"exact": "https://a.example"}, {"prefix": "https://b."}, {"safe_regex": {"regex": "https://.*\\.c\\.example"}}],
        "allow_methods": "GET,POST,OPTIONS",
        "allow_headers": "authorization,content-type",
        "expose_headers": "x-request-id",
        "max_age": "86400",
        "allow_credentials": true,
        "filter_enabled": {"default_value": {"numerator": 100}},
        "forward_not_matching_preflights": forward_not_matching
    }))
}

#[test]
fn cors_preflight() {
    let c = rich_cors(true);
    let pre = |origin: &str| {
        headers(&[
            ("origin", origin),
            ("access-control-request-method", "POST"),
        ])
    };
    match c.preflight(&Method::OPTIONS, &pre("https://x.c.example")) {
        Preflight::Respond(status, h) => {
            assert_eq!(status, StatusCode::OK);
            assert_eq!(h["access-control-allow-origin"], "https://x.c.example");
            assert_eq!(h["access-control-allow-methods"], "GET,POST,OPTIONS");
            assert_eq!(
                h["access-control-allow-headers"],
                "authorization,content-type"
            );
            assert_eq!(h["access-control-max-age"], "86400");
            assert_eq!(h["access-control-allow-credentials"], "true");
            assert!(!h.contains_key("access-control-expose-headers"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c.preflight(&Method::OPTIONS, &pre("https://evil.example")),
        Preflight::Forward
    ));
    assert!(matches!(
        c.preflight(&Method::GET, &pre("https://a.example")),
        Preflight::NotPreflight
    ));
    assert!(matches!(
        c.preflight(
            &Method::OPTIONS,
            &headers(&[("origin", "https://a.example")])
        ),
        Preflight::NotPreflight
    ));
    assert!(matches!(
        c.preflight(
            &Method::OPTIONS,
            &headers(&[("access-control-request-method", "GET")])
        ),
        Preflight::NotPreflight
    ));
    // unmatchedPreflights: IGNORE → answered here, without allow-origin.
    match rich_cors(false).preflight(&Method::OPTIONS, &pre("https://evil.example")) {
        Preflight::Respond(_, h) => {
            assert!(!h.contains_key("access-control-allow-origin"));
            assert_eq!(h["access-control-allow-methods"], "GET,POST,OPTIONS");
        }
        other => panic!("{other:?}"),
    }
    // "*" echoes the request's method and headers.
    let star = cors(
        json!({"allow_origin_string_match": [{"exact": "*"}], "allow_methods": "*", "allow_headers": "*"}),
    );
    let req = headers(&[
        ("origin", "https://any"),
        ("access-control-request-method", "PUT"),
        ("access-control-request-headers", "x-a"),
    ]);
    match star.preflight(&Method::OPTIONS, &req) {
        Preflight::Respond(_, h) => {
            assert_eq!(h["access-control-allow-origin"], "https://any");
            assert_eq!(h["access-control-allow-methods"], "PUT");
            assert_eq!(h["access-control-allow-headers"], "x-a");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn cors_on_response() {
    let c = rich_cors(true);
    let mut resp = HeaderMap::new();
    c.on_response(&headers(&[("origin", "https://b.example")]), &mut resp);
    assert_eq!(resp["access-control-allow-origin"], "https://b.example");
    assert_eq!(resp["access-control-allow-credentials"], "true");
    assert_eq!(resp["access-control-expose-headers"], "x-request-id");
    let mut resp = HeaderMap::new();
    c.on_response(&headers(&[("origin", "https://evil.example")]), &mut resp);
    assert!(
        resp.is_empty(),
        "an origin that does not match gets nothing"
    );
    c.on_response(&HeaderMap::new(), &mut resp);
    assert!(resp.is_empty());
    let disabled = cors(
        json!({"allow_origin_string_match": [{"exact": "*"}], "filter_enabled": {"default_value": {"numerator": 0}}}),
    );
    disabled.on_response(&headers(&[("origin", "https://b.example")]), &mut resp);
    assert!(resp.is_empty());
}

fn retry(policy: serde_json::Value) -> RetryPolicy {
    let t = one(fwd("/", "c", json!({"retry_policy": policy})));
    forward(only(&t)).retry.clone().expect("retry policy")
}

fn grpc(status: &str) -> HeaderMap {
    headers(&[("grpc-status", status)])
}

#[test]
fn retry_decisions() {
    let istio = retry(json!({
        "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
        "num_retries": 2,
        "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}}],
        "host_selection_retry_max_attempts": 5
    }));
    assert_eq!(
        (
            istio.num_retries,
            istio.host_selection_max_attempts,
            istio.previous_hosts
        ),
        (2, 5, true)
    );
    assert_eq!(istio.per_try_timeout, None);
    let none = HeaderMap::new();
    assert!(
        !istio.retry_on_response(StatusCode::SERVICE_UNAVAILABLE, &none),
        "503 is not in this retry_on"
    );
    assert!(
        istio.retry_on_response(StatusCode::OK, &grpc("14")),
        "unavailable"
    );
    assert!(
        istio.retry_on_response(StatusCode::OK, &grpc("1")),
        "cancelled"
    );
    assert!(
        !istio.retry_on_response(StatusCode::OK, &grpc("4")),
        "deadline-exceeded not set"
    );
    assert!(istio.retry_on_failure(UpstreamFailure::ConnectFailure));
    assert!(istio.retry_on_failure(UpstreamFailure::RefusedStream));
    assert!(!istio.retry_on_failure(UpstreamFailure::Reset));
    assert!(!istio.retry_on_failure(UpstreamFailure::PerTryTimeout));
    assert!(!istio.retry_on_failure(UpstreamFailure::Overflow));

    let rich = retry(json!({
        "retry_on": "5xx,retriable-4xx,reset,retriable-status-codes,deadline-exceeded,internal,resource-exhausted",
        "num_retries": 5, "per_try_timeout": "0.500s", "retriable_status_codes": [418],
        "retry_priority": {"name": "envoy.retry_priorities.previous_priorities", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
            "update_frequency": 2}},
        "retry_back_off": {"base_interval": "0.050s"}
    }));
    assert_eq!(rich.per_try_timeout, Some(Duration::from_millis(500)));
    assert_eq!(
        (rich.previous_hosts, rich.previous_priorities),
        (false, Some(2))
    );
    for (code, want) in [
        (500, true),
        (503, true),
        (409, true),
        (418, true),
        (404, false),
        (200, false),
    ] {
        assert_eq!(
            rich.retry_on_response(StatusCode::from_u16(code).unwrap(), &none),
            want,
            "{code}"
        );
    }
    for (g, want) in [
        ("4", true),
        ("13", true),
        ("8", true),
        ("14", false),
        ("0", false),
    ] {
        assert_eq!(
            rich.retry_on_response(StatusCode::OK, &grpc(g)),
            want,
            "grpc-status {g}"
        );
    }
    assert!(!rich.retry_on_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &headers(&[("x-envoy-overloaded", "true")])
    ));
    for f in [
        UpstreamFailure::ConnectFailure,
        UpstreamFailure::Reset,
        UpstreamFailure::RefusedStream,
        UpstreamFailure::PerTryTimeout,
    ] {
        assert!(rich.retry_on_failure(f), "{f:?} under 5xx");
    }
    let gw = retry(json!({"retry_on": "gateway-error"}));
    assert_eq!(gw.num_retries, 1, "Envoy's default");
    assert!(
        gw.retry_on_response(StatusCode::BAD_GATEWAY, &none)
            && gw.retry_on_response(StatusCode::GATEWAY_TIMEOUT, &none)
    );
    assert!(!gw.retry_on_response(StatusCode::INTERNAL_SERVER_ERROR, &none));
}

#[test]
fn back_off_bounds() {
    let default = retry(json!({"retry_on": "5xx"}));
    for _ in 0..500 {
        assert!(default.back_off(1) < Duration::from_millis(25));
        assert!(default.back_off(2) < Duration::from_millis(75));
        assert!(
            default.back_off(10) <= Duration::from_millis(250),
            "capped at 10x base"
        );
        assert!(default.back_off(200) <= Duration::from_millis(250));
    }
    let custom = retry(
        json!({"retry_on": "5xx", "retry_back_off": {"base_interval": "0.100s", "max_interval": "0.150s"}}),
    );
    let draws: Vec<Duration> = (0..500).map(|_| custom.back_off(3)).collect();
    assert!(draws.iter().all(|d| *d <= Duration::from_millis(150)));
    assert!(
        draws.iter().any(|d| *d > Duration::from_millis(100)),
        "jitter spans the range"
    );
}
