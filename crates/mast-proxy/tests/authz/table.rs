//! AuthorizationPolicy semantics as a table: Istio policies (in namespace `foo`) → mastd's
//! generated RBAC filters → mast-proxy's decision on sample requests, with the results Istio
//! documents (`{}` denies all, `rules: [{}]` allows all, DENY before ALLOW, AUDIT never
//! denies, `not*` forms, ip blocks, operations, `when` conditions).

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use mast_proxy::hcm::HcmConfig;
use mast_proxy::hcm::authz::{self, RequestFacts};
use mast_proxy::hcm::stream::ConnInfo;
use mast_proxy::tls::PeerTls;
use serde_json::json;

use super::{decode, generated};

/// A sample request.
#[derive(Clone)]
struct Req {
    principal: Option<&'static str>,
    peer: &'static str,
    port: u16,
    method: &'static str,
    host: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
}

const SLEEP: Req = Req {
    principal: Some("spiffe://cluster.local/ns/foo/sa/sleep"),
    peer: "10.1.2.3:5000",
    port: 8080,
    method: "GET",
    host: "httpbin.foo",
    path: "/get",
    headers: &[],
};

const BAR: Req = Req {
    principal: Some("spiffe://cluster.local/ns/bar/sa/client"),
    ..SLEEP
};

const PLAIN: Req = Req {
    principal: None,
    peer: "127.0.0.1:5000",
    ..SLEEP
};

fn hcm(policies: &str) -> Arc<HcmConfig> {
    let mut yaml = String::new();
    for (i, spec) in policies.split("\n---\n").enumerate() {
        yaml.push_str(&format!(
            "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n\
             metadata: {{name: p{i}, namespace: foo}}\nspec:\n{spec}\n"
        ));
    }
    let mut h: envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager =
        decode(json!({"stat_prefix": "t", "route_config": {"name": "r"},
            "http_filters": [{"name": "envoy.filters.http.router"}]}));
    let mut filters = generated(&yaml);
    filters.append(&mut h.http_filters);
    h.http_filters = filters;
    Arc::new(HcmConfig::from_proto(&h).expect("hcm"))
}

async fn decide(hcm: &HcmConfig, r: &Req) -> u16 {
    let peer: SocketAddr = r.peer.parse().expect("peer");
    let conn = ConnInfo {
        local: SocketAddr::from(([10, 0, 0, 9], r.port)),
        peer,
        tls: r.principal.map(|p| {
            Arc::new(PeerTls {
                peer_uri_sans: vec![p.to_owned()],
                peer_cert_sha256: "00".to_owned(),
                ..PeerTls::default()
            })
        }),
    };
    let mut headers = HeaderMap::new();
    for (k, v) in r.headers {
        headers.append(*k, HeaderValue::from_static(v));
    }
    let facts = RequestFacts {
        method: r.method,
        authority: r.host,
        path: r.path,
        scheme: "http",
        remote_ip: authz::remote_ip(&headers, peer.ip(), false, 0),
    };
    let clusters = mast_proxy::cluster::ClusterManager::new();
    match authz::run(&hcm.authz, &facts, &mut headers, &conn, &clusters).await {
        Ok(_) => 200,
        Err(local) => local.response.status().as_u16(),
    }
}

#[tokio::test]
async fn istio_authorization_policy_table() {
    #[rustfmt::skip]
    let table: &[(&str, &str, Req, u16)] = &[
        ("empty spec denies all", "  {}", SLEEP, 403),
        ("rules [{}] allows all", "  rules: [{}]", PLAIN, 200),
        ("namespaces: in", "  rules: [{from: [{source: {namespaces: [bar]}}]}]", BAR, 200),
        ("namespaces: out", "  rules: [{from: [{source: {namespaces: [bar]}}]}]", SLEEP, 403),
        ("namespaces: plaintext", "  rules: [{from: [{source: {namespaces: [bar]}}]}]", PLAIN, 403),
        ("notPrincipals: other", "  rules: [{from: [{source: {notPrincipals: [cluster.local/ns/foo/sa/sleep]}}]}]", BAR, 200),
        ("notPrincipals: excluded", "  rules: [{from: [{source: {notPrincipals: [cluster.local/ns/foo/sa/sleep]}}]}]", SLEEP, 403),
        ("principal prefix", "  rules: [{from: [{source: {principals: [\"cluster.local/ns/foo/*\"]}}]}]", SLEEP, 200),
        ("ipBlocks: in", "  rules: [{from: [{source: {ipBlocks: [10.1.0.0/16]}}]}]", SLEEP, 200),
        ("ipBlocks: out", "  rules: [{from: [{source: {ipBlocks: [10.1.0.0/16]}}]}]", PLAIN, 403),
        ("remoteIpBlocks via xff", "  rules: [{from: [{source: {remoteIpBlocks: [192.168.0.0/16]}}]}]", Req { headers: &[("x-forwarded-for", "192.168.7.7")], ..PLAIN }, 200),
        ("remoteIpBlocks: out", "  rules: [{from: [{source: {remoteIpBlocks: [192.168.0.0/16]}}]}]", PLAIN, 403),
        ("methods+ports: match", "  rules: [{to: [{operation: {methods: [GET], ports: [\"8080\"]}}]}]", PLAIN, 200),
        ("methods: other", "  rules: [{to: [{operation: {methods: [GET]}}]}]", Req { method: "POST", ..PLAIN }, 403),
        ("ports: other", "  rules: [{to: [{operation: {ports: [\"8080\"]}}]}]", Req { port: 9090, ..PLAIN }, 403),
        ("hosts suffix", "  rules: [{to: [{operation: {hosts: [\"*.example.com\"]}}]}]", Req { host: "A.Example.com", ..PLAIN }, 200),
        ("hosts: other", "  rules: [{to: [{operation: {hosts: [\"*.example.com\"]}}]}]", PLAIN, 403),
        ("paths exact", "  rules: [{to: [{operation: {paths: [/get]}}]}]", Req { path: "/get?x=1", ..PLAIN }, 200),
        ("notPaths", "  action: DENY\n  rules: [{to: [{operation: {notPaths: [/health]}}]}]", Req { path: "/health", ..PLAIN }, 200),
        ("notPaths: denied", "  action: DENY\n  rules: [{to: [{operation: {notPaths: [/health]}}]}]", PLAIN, 403),
        ("deny wins", "  action: DENY\n  rules: [{to: [{operation: {paths: [\"/admin*\"]}}]}]\n---\n  rules: [{}]", Req { path: "/admin/x", ..SLEEP }, 403),
        ("deny elsewhere", "  action: DENY\n  rules: [{to: [{operation: {paths: [\"/admin*\"]}}]}]\n---\n  rules: [{}]", SLEEP, 200),
        ("audit never denies", "  action: AUDIT\n  rules: [{}]", PLAIN, 200),
        ("when source.namespace", "  rules: [{when: [{key: source.namespace, values: [foo]}]}]", SLEEP, 200),
        ("when source.namespace: out", "  rules: [{when: [{key: source.namespace, values: [foo]}]}]", BAR, 403),
        ("when header", "  rules: [{when: [{key: \"request.headers[x-user]\", values: [alice]}]}]", Req { headers: &[("x-user", "alice")], ..PLAIN }, 200),
        ("when header: other", "  rules: [{when: [{key: \"request.headers[x-user]\", values: [alice]}]}]", Req { headers: &[("x-user", "bob")], ..PLAIN }, 403),
        ("when notValues", "  rules: [{when: [{key: \"request.headers[x-user]\", notValues: [bob]}]}]", Req { headers: &[("x-user", "bob")], ..PLAIN }, 403),
        ("when destination.port", "  rules: [{when: [{key: destination.port, values: [\"8080\"]}]}]", PLAIN, 200),
        ("path template {*}", "  rules: [{to: [{operation: {paths: [\"/api/{*}/items\"]}}]}]", Req { path: "/api/v1/items?x", ..PLAIN }, 200),
        ("path template {*}: two segments", "  rules: [{to: [{operation: {paths: [\"/api/{*}/items\"]}}]}]", Req { path: "/api/v1/x/items", ..PLAIN }, 403),
        ("path template {**}", "  rules: [{to: [{operation: {paths: [\"/api/{**}\"]}}]}]", Req { path: "/api/a/b", ..PLAIN }, 200),
        ("when source.principal", "  rules: [{when: [{key: source.principal, values: [cluster.local/ns/bar/sa/client]}]}]", BAR, 200),
    ];
    for (name, policies, req, want) in table {
        let hcm = hcm(policies);
        assert_eq!(decide(&hcm, req).await, *want, "{name}");
    }
}
