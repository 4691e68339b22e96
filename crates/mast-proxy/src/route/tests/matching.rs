//! Selection: virtual hosts by authority (precedence, ports, case), then the first route whose
//! path, header, query and CONNECT conditions hold.

use http::Method;
use serde_json::json;

use super::*;

fn vhost(name: &str, domains: &[&str]) -> serde_json::Value {
    json!({"name": name, "domains": domains, "routes": [fwd("/", name, json!({}))]})
}

#[test]
fn virtual_host_precedence_and_ports() {
    let t = table(json!({"name": "t", "virtual_hosts": [
        vhost("any", &["*"]),
        vhost("suffix", &["*.svc.cluster.local"]),
        vhost("prefix", &["reviews.*"]),
        vhost("exact", &["reviews", "reviews:9080", "10.96.0.10", "10.96.0.10:9080", "[fd00::1]:80"]),
    ]}))
    .unwrap();
    let pick = |authority: &str| selected(&t, &Req::get(authority, "/"));
    assert_eq!(pick("reviews").as_deref(), Some("exact"));
    assert_eq!(pick("Reviews:9080").as_deref(), Some("exact"));
    assert_eq!(pick("10.96.0.10:9080").as_deref(), Some("exact"));
    assert_eq!(pick("[fd00::1]:80").as_deref(), Some("exact"));
    assert_eq!(
        pick("reviews:9090").as_deref(),
        Some("any"),
        "the port is part of the authority"
    );
    assert_eq!(pick("reviews.x:9090").as_deref(), Some("prefix"));
    assert_eq!(
        pick("reviews.default.svc.cluster.local").as_deref(),
        Some("suffix"),
        "suffix before prefix"
    );
    assert_eq!(pick("other").as_deref(), Some("any"));
    assert_eq!(t.virtual_host("reviews").map(|v| v.name()), Some("exact"));
    let no_default =
        table(json!({"name": "t", "virtual_hosts": [vhost("exact", &["a"])]})).unwrap();
    assert_eq!(
        selected(&no_default, &Req::get("b", "/")),
        None,
        "no virtual host: 404"
    );
}

#[test]
fn path_matchers_and_case() {
    let t = routes(json!([
        {"name": "exact", "match": {"path": "/exact"}, "route": {"cluster": "c"}},
        {"name": "exact-ci", "match": {"path": "/CI", "case_sensitive": false}, "route": {"cluster": "c"}},
        {"name": "regex", "match": {"safe_regex": {"regex": "/re/[0-9]+"}}, "route": {"cluster": "c"}},
        {"name": "sep", "match": {"path_separated_prefix": "/api/dev"}, "route": {"cluster": "c"}},
        {"name": "prefix-ci", "match": {"prefix": "/Up", "case_sensitive": false}, "route": {"cluster": "c"}},
        {"name": "prefix", "match": {"prefix": "/p"}, "route": {"cluster": "c"}},
    ]))
    .unwrap();
    let pick = |path: &str| selected(&t, &Req::get("h", path));
    assert_eq!(pick("/exact").as_deref(), Some("exact"));
    assert_eq!(
        pick("/exact?x=1").as_deref(),
        Some("exact"),
        "the query is not part of the path"
    );
    assert_eq!(pick("/exact/"), None);
    assert_eq!(pick("/Exact"), None, "case-sensitive by default");
    assert_eq!(pick("/ci").as_deref(), Some("exact-ci"));
    assert_eq!(pick("/re/123").as_deref(), Some("regex"));
    assert_eq!(
        pick("/re/123/x"),
        None,
        "the regex must match the whole path"
    );
    assert_eq!(pick("/re/12a"), None);
    assert_eq!(pick("/api/dev").as_deref(), Some("sep"));
    assert_eq!(pick("/api/dev/v1?x").as_deref(), Some("sep"));
    assert_eq!(pick("/api/developer"), None);
    assert_eq!(pick("/UPPER").as_deref(), Some("prefix-ci"));
    assert_eq!(pick("/pa").as_deref(), Some("prefix"));
    assert_eq!(pick("/Pa"), None);
}

#[test]
fn header_matchers() {
    let m = |headers: serde_json::Value| {
        one(
            json!({"name": "r", "match": {"prefix": "/", "headers": headers}, "route": {"cluster": "c"}}),
        )
    };
    let hit = |t: &RouteTable, req: Req| selected(t, &req).is_some();
    let t = m(json!([{"name": "x-a", "string_match": {"exact": "a"}}]));
    assert!(hit(&t, Req::get("h", "/").header("x-a", "a")));
    assert!(!hit(&t, Req::get("h", "/").header("x-a", "b")));
    assert!(
        !hit(&t, Req::get("h", "/").header("x-a", "a").header("x-a", "b")),
        "values are joined with ,"
    );
    let t = m(json!([{"name": "x-a", "string_match": {"exact": "a,b"}}]));
    assert!(hit(
        &t,
        Req::get("h", "/").header("x-a", "a").header("x-a", "b")
    ));
    let t = m(json!([{"name": "X-P", "string_match": {"prefix": "pre"}}]));
    assert!(hit(&t, Req::get("h", "/").header("x-p", "prefix")));
    assert!(!hit(&t, Req::get("h", "/").header("x-p", "pro")));
    let t = m(json!([{"name": "x-r", "string_match": {"safe_regex": {"regex": "c[0-9]+"}}}]));
    assert!(hit(&t, Req::get("h", "/").header("x-r", "c12")));
    assert!(!hit(&t, Req::get("h", "/").header("x-r", "c12x")));
    let t = m(json!([{"name": "x-d", "present_match": true}]));
    assert!(hit(&t, Req::get("h", "/").header("x-d", "")));
    assert!(!hit(&t, Req::get("h", "/")));
    // withoutHeaders {} → present + invert: the header must be absent.
    let t = m(json!([{"name": "x-f", "present_match": true, "invert_match": true}]));
    assert!(hit(&t, Req::get("h", "/")));
    assert!(!hit(&t, Req::get("h", "/").header("x-f", "1")));
    // withoutHeaders {exact: e} → invert + treat missing as empty: absent matches.
    let t = m(
        json!([{"name": "x-e", "string_match": {"exact": "e"}, "invert_match": true, "treat_missing_header_as_empty": true}]),
    );
    assert!(hit(&t, Req::get("h", "/")));
    assert!(hit(&t, Req::get("h", "/").header("x-e", "other")));
    assert!(!hit(&t, Req::get("h", "/").header("x-e", "e")));
    // Without treat_missing_header_as_empty a missing header never matches, inverted or not.
    let t = m(json!([{"name": "x-e", "string_match": {"exact": "e"}, "invert_match": true}]));
    assert!(!hit(&t, Req::get("h", "/")));
    let t = m(json!([{"name": "x-n", "range_match": {"start": 1, "end": 10}}]));
    assert!(hit(&t, Req::get("h", "/").header("x-n", "9")));
    assert!(!hit(&t, Req::get("h", "/").header("x-n", "10")));
}

#[test]
fn pseudo_header_matchers() {
    let t = one(json!({"name": "r", "match": {"prefix": "/", "headers": [
        {"name": ":method", "string_match": {"exact": "POST"}},
        {"name": ":authority", "string_match": {"prefix": "reviews"}},
        {"name": ":scheme", "string_match": {"exact": "https"}},
    ]}, "route": {"cluster": "c"}}));
    let ok = Req::get("reviews:9080", "/")
        .method(Method::POST)
        .scheme("https");
    assert!(selected(&t, &ok).is_some());
    assert!(
        selected(&t, &Req::get("reviews:9080", "/").scheme("https")).is_none(),
        ":method"
    );
    assert!(
        selected(
            &t,
            &Req::get("ratings", "/")
                .method(Method::POST)
                .scheme("https")
        )
        .is_none(),
        ":authority"
    );
    assert!(
        selected(&t, &Req::get("reviews", "/").method(Method::POST)).is_none(),
        ":scheme"
    );
}

#[test]
fn query_parameter_matchers() {
    let t = one(
        json!({"name": "r", "match": {"prefix": "/", "query_parameters": [
        {"name": "q", "string_match": {"exact": "1"}},
        {"name": "r", "string_match": {"safe_regex": {"regex": "[a-z]+"}}},
        {"name": "s", "present_match": true},
    ]}, "route": {"cluster": "c"}}),
    );
    let pick = |path: &str| selected(&t, &Req::get("h", path)).is_some();
    assert!(pick("/x?q=1&r=abc&s"));
    assert!(pick("/x?s=&r=z&q=1&q=2"), "the first value counts");
    assert!(!pick("/x?q=2&r=abc&s"));
    assert!(!pick("/x?q=1&r=ab1&s"));
    assert!(!pick("/x?q=1&r=abc"), "s is missing");
    assert!(!pick("/x"));
}

#[test]
fn connect_matcher_and_connect_requests() {
    let t = routes(json!([
        {"name": "connect", "match": {"connect_matcher": {}}, "route": {"cluster": "tunnel", "upgrade_configs": [{"upgrade_type": "CONNECT", "connect_config": {}}]}},
        {"name": "http", "match": {"prefix": ""}, "route": {"cluster": "web"}},
    ]))
    .unwrap();
    assert_eq!(
        selected(&t, &Req::connect("db:5432")).as_deref(),
        Some("connect")
    );
    assert_eq!(
        selected(&t, &Req::get("db:5432", "/")).as_deref(),
        Some("http"),
        "only CONNECT matches connect_matcher"
    );
    let only_http =
        routes(json!([{"name": "http", "match": {"prefix": ""}, "route": {"cluster": "web"}}]))
            .unwrap();
    assert_eq!(
        selected(&only_http, &Req::connect("db:5432")),
        None,
        "CONNECT never matches a path route"
    );
    let f = forward(t.select(&Req::connect("db:5432").head()).unwrap());
    assert!(f.connect);
    assert!(f.upgrades.is_empty());
}

#[test]
fn grpc_matcher() {
    let t =
        one(json!({"name": "r", "match": {"prefix": "/", "grpc": {}}, "route": {"cluster": "c"}}));
    assert!(
        selected(
            &t,
            &Req::get("h", "/").header("content-type", "application/grpc+proto")
        )
        .is_some()
    );
    assert!(
        selected(
            &t,
            &Req::get("h", "/").header("content-type", "application/json")
        )
        .is_none()
    );
}

#[test]
fn first_match_wins() {
    let t = routes(json!([
        {"name": "first", "match": {"prefix": "/a", "headers": [{"name": "x", "present_match": true}]}, "route": {"cluster": "c"}},
        {"name": "second", "match": {"prefix": "/a"}, "route": {"cluster": "c"}},
        {"name": "third", "match": {"prefix": "/"}, "route": {"cluster": "c"}},
    ]))
    .unwrap();
    assert_eq!(
        selected(&t, &Req::get("h", "/a").header("x", "1")).as_deref(),
        Some("first")
    );
    assert_eq!(
        selected(&t, &Req::get("h", "/ab")).as_deref(),
        Some("second")
    );
    assert_eq!(selected(&t, &Req::get("h", "/b")).as_deref(), Some("third"));
}

/// `ignore_port_in_host_matching`: the port of the authority does not take part in virtual
/// host selection (gateways set it on every table).
#[test]
fn ignore_port_in_host_matching_drops_the_port() {
    let t = table(
        json!({"name": "http.8080", "ignore_port_in_host_matching": true,
        "virtual_hosts": [
            {"name": "a", "domains": ["a.example.com"], "routes": [fwd("/", "a", json!({}))]},
            {"name": "v6", "domains": ["[::1]"], "routes": [fwd("/", "v6", json!({}))]}]}),
    )
    .unwrap();
    assert_eq!(
        selected(&t, &Req::get("a.example.com:8080", "/")).as_deref(),
        Some("a")
    );
    assert_eq!(
        selected(&t, &Req::get("a.example.com", "/")).as_deref(),
        Some("a")
    );
    assert_eq!(
        selected(&t, &Req::get("[::1]:8080", "/")).as_deref(),
        Some("v6")
    );
    assert_eq!(selected(&t, &Req::get("[::1]", "/")).as_deref(), Some("v6"));
    let strict = table(json!({"name": "t", "virtual_hosts": [
        {"name": "a", "domains": ["a.example.com"], "routes": [fwd("/", "a", json!({}))]}]}))
    .unwrap();
    assert_eq!(
        selected(&strict, &Req::get("a.example.com:8080", "/")),
        None
    );
}
