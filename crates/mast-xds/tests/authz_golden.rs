//! AuthorizationPolicy → RBAC against Istio's own golden files
//! (`pilot/pkg/security/authz/builder/testdata`, copied into `authz_testdata/` with their
//! origin and the normalisations this comparison applies in `authz_testdata/README.md`).
//!
//! Each input is loaded as a user's file, the snapshot is built, and the filters Mast
//! generates for a sidecar `httpbin` (`app: httpbin, version: v1`) in `foo` are compared with
//! Istio's expected filter: name, type, `rules` (action and every policy's principals and
//! permissions) and, for TCP, `statPrefix`.

#[path = "../src/authz/tests_json.rs"]
mod tests_json;

use envoy_types::pb::envoy::config::listener::v3::filter;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter;
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
use prost::Message;
use serde_json::{Map, Value, json};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/authz_testdata");

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{DATA}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn snapshot(case: &str) -> MeshSnapshot {
    let file = format!("{case}-in.yaml");
    let out = mast_config::load_str(&read(&file), &file, &Default::default());
    assert!(
        out.diagnostics
            .iter()
            .all(|d| d.level != mast_config::Level::Error),
        "{file}: {:?}",
        out.diagnostics
    );
    MeshSnapshot::build(&out.resources, SnapshotOptions::default(), 1)
}

fn httpbin() -> ProxyNode {
    let meta = json!({ "NAMESPACE": "foo", "LABELS": { "app": "httpbin", "version": "v1" } });
    ProxyNode::parse(
        "sidecar~10.0.0.1~httpbin-1.foo~foo.svc.cluster.local",
        &meta,
    )
    .expect("proxy")
}

fn golden(case: &str) -> Value {
    let text = read(&format!("{case}-out.yaml"));
    let docs = mast_config::yaml::parse_documents(&text);
    let doc = docs[0].as_ref().expect("golden parses");
    normalise(doc.value.clone())
}

/// Header matchers' deprecated fields as `stringMatch`.
fn header_string_match(o: &mut Map<String, Value>) {
    for (old, new) in [
        ("exactMatch", "exact"),
        ("prefixMatch", "prefix"),
        ("suffixMatch", "suffix"),
    ] {
        if let Some(v) = o.remove(old) {
            o.insert("stringMatch".into(), json!({ new: v }));
        }
    }
}

fn has_metadata(v: &Value) -> bool {
    match v {
        Value::Object(o) => o.contains_key("metadata") || o.values().any(has_metadata),
        Value::Array(a) => a.iter().any(has_metadata),
        _ => false,
    }
}

/// The normalisations listed in `authz_testdata/README.md`.
fn normalise(v: Value) -> Value {
    match v {
        Value::Object(mut o) => {
            o.remove("googleRe2");
            o.remove("shadowRulesStatPrefix");
            header_string_match(&mut o);
            for (set, list) in [("andRules", "rules"), ("andIds", "ids")] {
                if let Some(Value::Array(items)) = o.get_mut(set).and_then(|s| s.get_mut(list)) {
                    items.retain(|i| !has_metadata(i));
                }
            }
            Value::Object(o.into_iter().map(|(k, v)| (k, normalise(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(normalise).collect()),
        other => other,
    }
}

fn http_filters(case: &str) -> Vec<Value> {
    let snap = snapshot(case);
    mast_xds::authz::inbound_http_filters(&snap, &httpbin(), 80)
        .iter()
        .map(|f| {
            let Some(http_filter::ConfigType::TypedConfig(any)) = &f.config_type else {
                panic!("typed config");
            };
            let rbac = HttpRbac::decode(any.value.as_slice()).expect("decodes");
            let rules = tests_json::rbac(&rbac.rules.expect("rules"));
            normalise(json!({
                "name": f.name,
                "typedConfig": { "@type": any.type_url, "rules": rules },
            }))
        })
        .collect()
}

fn tcp_filters(case: &str) -> Vec<Value> {
    let snap = snapshot(case);
    mast_xds::authz::inbound_network_filters(&snap, &httpbin(), 80)
        .iter()
        .map(|f| {
            let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
                panic!("typed config");
            };
            let rbac = NetworkRbac::decode(any.value.as_slice()).expect("decodes");
            let rules = tests_json::rbac(&rbac.rules.expect("rules"));
            normalise(json!({
                "name": f.name,
                "typedConfig": { "@type": any.type_url, "rules": rules, "statPrefix": rbac.stat_prefix },
            }))
        })
        .collect()
}

fn assert_same(case: &str, ours: &Value, want: &Value) {
    assert!(
        ours == want,
        "{case}: generated\n{}\nIstio's golden (normalised)\n{}",
        serde_json::to_string_pretty(ours).unwrap_or_default(),
        serde_json::to_string_pretty(want).unwrap_or_default()
    );
}

fn check_http(case: &str) {
    let ours = http_filters(case);
    assert_eq!(ours.len(), 1, "{case}: one HTTP RBAC filter");
    assert_same(case, &ours[0], &golden(case));
}

fn check_tcp(case: &str) {
    let ours = tcp_filters(case);
    assert_eq!(ours.len(), 1, "{case}: one network RBAC filter");
    assert_same(case, &ours[0], &golden(case));
}

#[test]
fn http_allow_path() {
    check_http("http-allow-path");
}

#[test]
fn http_allow_empty_rule() {
    check_http("http-allow-empty-rule");
}

#[test]
fn http_deny_empty_rule() {
    check_http("http-deny-empty-rule");
}

#[test]
fn http_allow_nil_rule() {
    check_http("http-allow-nil-rule");
}

#[test]
fn http_deny_and_allow() {
    let case = "http-deny-and-allow";
    let ours = http_filters(case);
    assert_eq!(ours.len(), 2, "DENY then ALLOW");
    assert_same(case, &ours[0], &golden(case));
    let allow = &ours[1]["typedConfig"]["rules"];
    assert_eq!(
        allow,
        &json!({ "policies": { "ns[foo]-policy[httpbin-allow]-rule[0]": {
            "permissions": [{ "andRules": { "rules": [{ "any": true }] } }],
            "principals": [{ "andIds": { "ids": [{ "orIds": { "ids": [
                { "authenticated": { "principalName": { "exact": "spiffe://allow" } } }
            ] } }] } }],
        } } })
    );
}

#[test]
fn tcp_allow_both_http_tcp() {
    check_tcp("tcp-allow-both-http-tcp");
}

#[test]
fn tcp_allow_only_http() {
    check_tcp("tcp-allow-only-http");
}

#[test]
fn tcp_deny_both_http_tcp() {
    check_tcp("tcp-deny-both-http-tcp");
}
