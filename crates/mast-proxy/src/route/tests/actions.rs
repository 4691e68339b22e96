//! Actions: weighted picks, hash keys, rewrites, redirects, direct responses, timeouts,
//! mirrors and header mutations.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use http::StatusCode;
use serde_json::json;

use super::*;
use crate::route::redirect::Redirect;

#[test]
fn weighted_pick_follows_weights() {
    let t = one(
        json!({"name": "w", "match": {"prefix": "/"}, "route": {"weighted_clusters": {"clusters": [
            {"name": "a", "weight": 70, "request_headers_to_add": [{"header": {"key": "x-canary", "value": "no"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]},
            {"name": "zero", "weight": 0},
            {"name": "b", "weight": 30, "host_rewrite_literal": "v2.reviews"},
        ]}}}),
    );
    let f = forward(only(&t));
    assert_eq!(
        f.clusters().collect::<Vec<_>>(),
        ["a", "b"],
        "weight-0 entries are dropped"
    );
    // Envoy: random % total, then the entry whose range holds it.
    assert_eq!(f.pick(0).cluster, "a");
    assert_eq!(f.pick(69).cluster, "a");
    assert_eq!(f.pick(70).cluster, "b");
    assert_eq!(f.pick(99).cluster, "b");
    assert_eq!(f.pick(100).cluster, "a");
    let mut counts: HashMap<String, u32> = HashMap::new();
    for _ in 0..10_000 {
        *counts
            .entry(f.pick(fastrand::u64(..)).cluster.clone())
            .or_default() += 1;
    }
    let a = counts["a"];
    assert!((6_500..7_500).contains(&a), "a picked {a} of 10,000");
    assert!(!f.pick(0).request_headers.is_empty());
    assert_eq!(f.pick(80).host_rewrite.as_ref().unwrap(), "v2.reviews");
}

#[test]
fn single_cluster_and_defaults() {
    let t = one(fwd("/", "c", json!({})));
    let f = forward(only(&t));
    assert_eq!(f.pick(12345).cluster, "c");
    assert_eq!(
        f.timeout,
        Some(Duration::from_secs(15)),
        "Envoy's default route timeout"
    );
    assert!(f.retry.is_none());
    assert!(f.max_stream_duration.is_none());
    assert!(!f.grpc_timeout_header_set);
    let t = one(fwd(
        "/",
        "c",
        json!({"timeout": "0s", "max_stream_duration": {"max_stream_duration": "0s", "grpc_timeout_header_max": "0s"}}),
    ));
    let f = forward(only(&t));
    assert_eq!(f.timeout, None, "0s disables the route timeout");
    assert_eq!(
        (f.max_stream_duration, f.grpc_timeout_header_max),
        (None, None)
    );
    assert!(f.grpc_timeout_header_set);
    let t = one(fwd(
        "/",
        "c",
        json!({"timeout": "2.500s", "upgrade_configs": [{"upgrade_type": "WebSocket"}]}),
    ));
    let f = forward(only(&t));
    assert_eq!(f.timeout, Some(Duration::from_millis(2500)));
    assert_eq!(f.upgrades, ["websocket"]);
    assert!(!f.connect);
}

#[test]
fn hash_policies() {
    let t = one(fwd(
        "/",
        "c",
        json!({"hash_policy": [
            {"header": {"header_name": "x-user"}},
            {"cookie": {"name": "sess", "ttl": "0s", "path": "/"}},
            {"connection_properties": {"source_ip": true}},
            {"query_parameter": {"name": "shard"}},
        ]}),
    ));
    let f = forward(only(&t));
    let ip: IpAddr = "10.1.0.9".parse().unwrap();
    assert_eq!(
        f.hash(&Req::get("h", "/").head(), None),
        None,
        "nothing yields a key"
    );
    let user = f.hash(&Req::get("h", "/").header("x-user", "alice").head(), None);
    assert!(user.is_some());
    assert_eq!(
        user,
        f.hash(
            &Req::get("h2", "/other").header("x-user", "alice").head(),
            None
        ),
        "same key, same hash"
    );
    assert_ne!(
        user,
        f.hash(&Req::get("h", "/").header("x-user", "bob").head(), None)
    );
    let both = f.hash(
        &Req::get("h", "/")
            .header("x-user", "alice")
            .header("cookie", "sess=1")
            .head(),
        None,
    );
    assert!(both.is_some() && both != user, "keys combine");
    let by_ip = f.hash(&Req::get("h", "/").head(), Some(ip));
    assert_eq!(by_ip, Some(super::super::hash::xxh64(b"10.1.0.9", 0)));
    let by_query = f.hash(&Req::get("h", "/x?a=1&shard=7").head(), None);
    assert_eq!(by_query, Some(super::super::hash::xxh64(b"7", 0)));
    // Header values are sorted, so their order does not matter.
    let ab = f.hash(
        &Req::get("h", "/")
            .header("x-user", "a")
            .header("x-user", "b")
            .head(),
        None,
    );
    let ba = f.hash(
        &Req::get("h", "/")
            .header("x-user", "b")
            .header("x-user", "a")
            .head(),
        None,
    );
    assert_eq!(ab, ba);
    // A terminal policy that yields a key stops the rest.
    let t = one(fwd(
        "/",
        "c",
        json!({"hash_policy": [
            {"header": {"header_name": "x-user"}, "terminal": true},
            {"connection_properties": {"source_ip": true}},
        ]}),
    ));
    let f = forward(only(&t));
    let req = Req::get("h", "/").header("x-user", "alice");
    assert_eq!(f.hash(&req.head(), Some(ip)), user);
    assert_eq!(
        forward(only(&one(fwd("/", "c", json!({}))))).hash(&req.head(), Some(ip)),
        None
    );
}

#[test]
fn path_rewrites() {
    let t = routes(json!([
        {"name": "p", "match": {"prefix": "/api/"}, "route": {"cluster": "c", "prefix_rewrite": "/"}},
        {"name": "ci", "match": {"prefix": "/CI/", "case_sensitive": false}, "route": {"cluster": "c", "prefix_rewrite": "/v2/"}},
        {"name": "exact", "match": {"path": "/old"}, "route": {"cluster": "c", "prefix_rewrite": "/new"}},
        {"name": "re", "match": {"safe_regex": {"regex": "/v[0-9]+/.*"}}, "route": {"cluster": "c",
            "regex_rewrite": {"pattern": {"regex": "^/v([0-9]+)/(.*)$"}, "substitution": "/version/\\1/\\2"}}},
        {"name": "none", "match": {"prefix": "/"}, "route": {"cluster": "c"}},
    ]))
    .unwrap();
    let rewrite = |path: &str| {
        let req = Req::get("h", path);
        t.select(&req.head()).unwrap().rewritten_path(path)
    };
    assert_eq!(rewrite("/api/users?x=1").as_deref(), Some("/users?x=1"));
    assert_eq!(rewrite("/ci/a").as_deref(), Some("/v2/a"));
    assert_eq!(rewrite("/old?q").as_deref(), Some("/new?q"));
    assert_eq!(
        rewrite("/v3/a/b?z=1").as_deref(),
        Some("/version/3/a/b?z=1")
    );
    assert_eq!(rewrite("/other"), None);
}

fn redirect(r: serde_json::Value) -> Redirect {
    let t = one(json!({"name": "r", "match": {"prefix": "/"}, "redirect": r}));
    match &only(&t).action {
        Action::Redirect(r) => r.clone(),
        other => panic!("{other:?}"),
    }
}

fn location(r: &Redirect, req: &Req) -> (StatusCode, String) {
    let (s, v) = r.location(&req.head());
    (s, v.to_str().unwrap().to_owned())
}

#[test]
fn redirect_locations() {
    let full = redirect(
        json!({"path_redirect": "/new", "host_redirect": "new.example.com", "port_redirect": 8443, "scheme_redirect": "https", "response_code": "PERMANENT_REDIRECT"}),
    );
    assert_eq!(
        location(&full, &Req::get("reviews:9080", "/old?a=1")),
        (
            StatusCode::PERMANENT_REDIRECT,
            "https://new.example.com:8443/new?a=1".into()
        )
    );
    let host_only = redirect(json!({"host_redirect": "new.example.com"}));
    assert_eq!(
        location(&host_only, &Req::get("reviews:9080", "/p?q")),
        (
            StatusCode::MOVED_PERMANENTLY,
            "http://new.example.com/p?q".into()
        )
    );
    let port_only = redirect(json!({"port_redirect": 9090, "response_code": "FOUND"}));
    assert_eq!(
        location(&port_only, &Req::get("reviews:9080", "/p")).1,
        "http://reviews:9090/p",
        "the request's port is replaced"
    );
    let https = redirect(json!({"https_redirect": true, "strip_query": true}));
    assert_eq!(
        location(&https, &Req::get("web:80", "/p?q=1")).1,
        "https://web/p",
        "the default port of the old scheme is dropped"
    );
    assert_eq!(
        location(&https, &Req::get("web:8080", "/p")).1,
        "https://web:8080/p"
    );
    assert_eq!(
        location(&https, &Req::get("[fd00::1]:80", "/")).1,
        "https://[fd00::1]/"
    );
    let with_query = redirect(
        json!({"path_redirect": "/n?fixed=1", "strip_query": true, "response_code": "SEE_OTHER"}),
    );
    assert_eq!(
        location(&with_query, &Req::get("h", "/o?x=2")),
        (StatusCode::SEE_OTHER, "http://h/n?fixed=1".into())
    );
    let temp = redirect(json!({"response_code": "TEMPORARY_REDIRECT"}));
    assert_eq!(
        location(&temp, &Req::get("h", "/same")),
        (StatusCode::TEMPORARY_REDIRECT, "http://h/same".into())
    );
}

#[test]
fn direct_responses() {
    let t = routes(json!([
        {"name": "teapot", "match": {"path": "/teapot"}, "direct_response": {"status": 418, "body": {"inline_string": "I'm a teapot"}}},
        {"name": "bytes", "match": {"path": "/bytes"}, "direct_response": {"status": 200, "body": {"inline_bytes": "aGVsbG8="}}},
        {"name": "block", "match": {"prefix": "/"}, "direct_response": {"status": 502}},
    ]))
    .unwrap();
    let direct = |path: &str| match &t.select(&Req::get("h", path).head()).unwrap().action {
        Action::Direct(d) => (d.status, d.body.clone()),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        direct("/teapot"),
        (StatusCode::IM_A_TEAPOT, Some("I'm a teapot".into()))
    );
    assert_eq!(direct("/bytes"), (StatusCode::OK, Some("hello".into())));
    assert_eq!(direct("/x"), (StatusCode::BAD_GATEWAY, None));
}

#[test]
fn mirrors() {
    let t = one(fwd(
        "/",
        "c",
        json!({"request_mirror_policies": [
            {"cluster": "half", "runtime_fraction": {"default_value": {"numerator": 50}}, "disable_shadow_host_suffix_append": true},
            {"cluster": "tiny", "runtime_fraction": {"default_value": {"numerator": 125000, "denominator": "MILLION"}}},
            {"cluster": "all"},
            {"cluster": "none", "runtime_fraction": {"default_value": {"numerator": 0}}},
        ]}),
    ));
    let m = &forward(only(&t)).mirrors;
    assert_eq!(
        m.iter().map(|m| m.cluster.as_str()).collect::<Vec<_>>(),
        ["half", "tiny", "all", "none"]
    );
    assert!(m[0].sampled(49) && !m[0].sampled(50) && m[0].sampled(100));
    assert!(!m[0].shadow_host_suffix && m[1].shadow_host_suffix);
    assert!(m[1].sampled(124_999) && !m[1].sampled(125_000));
    assert!((0..1000).all(|r| m[2].sampled(r)));
    assert!((0..1000).all(|r| !m[3].sampled(r)));
}

#[test]
fn route_header_mutations() {
    let t = one(
        json!({"name": "r", "match": {"prefix": "/"}, "route": {"cluster": "c"},
        "request_headers_to_add": [
            {"header": {"key": "x-route", "value": "matches"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
            {"header": {"key": "x-trace", "value": "1"}, "append_action": "APPEND_IF_EXISTS_OR_ADD"}],
        "request_headers_to_remove": ["x-secret"],
        "response_headers_to_add": [{"header": {"key": "x-served-by", "value": "mast"}, "append_action": "ADD_IF_ABSENT"}],
        "response_headers_to_remove": ["server"]}),
    );
    let r = only(&t);
    let mut h = Req::get("h", "/")
        .header("x-route", "old")
        .header("x-trace", "0")
        .header("x-secret", "s")
        .headers;
    r.request_headers.apply(&mut h);
    assert_eq!(h["x-route"], "matches");
    assert_eq!(h.get_all("x-trace").iter().count(), 2);
    assert!(!h.contains_key("x-secret"));
    let mut resp = Req::get("h", "/")
        .header("server", "envoy")
        .header("x-served-by", "up")
        .headers;
    r.response_headers.apply(&mut resp);
    assert!(!resp.contains_key("server"));
    assert_eq!(resp["x-served-by"], "up");
}

/// `require_tls`: what a plaintext client sees (Envoy's SSL redirect: 301 to
/// `https://<host as sent><path>`), and that TLS or internal requests are routed.
#[test]
fn require_tls_redirects_plaintext_requests() {
    let t = table(json!({"name": "t", "virtual_hosts": [
        {"name": "all", "domains": ["all.example.com", "all.example.com:8080"], "require_tls": "ALL",
         "routes": [fwd("/", "all", json!({}))]},
        {"name": "ext", "domains": ["ext.example.com"], "require_tls": "EXTERNAL_ONLY",
         "routes": [fwd("/", "ext", json!({}))]},
        {"name": "none", "domains": ["*"], "routes": [fwd("/", "none", json!({}))]}
    ]}))
    .unwrap();
    let redirect_of = |req: &Req| match t.select(&req.head()).map(|r| &r.action) {
        Some(Action::Redirect(r)) => Some(location(r, req)),
        _ => None,
    };
    let plain = |host: &str, path: &str| Req::get(host, path).header("x-forwarded-proto", "http");
    assert_eq!(
        redirect_of(&plain("all.example.com", "/a/b?c=1")),
        Some((
            StatusCode::MOVED_PERMANENTLY,
            "https://all.example.com/a/b?c=1".to_owned()
        ))
    );
    assert_eq!(
        redirect_of(&plain("all.example.com:8080", "/")).map(|l| l.1),
        Some("https://all.example.com:8080/".to_owned()),
        "the host is kept as sent, port included"
    );
    let tls = Req::get("all.example.com", "/x").header("x-forwarded-proto", "https");
    assert_eq!(selected(&t, &tls).as_deref(), Some("all"));
    let internal = plain("all.example.com", "/x").header("x-envoy-internal", "true");
    assert!(
        redirect_of(&internal).is_some(),
        "ALL redirects internal requests too"
    );

    assert!(redirect_of(&plain("ext.example.com", "/")).is_some());
    let internal = plain("ext.example.com", "/").header("x-envoy-internal", "true");
    assert_eq!(selected(&t, &internal).as_deref(), Some("ext"));
    assert_eq!(selected(&t, &plain("other", "/")).as_deref(), Some("none"));
}
