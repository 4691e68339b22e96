//! RBAC table tests: every permission and principal kind, ALLOW / DENY / LOG, shadow rules,
//! and Istio-generated policies (istio/istio `pilot/pkg/security/authz/builder/testdata`).

use std::net::SocketAddr;
use std::sync::Arc;

use envoy_types::pb::envoy::config::rbac::v3::Rbac as RbacRules;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbacProto;
use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::*;

/// A request to evaluate; defaults: GET http://svc/api/v1?x=1 from 10.0.0.1 to 10.0.0.9:8080.
#[derive(Clone)]
struct Req {
    method: &'static str,
    authority: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    local: SocketAddr,
    peer: SocketAddr,
    remote: Option<&'static str>,
    tls: Option<PeerTls>,
    metadata: Value,
}

fn req() -> Req {
    Req {
        method: "GET",
        authority: "svc.default.svc.cluster.local",
        path: "/api/v1?x=1",
        headers: Vec::new(),
        local: "10.0.0.9:8080".parse().unwrap(),
        peer: "10.0.0.1:40000".parse().unwrap(),
        remote: None,
        tls: None,
        metadata: json!({}),
    }
}

fn mtls(uri: &str) -> PeerTls {
    PeerTls {
        peer_uri_sans: vec![uri.to_owned()],
        peer_dns_sans: vec!["sleep.default.svc".to_owned()],
        peer_subject: "CN=sleep,O=mast".to_owned(),
        sni: Some("outbound_.8080_._.svc.default.svc.cluster.local".to_owned()),
        ..PeerTls::default()
    }
}

impl Req {
    fn eval<R>(&self, f: impl FnOnce(&Subject<'_>) -> R) -> R {
        let mut headers = HeaderMap::new();
        for (k, v) in &self.headers {
            headers.append(*k, HeaderValue::from_static(v));
        }
        let metadata = self.metadata.as_object().cloned().unwrap_or_default();
        let s = Subject {
            method: self.method,
            authority: self.authority,
            path: self.path,
            scheme: "http",
            headers: &headers,
            local: self.local,
            peer: self.peer,
            remote_ip: self.remote.map_or(self.peer.ip(), |r| r.parse().unwrap()),
            tls: self.tls.as_ref(),
            metadata: &metadata,
        };
        f(&s)
    }
}

fn engine(v: Value) -> Engine {
    let rules: RbacRules = mast_xds_json::json_to_message(&v).unwrap();
    Engine::from_proto("rules", &rules).unwrap()
}

/// An ALLOW engine with one policy: `permission` × `principal`.
fn allow(permission: Value, principal: Value) -> Engine {
    engine(json!({"action": "ALLOW", "policies": {"p": {
        "permissions": [permission], "principals": [principal]}}}))
}

fn allowed(e: &Engine, r: &Req) -> bool {
    r.eval(|s| e.evaluate(s).allowed)
}

#[test]
fn every_permission_kind() {
    let base = req();
    let any = json!({"any": true});
    let with_sni = Req {
        tls: Some(mtls("spiffe://cluster.local/ns/default/sa/sleep")),
        ..req()
    };
    let multi = Req {
        headers: vec![("x-tag", "a"), ("x-tag", "b")],
        ..req()
    };
    let claims = Req {
        metadata: json!({"envoy.filters.http.jwt_authn": {"payload": {
            "iss": "https://issuer", "groups": ["dev", "ops"], "admin": true, "level": 3}}}),
        ..req()
    };
    let md = |path: &[&str], value: Value| {
        json!({"metadata": {"filter": "envoy.filters.http.jwt_authn",
            "path": path.iter().map(|k| json!({"key": k})).collect::<Vec<_>>(), "value": value}})
    };
    #[rustfmt::skip]
    let cases: Vec<(&str, Value, &Req, bool)> = vec![
        ("any", any.clone(), &base, true),
        ("authority ignore_case", json!({"header": {"name": ":authority", "stringMatch": {"exact": "SVC.default.svc.cluster.local", "ignoreCase": true}}}), &base, true),
        ("authority suffix miss", json!({"header": {"name": ":authority", "stringMatch": {"suffix": ".example.com"}}}), &base, false),
        ("method exact (deprecated)", json!({"header": {"name": ":method", "exactMatch": "GET"}}), &base, true),
        ("method other", json!({"header": {"name": ":method", "exactMatch": "POST"}}), &base, false),
        ("multi-valued header joined", json!({"header": {"name": "x-tag", "exactMatch": "a,b"}}), &multi, true),
        ("istio header regex", json!({"header": {"name": "x-tag", "safeRegexMatch": {"regex": "^b$|^b,.*|.*,b,.*|.*,b$"}}}), &multi, true),
        ("absent header present_match", json!({"header": {"name": "x-none", "presentMatch": true}}), &base, false),
        ("invert_match", json!({"header": {"name": ":method", "exactMatch": "POST", "invertMatch": true}}), &base, true),
        ("url_path prefix ignores query", json!({"urlPath": {"path": {"prefix": "/api/"}}}), &base, true),
        ("url_path exact ignores query", json!({"urlPath": {"path": {"exact": "/api/v1"}}}), &base, true),
        ("url_path suffix miss", json!({"urlPath": {"path": {"suffix": "/v2"}}}), &base, false),
        ("destination_port", json!({"destinationPort": 8080}), &base, true),
        ("destination_port other", json!({"destinationPort": 9090}), &base, false),
        ("destination_port_range", json!({"destinationPortRange": {"start": 8000, "end": 8081}}), &base, true),
        ("destination_port_range end exclusive", json!({"destinationPortRange": {"start": 8000, "end": 8080}}), &base, false),
        ("destination_ip", json!({"destinationIp": {"addressPrefix": "10.0.0.0", "prefixLen": 24}}), &base, true),
        ("destination_ip miss", json!({"destinationIp": {"addressPrefix": "10.0.1.0", "prefixLen": 24}}), &base, false),
        ("requested_server_name", json!({"requestedServerName": {"prefix": "outbound_.8080_"}}), &with_sni, true),
        ("requested_server_name plaintext", json!({"requestedServerName": {"prefix": "outbound_"}}), &base, false),
        ("and_rules", json!({"andRules": {"rules": [any, {"destinationPort": 8080}]}}), &base, true),
        ("and_rules one fails", json!({"andRules": {"rules": [any, {"destinationPort": 1}]}}), &base, false),
        ("or_rules", json!({"orRules": {"rules": [{"destinationPort": 1}, {"destinationPort": 8080}]}}), &base, true),
        ("or_rules empty", json!({"orRules": {"rules": []}}), &base, false),
        ("not_rule", json!({"notRule": {"destinationPort": 1}}), &base, true),
        ("metadata string", md(&["payload", "iss"], json!({"stringMatch": {"exact": "https://issuer"}})), &claims, true),
        ("metadata list one_of", md(&["payload", "groups"], json!({"listMatch": {"oneOf": {"stringMatch": {"exact": "ops"}}}})), &claims, true),
        ("metadata list miss", md(&["payload", "groups"], json!({"listMatch": {"oneOf": {"stringMatch": {"exact": "qa"}}}})), &claims, false),
        ("metadata bool", md(&["payload", "admin"], json!({"boolMatch": true})), &claims, true),
        ("metadata double range", md(&["payload", "level"], json!({"doubleMatch": {"range": {"start": 1, "end": 5}}})), &claims, true),
        ("metadata present", md(&["payload", "sub"], json!({"presentMatch": true})), &claims, false),
        ("metadata missing", md(&["payload", "iss"], json!({"stringMatch": {"exact": "https://issuer"}})), &base, false),
    ];
    for (name, permission, r, want) in cases {
        let e = allow(permission, json!({"any": true}));
        assert_eq!(allowed(&e, r), want, "{name}");
    }
}

#[test]
fn every_principal_kind() {
    let base = req();
    let sleep = "spiffe://cluster.local/ns/default/sa/sleep";
    let tls = Req {
        tls: Some(mtls(sleep)),
        ..req()
    };
    let tls_no_cert = Req {
        tls: Some(PeerTls::default()),
        ..req()
    };
    let xff = Req {
        remote: Some("192.168.1.7"),
        ..req()
    };
    let claims = Req {
        metadata: json!({"envoy.filters.http.jwt_authn": {"payload": {"iss": "i", "sub": "s"}}}),
        ..req()
    };
    let principal = |m: Value| json!({"authenticated": {"principalName": m}});
    let iss_sub = json!({"andIds": {"ids": [
        {"metadata": {"filter": "envoy.filters.http.jwt_authn", "path": [{"key": "payload"}, {"key": "iss"}], "value": {"stringMatch": {"exact": "i"}}}},
        {"metadata": {"filter": "envoy.filters.http.jwt_authn", "path": [{"key": "payload"}, {"key": "sub"}], "value": {"stringMatch": {"exact": "s"}}}}]}});
    #[rustfmt::skip]
    let cases: Vec<(&str, Value, &Req, bool)> = vec![
        ("any", json!({"any": true}), &base, true),
        ("uri san exact", principal(json!({"exact": sleep})), &tls, true),
        ("istio namespace regex", principal(json!({"safeRegex": {"regex": ".*/ns/default/.*"}})), &tls, true),
        ("istio namespace regex miss", principal(json!({"safeRegex": {"regex": ".*/ns/prod/.*"}})), &tls, false),
        ("dns san", principal(json!({"exact": "sleep.default.svc"})), &tls, true),
        ("subject", principal(json!({"prefix": "CN=sleep"})), &tls, true),
        ("plaintext is not authenticated", principal(json!({"safeRegex": {"regex": ".*"}})), &base, false),
        ("authenticated without matcher needs tls", json!({"authenticated": {}}), &tls_no_cert, true),
        ("authenticated without matcher, plaintext", json!({"authenticated": {}}), &base, false),
        ("tls without a certificate", principal(json!({"safeRegex": {"regex": ".+"}})), &tls_no_cert, false),
        ("direct_remote_ip", json!({"directRemoteIp": {"addressPrefix": "10.0.0.1", "prefixLen": 32}}), &xff, true),
        ("source_ip", json!({"sourceIp": {"addressPrefix": "10.0.0.0", "prefixLen": 8}}), &base, true),
        ("remote_ip uses x-forwarded-for", json!({"remoteIp": {"addressPrefix": "192.168.0.0", "prefixLen": 16}}), &xff, true),
        ("remote_ip without xff is the peer", json!({"remoteIp": {"addressPrefix": "10.0.0.1", "prefixLen": 32}}), &base, true),
        ("header", json!({"header": {"name": ":method", "exactMatch": "GET"}}), &base, true),
        ("url_path", json!({"urlPath": {"path": {"prefix": "/api"}}}), &base, true),
        ("request principal iss/sub", iss_sub.clone(), &claims, true),
        ("request principal without token", iss_sub, &base, false),
        ("or_ids", json!({"orIds": {"ids": [principal(json!({"exact": "x"})), {"any": true}]}}), &base, true),
        ("not_id", json!({"notId": principal(json!({"exact": sleep}))}), &tls, false),
        ("not_id plaintext", json!({"notId": principal(json!({"exact": sleep}))}), &base, true),
    ];
    for (name, principal, r, want) in cases {
        let e = allow(json!({"any": true}), principal);
        assert_eq!(allowed(&e, r), want, "{name}");
    }
}

#[test]
fn actions_allow_deny_log() {
    let policies = json!({
        "b-admin": {"permissions": [{"urlPath": {"path": {"prefix": "/admin"}}}], "principals": [{"any": true}]},
        "a-all": {"permissions": [{"header": {"name": ":method", "exactMatch": "DELETE"}}], "principals": [{"any": true}]}});
    let admin = Req {
        path: "/admin/x",
        ..req()
    };
    let deny = engine(json!({"action": "DENY", "policies": policies}));
    admin.eval(|s| {
        let d = deny.evaluate(s);
        assert!(!d.allowed);
        assert_eq!(d.policy, Some("b-admin"));
        assert_eq!(d.details, "rbac_access_denied_matched_policy[b-admin]");
    });
    assert!(allowed(&deny, &req()));
    let allow = engine(json!({"action": "ALLOW", "policies": policies}));
    assert!(allowed(&allow, &admin));
    req().eval(|s| {
        let d = allow.evaluate(s);
        assert!(!d.allowed);
        assert_eq!(d.details, "rbac_access_denied_matched_policy[none]");
    });
    // Policies are tried in name order: both match, "a-all" is the effective one.
    let both = Req {
        method: "DELETE",
        ..admin.clone()
    };
    both.eval(|s| assert_eq!(deny.evaluate(s).policy, Some("a-all")));
    let log = engine(json!({"action": "LOG", "policies": policies}));
    assert!(allowed(&log, &admin) && allowed(&log, &req()));
    // ALLOW with no policy at all denies everything (Istio's `{}` spec).
    let none = engine(json!({"action": "ALLOW"}));
    assert!(!allowed(&none, &req()));
}

#[test]
fn http_filter_shadow_rules_only_count() {
    let v = json!({
        "shadowRules": {"action": "DENY", "policies": {"all": {
            "permissions": [{"any": true}], "principals": [{"any": true}]}}},
        "shadowRulesStatPrefix": "istio_dry_run_allow_"});
    let proto: HttpRbacProto = mast_xds_json::json_to_message(&v).unwrap();
    let f = HttpRbac::from_proto(&proto).unwrap();
    req().eval(|s| {
        let c = f.check(s);
        assert!(c.enforced.allowed);
        assert_eq!(c.shadow.map(|d| d.allowed), Some(false));
    });
    assert_eq!(f.stats().shadow_denied.load(Ordering::Relaxed), 1);
    assert_eq!(f.stats().denied.load(Ordering::Relaxed), 0);
    assert_eq!(f.shadow_prefix(), "istio_dry_run_allow_");
}

#[test]
fn istio_generated_policy_decides_like_envoy() {
    // From istio/istio testdata http/allow-full-rule-out.yaml (trimmed): principals,
    // request principals (istio_authn metadata), namespaces, ip blocks, headers, paths,
    // methods, ports.
    let text = r#"
action: ALLOW
policies:
  ns[foo]-policy[httpbin]-rule[0]:
    permissions:
    - andRules:
        rules:
        - orRules:
            rules:
            - header: {name: ":method", exactMatch: GET}
            - header: {name: ":method", prefixMatch: method-prefix-}
        - orRules:
            rules:
            - urlPath: {path: {exact: /exact}}
            - urlPath: {path: {prefix: /prefix/}}
        - notRule:
            orRules:
              rules:
              - urlPath: {path: {prefix: /prefix/admin}}
        - orRules:
            rules:
            - destinationPort: 8080
    principals:
    - andIds:
        ids:
        - orIds:
            ids:
            - authenticated: {principalName: {exact: spiffe://cluster.local/ns/foo/sa/sleep}}
            - authenticated: {principalName: {safeRegex: {googleRe2: {}, regex: ".*/ns/bar/.*"}}}
        - notId:
            orIds:
              ids:
              - remoteIp: {addressPrefix: 9.0.0.1, prefixLen: 32}
"#;
    let doc = mast_config::yaml::parse_documents(text)
        .remove(0)
        .unwrap()
        .value;
    let e = engine(doc);
    let from = |uri: &str, path: &'static str| Req {
        path,
        tls: Some(mtls(uri)),
        ..req()
    };
    let sleep = "spiffe://cluster.local/ns/foo/sa/sleep";
    #[rustfmt::skip]
    let cases = [
        (from(sleep, "/exact"), true),
        (from(sleep, "/prefix/a?q"), true),
        (from(sleep, "/prefix/admin/x"), false),
        (from(sleep, "/other"), false),
        (from("spiffe://cluster.local/ns/bar/sa/any", "/exact"), true),
        (from("spiffe://cluster.local/ns/baz/sa/any", "/exact"), false),
        (Req { method: "POST", ..from(sleep, "/exact") }, false),
        (Req { remote: Some("9.0.0.1"), ..from(sleep, "/exact") }, false),
        (Req { path: "/exact", ..req() }, false),
    ];
    for (i, (r, want)) in cases.iter().enumerate() {
        assert_eq!(allowed(&e, r), *want, "case {i}");
    }
}

#[test]
fn refuses_what_it_cannot_honour() {
    let bad = [
        (
            json!({"any": false}),
            "rules.policies[\"p\"].permissions[0].any",
        ),
        (
            json!({"destinationPort": 70000}),
            "rules.policies[\"p\"].permissions[0].destination_port",
        ),
        (
            json!({"urlPath": {"path": {"safeRegex": {"regex": "("}}}}),
            "rules.policies[\"p\"].permissions[0].url_path.path.safe_regex.regex",
        ),
        (
            json!({"destinationIp": {"addressPrefix": "nope"}}),
            "rules.policies[\"p\"].permissions[0].destination_ip.address_prefix",
        ),
    ];
    for (permission, field) in bad {
        let v = json!({"action": "ALLOW", "policies": {"p": {"permissions": [permission], "principals": [{"any": true}]}}});
        let rules: RbacRules = mast_xds_json::json_to_message(&v).unwrap();
        let err = Engine::from_proto("rules", &rules).unwrap_err();
        assert_eq!(err.0, field);
    }
}

#[test]
fn network_filter_decides_connections() {
    let v = json!({"statPrefix": "tcp.", "rules": {"action": "ALLOW", "policies": {"p": {
        "permissions": [{"any": true}],
        "principals": [{"authenticated": {"principalName": {"exact": "spiffe://cluster.local/ns/default/sa/sleep"}}}]}}}});
    let any = mast_xds_json::json_to_any(NETWORK_RBAC_TYPE, &v).unwrap();
    let f = NetworkRbac::from_any(&any).unwrap();
    let mut conn = ConnInfo {
        local: "10.0.0.9:9000".parse().unwrap(),
        peer: "10.0.0.1:4000".parse().unwrap(),
        tls: None,
    };
    assert!(!f.allows_connection(&conn));
    conn.tls = Some(Arc::new(mtls("spiffe://cluster.local/ns/default/sa/sleep")));
    assert!(f.allows_connection(&conn));
    assert_eq!(f.stats().denied.load(Ordering::Relaxed), 1);
    assert_eq!(f.stats().allowed.load(Ordering::Relaxed), 1);
    let wrong = mast_xds_json::json_to_any(HTTP_RBAC_TYPE, &json!({})).unwrap();
    assert_eq!(NetworkRbac::from_any(&wrong).unwrap_err().0, "type_url");
}
