//! Unit tests: policy selection, filter order, every from/to/when field, the empty-spec and
//! `rules: [{}]` cases, TCP semantics, CUSTOM, deterministic bytes.

use envoy_types::pb::envoy::config::listener::v3::{Filter, filter};
use envoy_types::pb::envoy::config::rbac::v3::Rbac;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
use prost::Message;
use serde_json::{Value, json};

use super::tests_json;
use super::{inbound_http_filters, inbound_network_filters};

/// A snapshot of the resources in `yaml`.
pub(super) fn snapshot(yaml: &str) -> MeshSnapshot {
    let out = mast_config::load_str(yaml, "test.yaml", &Default::default());
    assert!(
        out.diagnostics
            .iter()
            .all(|d| d.level != mast_config::Level::Error),
        "load: {:?}",
        out.diagnostics
    );
    MeshSnapshot::build(&out.resources, SnapshotOptions::default(), 1)
}

/// A sidecar in `ns` with `labels`.
pub(super) fn proxy(ns: &str, labels: Value) -> ProxyNode {
    let id = format!("sidecar~10.0.0.1~httpbin-1.{ns}~{ns}.svc.cluster.local");
    ProxyNode::parse(&id, &json!({ "NAMESPACE": ns, "LABELS": labels })).expect("proxy")
}

fn httpbin() -> ProxyNode {
    proxy("foo", json!({ "app": "httpbin", "version": "v1" }))
}

/// The RBAC rules of an HTTP RBAC filter.
pub(super) fn http_rules(f: &HttpFilter) -> Rbac {
    assert_eq!(f.name, "envoy.filters.http.rbac");
    let Some(http_filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        panic!("typed config expected");
    };
    HttpRbac::decode(any.value.as_slice())
        .expect("decodes")
        .rules
        .expect("rules")
}

/// The RBAC rules of a network RBAC filter.
fn tcp_rules(f: &Filter) -> Rbac {
    assert_eq!(f.name, "envoy.filters.network.rbac");
    let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        panic!("typed config expected");
    };
    let r = NetworkRbac::decode(any.value.as_slice()).expect("decodes");
    assert_eq!(r.stat_prefix, "tcp.");
    r.rules.expect("rules")
}

fn policy_yaml(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{spec}\n"
    )
}

/// The single policy of the single HTTP RBAC filter generated for `spec` (in `foo`), as JSON.
fn only_policy(spec: &str) -> Value {
    let snap = snapshot(&policy_yaml("foo", "p", spec));
    let filters = inbound_http_filters(&snap, &httpbin(), 8080);
    assert_eq!(filters.len(), 1, "one RBAC filter");
    let rules = tests_json::rbac(&http_rules(&filters[0]));
    rules["policies"]["ns[foo]-policy[p]-rule[0]"].clone()
}

fn authn(m: Value) -> Value {
    json!({ "authenticated": { "principalName": m } })
}

#[test]
fn no_policy_no_filter() {
    let snap = snapshot("");
    assert!(inbound_http_filters(&snap, &httpbin(), 80).is_empty());
    assert!(inbound_network_filters(&snap, &httpbin(), 80).is_empty());
}

#[test]
fn selection_root_namespace_namespace_and_selector() {
    let yaml = [
        policy_yaml("istio-system", "mesh", "  rules: [{}]"),
        policy_yaml("foo", "ns-wide", "  rules: [{}]"),
        policy_yaml("foo", "v1-only", "  selector:\n    matchLabels: {version: v1}\n  rules: [{}]"),
        policy_yaml("foo", "v2-only", "  selector:\n    matchLabels: {version: v2}\n  rules: [{}]"),
        policy_yaml("bar", "other-ns", "  rules: [{}]"),
        policy_yaml(
            "istio-system",
            "mesh-selected",
            "  selector:\n    matchLabels: {app: httpbin}\n  rules: [{}]",
        ),
        policy_yaml(
            "foo",
            "gateway-only",
            "  targetRefs:\n  - kind: Gateway\n    group: gateway.networking.k8s.io\n    name: gw\n  rules: [{}]",
        ),
    ]
    .join("---\n");
    let snap = snapshot(&yaml);
    let sel = super::selection::authorization_policies(&snap, &httpbin());
    let names: Vec<String> = sel
        .allow
        .iter()
        .map(|c| format!("{}/{}", c.namespace, c.name))
        .collect();
    assert_eq!(
        names,
        [
            "istio-system/mesh",
            "istio-system/mesh-selected",
            "foo/ns-wide",
            "foo/v1-only"
        ]
    );
    let other = proxy("bar", json!({ "app": "x" }));
    let sel = super::selection::authorization_policies(&snap, &other);
    let names: Vec<&str> = sel.allow.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["mesh", "other-ns"]);
}

#[test]
fn filter_order_is_audit_deny_allow_and_actions() {
    let yaml = [
        policy_yaml("foo", "a", "  action: ALLOW\n  rules: [{}]"),
        policy_yaml("foo", "d", "  action: DENY\n  rules: [{}]"),
        policy_yaml("foo", "l", "  action: AUDIT\n  rules: [{}]"),
    ]
    .join("---\n");
    let snap = snapshot(&yaml);
    let filters = inbound_http_filters(&snap, &httpbin(), 80);
    let actions: Vec<i32> = filters.iter().map(|f| http_rules(f).action).collect();
    assert_eq!(actions, [2, 1, 0], "LOG, DENY, ALLOW");
    let names: Vec<Vec<String>> = filters
        .iter()
        .map(|f| http_rules(f).policies.into_keys().collect())
        .collect();
    assert_eq!(names[0], ["ns[foo]-policy[l]-rule[0]"]);
    assert_eq!(names[1], ["ns[foo]-policy[d]-rule[0]"]);
    let tcp = inbound_network_filters(&snap, &httpbin(), 80);
    let actions: Vec<i32> = tcp.iter().map(|f| tcp_rules(f).action).collect();
    assert_eq!(actions, [2, 1, 0]);
}

#[test]
fn empty_spec_allow_denies_everything() {
    let p = only_policy("  {}");
    assert_eq!(
        p,
        json!({
            "permissions": [{ "notRule": { "any": true } }],
            "principals": [{ "notId": { "any": true } }],
        })
    );
}

#[test]
fn empty_rule_allows_everything() {
    let p = only_policy("  rules: [{}]");
    assert_eq!(
        p,
        json!({
            "permissions": [{ "andRules": { "rules": [{ "any": true }] } }],
            "principals": [{ "andIds": { "ids": [{ "any": true }] } }],
        })
    );
}

#[test]
fn principals_namespaces_service_accounts() {
    let p = only_policy(
        "  rules:\n  - from:\n    - source:\n        principals: [\"cluster.local/ns/a/sa/b\", \"pre*\", \"*suf\", \"*\"]\n        namespaces: [\"ns-*\"]\n        serviceAccounts: [\"sa\", \"other/sa2\"]\n        notPrincipals: [\"bad\"]",
    );
    let ids = &p["principals"][0]["andIds"]["ids"];
    assert_eq!(
        ids[0]["orIds"]["ids"],
        json!([
            authn(json!({ "exact": "spiffe://cluster.local/ns/a/sa/b" })),
            authn(json!({ "prefix": "spiffe://pre" })),
            authn(json!({ "safeRegex": { "regex": "spiffe://.*suf" } })),
            authn(json!({ "safeRegex": { "regex": ".+" } })),
        ])
    );
    assert_eq!(
        ids[1],
        json!({ "notId": { "orIds": { "ids": [authn(json!({ "exact": "spiffe://bad" }))] } } })
    );
    assert_eq!(
        ids[2]["orIds"]["ids"],
        json!([
            authn(json!({ "safeRegex": { "regex": "spiffe://.+/ns/foo/(.+/|)sa/sa(/.+)?" } })),
            authn(json!({ "safeRegex": { "regex": "spiffe://.+/ns/other/(.+/|)sa/sa2(/.+)?" } })),
        ])
    );
    assert_eq!(
        ids[3]["orIds"]["ids"],
        json!([authn(json!({ "safeRegex": { "regex": ".*/ns/ns-.*/.*" } }))])
    );
}

#[test]
fn ip_blocks_are_direct_remote_ip_and_remote_ip() {
    let p = only_policy(
        "  rules:\n  - from:\n    - source:\n        ipBlocks: [\"10.0.0.1\", \"10.1.0.0/16\"]\n        remoteIpBlocks: [\"2001:db8::/32\"]",
    );
    let ids = &p["principals"][0]["andIds"]["ids"];
    assert_eq!(
        ids[0],
        json!({ "orIds": { "ids": [{ "remoteIp": { "addressPrefix": "2001:db8::", "prefixLen": 32 } }] } })
    );
    assert_eq!(
        ids[1]["orIds"]["ids"],
        json!([
            { "directRemoteIp": { "addressPrefix": "10.0.0.1", "prefixLen": 32 } },
            { "directRemoteIp": { "addressPrefix": "10.1.0.0", "prefixLen": 16 } },
        ])
    );
}

#[test]
fn operation_fields() {
    let p = only_policy(
        "  rules:\n  - to:\n    - operation:\n        hosts: [\"Example.com\", \"*.example.com\"]\n        methods: [\"GET\"]\n        paths: [\"/api/*\", \"*.png\", \"/x/{*}/y\"]\n        ports: [\"8080\"]\n        notPaths: [\"/admin\"]",
    );
    let rules = &p["permissions"][0]["andRules"]["rules"];
    assert_eq!(
        rules[0]["orRules"]["rules"],
        json!([
            { "header": { "name": ":authority", "stringMatch": { "exact": "Example.com", "ignoreCase": true } } },
            { "header": { "name": ":authority", "stringMatch": { "suffix": ".example.com", "ignoreCase": true } } },
        ])
    );
    assert_eq!(
        rules[1]["orRules"]["rules"],
        json!([{ "header": { "name": ":method", "stringMatch": { "exact": "GET" } } }])
    );
    assert_eq!(
        rules[2]["orRules"]["rules"],
        json!([
            { "urlPath": { "path": { "prefix": "/api/" } } },
            { "urlPath": { "path": { "suffix": ".png" } } },
            { "uriTemplate": { "name": "uri-template" } },
        ])
    );
    assert_eq!(
        rules[3],
        json!({ "notRule": { "orRules": { "rules": [{ "urlPath": { "path": { "exact": "/admin" } } }] } } })
    );
    assert_eq!(
        rules[4],
        json!({ "orRules": { "rules": [{ "destinationPort": 8080 }] } })
    );
}

#[test]
fn when_conditions_split_between_principal_and_permission() {
    let p = only_policy(
        "  rules:\n  - when:\n    - key: request.headers[x-token]\n      values: [\"abc\"]\n    - key: destination.port\n      notValues: [\"9000\"]\n    - key: connection.sni\n      values: [\"*.local\"]\n    - key: source.namespace\n      values: [\"prod\"]\n    - key: experimental.envoy.filters.a.b[c]\n      values: [\"v\", \"[w]\"]",
    );
    let perms = &p["permissions"][0]["andRules"]["rules"];
    assert_eq!(
        perms[0],
        json!({ "notRule": { "orRules": { "rules": [{ "destinationPort": 9000 }] } } })
    );
    assert_eq!(
        perms[1],
        json!({ "orRules": { "rules": [{ "requestedServerName": { "suffix": ".local" } }] } })
    );
    assert_eq!(
        perms[2]["metadata"],
        json!({ "filter": "envoy.filters.a.b", "path": [{ "key": "c" }], "value": { "orMatch": { "valueMatchers": [
            { "stringMatch": { "exact": "v" } },
            { "listMatch": { "oneOf": { "stringMatch": { "exact": "w" } } } },
        ] } } })
    );
    let ids = &p["principals"][0]["andIds"]["ids"];
    assert_eq!(
        ids[0],
        json!({ "orIds": { "ids": [{ "header": { "name": "x-token", "stringMatch": { "exact": "abc" } } }] } })
    );
    assert_eq!(
        ids[1]["orIds"]["ids"][0],
        authn(json!({ "safeRegex": { "regex": ".*/ns/prod/.*" } }))
    );
}

fn jwt_md(claim: &str, m: Value) -> Value {
    json!({ "metadata": {
        "filter": "envoy.filters.http.jwt_authn",
        "path": [{ "key": "payload" }, { "key": claim }],
        "value": { "stringMatch": m },
    } })
}

#[test]
fn request_principals_read_the_jwt_authn_payload() {
    let p = only_policy(
        "  rules:\n  - from:\n    - source:\n        requestPrincipals: [\"https://issuer.example.com/alice\", \"*\"]\n        notRequestPrincipals: [\"https://evil.example.com/*\"]",
    );
    let ids = &p["principals"][0]["andIds"]["ids"];
    let and = |a: Value, b: Value| json!({ "andIds": { "ids": [a, b] } });
    assert_eq!(
        ids[0],
        json!({ "orIds": { "ids": [
            and(jwt_md("iss", json!({ "exact": "https://issuer.example.com" })), jwt_md("sub", json!({ "exact": "alice" }))),
            and(jwt_md("iss", json!({ "safeRegex": { "regex": ".+" } })), jwt_md("sub", json!({ "safeRegex": { "regex": ".+" } }))),
        ] } })
    );
    assert_eq!(
        ids[1],
        json!({ "notId": and(
            jwt_md("iss", json!({ "exact": "https://evil.example.com" })),
            jwt_md("sub", json!({ "safeRegex": { "regex": ".+" } })),
        ) })
    );
}

#[test]
fn audiences_and_claims_match_strings_or_list_elements() {
    let p = only_policy(
        "  rules:\n  - when:\n    - key: request.auth.audiences\n      values: [\"api\"]\n    - key: request.auth.claims[groups][admin]\n      values: [\"yes\", \"y*\"]",
    );
    let ids = &p["principals"][0]["andIds"]["ids"];
    let v = json!({ "stringMatch": { "exact": "api" } });
    assert_eq!(
        ids[0]["metadata"],
        json!({ "filter": "envoy.filters.http.jwt_authn", "path": [{ "key": "payload" }, { "key": "aud" }],
            "value": { "orMatch": { "valueMatchers": [{ "listMatch": { "oneOf": v } }, v] } } })
    );
    assert_eq!(
        ids[1]["metadata"]["path"],
        json!([{ "key": "payload" }, { "key": "groups" }, { "key": "admin" }])
    );
}

#[test]
fn unknown_when_key_skips_the_rule() {
    let snap = snapshot(&policy_yaml(
        "foo",
        "p",
        "  rules:\n  - when:\n    - key: request.bogus\n      values: [\"x\"]\n  - {}",
    ));
    let filters = inbound_http_filters(&snap, &httpbin(), 80);
    let names: Vec<String> = http_rules(&filters[0]).policies.into_keys().collect();
    assert_eq!(names, ["ns[foo]-policy[p]-rule[1]"]);
}

#[test]
fn tcp_allow_drops_rules_with_http_fields() {
    let snap = snapshot(&policy_yaml(
        "foo",
        "p",
        "  rules:\n  - to:\n    - operation:\n        methods: [\"GET\"]\n  - from:\n    - source:\n        namespaces: [\"ns-1\"]\n    to:\n    - operation:\n        ports: [\"80\"]",
    ));
    let tcp = inbound_network_filters(&snap, &httpbin(), 80);
    let rules = tcp_rules(&tcp[0]);
    let names: Vec<&String> = rules.policies.keys().collect();
    assert_eq!(names, ["ns[foo]-policy[p]-rule[1]"]);
    // The HTTP chain keeps both.
    let http = inbound_http_filters(&snap, &httpbin(), 80);
    assert_eq!(http_rules(&http[0]).policies.len(), 2);
}

#[test]
fn tcp_allow_with_only_http_rules_denies_every_connection() {
    let snap = snapshot(&policy_yaml(
        "foo",
        "p",
        "  rules:\n  - to:\n    - operation:\n        paths: [\"/x\"]",
    ));
    let rules = tcp_rules(&inbound_network_filters(&snap, &httpbin(), 80)[0]);
    assert_eq!(rules.action, 0);
    assert!(rules.policies.is_empty(), "ALLOW with no policy denies all");
}

#[test]
fn tcp_deny_drops_only_the_http_values() {
    let snap = snapshot(&policy_yaml(
        "foo",
        "p",
        "  action: DENY\n  rules:\n  - from:\n    - source:\n        requestPrincipals: [\"*\"]\n    to:\n    - operation:\n        methods: [\"GET\"]\n        ports: [\"80\"]",
    ));
    let rules = tests_json::rbac(&tcp_rules(
        &inbound_network_filters(&snap, &httpbin(), 80)[0],
    ));
    assert_eq!(
        rules["policies"]["ns[foo]-policy[p]-rule[0]"],
        json!({
            "permissions": [{ "andRules": { "rules": [{ "orRules": { "rules": [{ "destinationPort": 80 }] } }] } }],
            "principals": [{ "andIds": { "ids": [{ "any": true }] } }],
        })
    );
}

#[test]
fn custom_policies_fail_closed() {
    let snap = snapshot(&policy_yaml(
        "foo",
        "ext",
        "  action: CUSTOM\n  provider:\n    name: opa\n  rules:\n  - to:\n    - operation:\n        paths: [\"/admin\"]",
    ));
    let filters = inbound_http_filters(&snap, &httpbin(), 80);
    assert_eq!(filters.len(), 1);
    let rules = http_rules(&filters[0]);
    assert_eq!(rules.action, 1, "DENY");
    let names: Vec<String> = rules.policies.into_keys().collect();
    assert_eq!(
        names,
        ["istio-ext-authz-opa-ns[foo]-policy[ext]-rule[0]-deny-due-to-bad-CUSTOM-action"]
    );
    let tcp = inbound_network_filters(&snap, &httpbin(), 80);
    assert_eq!(tcp_rules(&tcp[0]).action, 1);
}

#[test]
fn encoding_is_deterministic_and_decodes() {
    let rules: String = (0..20)
        .map(|i| format!("  - from:\n    - source:\n        principals: [\"p{i}\"]\n"))
        .collect();
    let yaml = policy_yaml("foo", "many", &format!("  rules:\n{rules}"));
    let a = inbound_http_filters(&snapshot(&yaml), &httpbin(), 80);
    let b = inbound_http_filters(&snapshot(&yaml), &httpbin(), 80);
    assert_eq!(a, b, "same bytes");
    assert_eq!(http_rules(&a[0]).policies.len(), 20);
    let Some(http_filter::ConfigType::TypedConfig(any)) = &a[0].config_type else {
        panic!()
    };
    let decoded = HttpRbac::decode(any.value.as_slice()).expect("decodes");
    assert_eq!(decoded.encoded_len(), any.value.len());
    assert_eq!(decoded.shadow_rules_stat_prefix, "istio_dry_run_allow_");
}
