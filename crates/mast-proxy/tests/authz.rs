//! Authorization end to end through mast-proxy's HTTP connection manager on 127.0.0.1:
//! AuthorizationPolicy / RequestAuthentication resources → mastd's generator
//! (`mast_xds::authz`) → the HCM's `jwt_authn` and `rbac` filters → what a client sees
//! (200, 401, 403), plus path normalisation and `x-forwarded-client-cert`. The downstream
//! TLS facts (peer identity) are given to the connection as the TLS layer would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter,
};
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
use mast_proxy::cluster::{ClusterConfig, ClusterManager};
use mast_proxy::config::RouteStore;
use mast_proxy::hcm::stream::ConnInfo;
use mast_proxy::hcm::{Env, HcmConfig};
use mast_proxy::tls::PeerTls;
use mast_test_support::{EchoServer, HttpRequest, HttpResponse};
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::{Value, json};
use tokio::net::TcpListener;

#[path = "authz/envoy.rs"]
mod envoy;
#[path = "authz/envoy_policies.rs"]
mod envoy_policies;
#[path = "authz/remote.rs"]
mod remote;
#[path = "authz/table.rs"]
mod table;

const RSA_PK8: &[u8] = include_bytes!("../src/hcm/jwt/testdata/rsa2048.pk8.der");
const RSA_JWKS: &str = include_str!("../src/hcm/jwt/testdata/rsa2048.jwks.json");
const SLEEP: &str = "spiffe://cluster.local/ns/foo/sa/sleep";
const OTHER: &str = "spiffe://cluster.local/ns/bar/sa/other";

/// An HCM serving one kind of downstream connection (plaintext or a given TLS peer).
struct Proxy {
    addr: SocketAddr,
    upstream: EchoServer,
    _drain: tokio::sync::watch::Sender<bool>,
}

fn decode<T: prost::Message + prost::Name + Default>(v: Value) -> T {
    mast_xds_json::json_to_message(&v).expect("proto json")
}

async fn start(filters: Vec<HttpFilter>, extra: Value, peer: Option<&str>) -> Proxy {
    start_with(filters, extra, peer, &[]).await
}

/// A STATIC cluster named `name` with one endpoint on 127.0.0.1:`port`.
fn static_cluster(name: &str, port: u16) -> ClusterConfig {
    let cluster: Cluster = decode(json!({
        "name": name, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint":
            {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}
    }));
    ClusterConfig::from_proto(&cluster).expect("cluster")
}

/// [`start`] with more clusters (name, port on 127.0.0.1).
async fn start_with(
    filters: Vec<HttpFilter>,
    extra: Value,
    peer: Option<&str>,
    more: &[(&str, u16)],
) -> Proxy {
    let upstream = EchoServer::start("httpbin").expect("echo");
    let mut hcm = json!({
        "stat_prefix": "inbound_0.0.0.0_8000",
        "route_config": {"name": "inbound", "virtual_hosts": [{"name": "all", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "up"}}]}]},
        "http_filters": [{"name": "envoy.filters.http.router"}],
        "normalize_path": true,
        "forward_client_cert_details": "APPEND_FORWARD",
        "set_current_client_cert_details": {"subject": true, "dns": true, "uri": true},
    });
    if let (Some(h), Some(e)) = (hcm.as_object_mut(), extra.as_object()) {
        h.extend(e.clone());
    }
    let mut hcm: HttpConnectionManager = decode(hcm);
    let router = hcm.http_filters.pop().expect("router");
    hcm.http_filters = filters;
    hcm.http_filters.push(router);
    let hcm = Arc::new(HcmConfig::from_proto(&hcm).expect("hcm converts"));
    let mut configs = vec![static_cluster("up", upstream.port())];
    configs.extend(more.iter().map(|(n, p)| static_cluster(n, *p)));
    let clusters = ClusterManager::new();
    clusters.apply_clusters(configs, &[]);
    let mut registry = prometheus_client::registry::Registry::default();
    let env = Arc::new(Env {
        clusters: Arc::new(clusters),
        routes: Arc::new(RouteStore::new()),
        access_log: None,
        stats: mast_proxy::stats::ProxyStats::register(&mut registry),
    });
    let tls = peer.map(|uri| {
        Arc::new(PeerTls {
            peer_uri_sans: vec![uri.to_owned()],
            peer_cert_sha256: "0a1b".to_owned(),
            local_uri_sans: vec!["spiffe://cluster.local/ns/foo/sa/httpbin".to_owned()],
            ..PeerTls::default()
        })
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (drain, draining) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let conn = ConnInfo {
                local: addr,
                peer,
                tls: tls.clone(),
            };
            let (env, hcm, draining) = (Arc::clone(&env), Arc::clone(&hcm), draining.clone());
            tokio::spawn(mast_proxy::hcm::server::serve(
                stream, env, hcm, conn, draining,
            ));
        }
    });
    Proxy {
        addr,
        upstream,
        _drain: drain,
    }
}

async fn get(p: &Proxy, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    HttpRequest::get(&format!("http://httpbin.foo{path}"))
        .headers(headers)
        .timeout(Duration::from_secs(5))
        .direct(p.addr)
        .await
        .expect("response")
}

/// The inbound HTTP filters mastd generates for httpbin in namespace foo.
fn generated(yaml: &str) -> Vec<HttpFilter> {
    let out = mast_config::load_str(yaml, "authz.yaml", &Default::default());
    assert!(
        out.diagnostics
            .iter()
            .all(|d| d.level != mast_config::Level::Error),
        "{:?}",
        out.diagnostics
    );
    let snapshot = MeshSnapshot::build(&out.resources, SnapshotOptions::default(), 1);
    let id = "sidecar~10.0.0.1~httpbin-1.foo~foo.svc.cluster.local";
    let proxy = ProxyNode::parse(
        id,
        &json!({"NAMESPACE": "foo", "LABELS": {"app": "httpbin"}}),
    )
    .expect("proxy");
    mast_xds::authz::inbound_http_filters(&snapshot, &proxy, 8000)
}

const POLICIES: &str = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-sleep, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/foo/sa/sleep"]}}]
  - to: [{operation: {paths: ["/public*"]}}]
    when: [{key: "request.headers[x-pass]", values: ["yes"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]
"#;

#[tokio::test]
async fn generated_rbac_allows_deny_and_when_conditions() {
    let filters = generated(POLICIES);
    assert!(filters.iter().any(|f| f.name == "envoy.filters.http.rbac"));
    let sleep = start(filters.clone(), json!({}), Some(SLEEP)).await;
    let other = start(filters.clone(), json!({}), Some(OTHER)).await;
    let plain = start(filters, json!({}), None).await;
    assert_eq!(get(&sleep, "/get", &[]).await.status, 200);
    let denied = get(&other, "/get", &[]).await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.text(), "RBAC: access denied");
    assert_eq!(get(&plain, "/get", &[]).await.status, 403);
    // DENY on a path prefix wins over ALLOW, also through dot segments and escapes.
    for path in ["/admin/users", "/public/../admin", "/%61dmin/x"] {
        assert_eq!(get(&sleep, path, &[]).await.status, 403, "{path}");
    }
    // The `when` header condition.
    assert_eq!(
        get(&other, "/public/x", &[("x-pass", "yes")]).await.status,
        200
    );
    assert_eq!(
        get(&other, "/public/x", &[("x-pass", "no")]).await.status,
        403
    );
    assert_eq!(
        other.upstream.request_count(),
        1,
        "denied requests never reach the app"
    );
}

fn sign(payload: Value) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let header = json!({"alg": "RS256", "kid": "rsa-test", "typ": "JWT"});
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let key = RsaKeyPair::from_pkcs8(RSA_PK8).expect("key");
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .expect("sign");
    format!("{input}.{}", b64(&sig))
}

#[tokio::test]
async fn generated_jwt_authentication_and_request_principals() {
    let yaml = format!(
        r#"
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: jwt, namespace: foo}}
spec:
  selector: {{matchLabels: {{app: httpbin}}}}
  jwtRules:
  - issuer: "https://issuer.example.com"
    jwks: '{jwks}'
    outputPayloadToHeader: x-jwt-payload
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: require-jwt, namespace: foo}}
spec:
  selector: {{matchLabels: {{app: httpbin}}}}
  action: ALLOW
  rules:
  - to: [{{operation: {{paths: ["/open*"]}}}}]
  - from: [{{source: {{requestPrincipals: ["https://issuer.example.com/alice"]}}}}]
"#,
        jwks = RSA_JWKS.replace('\n', "")
    );
    let p = start(generated(&yaml), json!({}), Some(SLEEP)).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims =
        |sub: &str, exp: u64| json!({"iss": "https://issuer.example.com", "sub": sub, "exp": exp});
    let alice = sign(claims("alice", now + 600));
    let ok = get(
        &p,
        "/secure",
        &[("authorization", &format!("Bearer {alice}"))],
    )
    .await;
    assert_eq!(ok.status, 200);
    assert!(
        ok.header("x-echo-authorization").is_none(),
        "the token is not forwarded"
    );
    assert!(ok.header("x-echo-x-jwt-payload").is_some());
    let bob = sign(claims("bob", now + 600));
    let wrong = get(
        &p,
        "/secure",
        &[("authorization", &format!("Bearer {bob}"))],
    )
    .await;
    assert_eq!(wrong.status, 403, "valid token, other principal");
    // Bob's claims under Alice's signature.
    let (bob_input, _) = bob.rsplit_once('.').expect("jwt");
    let (_, alice_sig) = alice.rsplit_once('.').expect("jwt");
    let forged = format!("{bob_input}.{alice_sig}");
    let forged = get(
        &p,
        "/secure",
        &[("authorization", &format!("Bearer {forged}"))],
    )
    .await;
    assert_eq!(forged.status, 401);
    assert_eq!(forged.text(), "Jwt verification fails");
    let expired = sign(claims("alice", now - 3600));
    let expired = get(
        &p,
        "/open",
        &[("authorization", &format!("Bearer {expired}"))],
    )
    .await;
    assert_eq!(
        (expired.status, expired.text().as_str()),
        (401, "Jwt is expired")
    );
    assert_eq!(
        get(&p, "/open", &[]).await.status,
        200,
        "no token passes authentication"
    );
    assert_eq!(
        get(&p, "/secure", &[]).await.status,
        403,
        "but not the policy"
    );
}

#[tokio::test]
async fn xfcc_and_normalised_path_reach_the_app() {
    let p = start(Vec::new(), json!({}), Some(SLEEP)).await;
    let r = get(
        &p,
        "/a/./b/../c",
        &[("x-forwarded-client-cert", "By=x;URI=y")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-echo-path"), Some("/a/c"));
    assert_eq!(
        r.header("x-echo-x-forwarded-client-cert"),
        Some(
            "By=x;URI=y,By=spiffe://cluster.local/ns/foo/sa/httpbin;Hash=0a1b;Subject=\"\";\
             URI=spiffe://cluster.local/ns/foo/sa/sleep"
        )
    );
    let plain = start(
        Vec::new(),
        json!({"path_with_escaped_slashes_action": "REJECT_REQUEST"}),
        None,
    )
    .await;
    let r = get(&plain, "/x", &[("x-forwarded-client-cert", "By=forged")]).await;
    assert!(
        r.header("x-echo-x-forwarded-client-cert").is_none(),
        "plaintext: sanitized"
    );
    assert_eq!(get(&plain, "/a%2Fb", &[]).await.status, 400);
}
