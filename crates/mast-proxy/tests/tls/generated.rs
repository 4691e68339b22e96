//! mastd's DestinationRule `tls` (SIMPLE, CA file, SAN, SNI) applied to an in-process
//! mast-proxy (ports capture): requests through the outbound listener reach a TLS upstream;
//! with a SAN the upstream's certificate does not carry, the proxy answers 503 (UF). And two
//! in-process sidecars speak auto mTLS, the server side behind a STRICT PeerAuthentication.
use super::*;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
use mast_proxy::cluster::ClusterManager;
use mast_proxy::config::{CLUSTER, ENDPOINTS, LISTENER, Proxy, ROUTE, RouteStore};
use mast_proxy::hcm::Env;
use mast_proxy::signals::Signals;
use mast_proxy::stats::ProxyStats;
use mast_proxy::xds::{Handler, Resource, Update};
use mast_test_support::{HttpRequest, free_port};

fn mesh(port: u16, ca_file: &str, san: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: alpha, namespace: default}}\n\
         spec:\n  selector: {{app: alpha}}\n  ports:\n  - {{name: http, port: 80}}\n---\n\
         apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n\
         metadata: {{name: alpha-0, namespace: default}}\n\
         spec:\n  address: 127.0.0.1\n  labels: {{app: alpha}}\n  ports: {{http: {port}}}\n---\n\
         apiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
         metadata: {{name: alpha, namespace: default}}\n\
         spec:\n  host: alpha.default.svc.cluster.local\n  trafficPolicy:\n    tls:\n\
         \x20     mode: SIMPLE\n      caCertificates: {ca_file}\n      sni: alpha.example\n\
         \x20     subjectAltNames: [\"{san}\"]\n"
    )
}

fn apply_all(proxy: &Proxy, yaml: &str, outbound: u16) {
    let out = mast_config::load_str(yaml, "mesh.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "load: {:?}", out.diagnostics);
    let snapshot = MeshSnapshot::build(&out.resources, SnapshotOptions::default(), 1);
    let md = serde_json::json!({"NAMESPACE": "default", "LABELS": {"app": "client"},
        "MAST_CAPTURE_MODE": "ports", "MAST_OUTBOUND_PORT": outbound.to_string()});
    let node = ProxyNode::parse(
        "sidecar~127.0.0.1~client.default~default.svc.cluster.local",
        &md,
    )
    .unwrap();
    for t in [CLUSTER, ENDPOINTS, LISTENER, ROUTE] {
        let resources = mast_xds::generate(&snapshot, &node, t)
            .into_iter()
            .map(|r| Resource {
                name: r.name,
                version: "1".into(),
                value: r.resource,
            })
            .collect();
        let update = Update {
            resources,
            removed: Vec::new(),
            complete: false,
        };
        proxy
            .apply(t, &update)
            .unwrap_or_else(|e| panic!("{t}: {e}"));
    }
}

/// A TLS HTTP/1.1 server answering `hello <sni>`.
async fn https_server(tls: ServerTls) -> u16 {
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let tls = tls.clone();
            tokio::spawn(async move {
                let Ok((s, peer)) = tls.accept(s).await else {
                    return;
                };
                let body = format!("hello {}", peer.sni.unwrap_or_default());
                let svc = service_fn(move |_req| {
                    let body = body.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            bytes::Bytes::from(body),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_rule_simple_tls_and_san_mismatch_503() {
    let ca = Ca::new();
    let dir = TempDir::new("mast-tls-dr").unwrap();
    let root = write(dir.path(), "root.pem", &ca.0.pem());
    let (chain, key) = ca.leaf(&spiffe("ns1", "server"));
    let server = DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificates: vec![TlsCertificate {
                certificate_chain: Some(inline(&chain)),
                private_key: Some(inline(&key)),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let port = https_server(ServerTls::from_proto(&server, &SecretStore::new()).unwrap()).await;

    let mut registry = prometheus_client::registry::Registry::default();
    let env = Arc::new(Env {
        clusters: Arc::new(ClusterManager::new()),
        routes: Arc::new(RouteStore::new()),
        access_log: None,
        stats: ProxyStats::register(&mut registry),
    });
    let proxy = Proxy::new(env, Signals::new());
    let outbound = free_port();
    let proxy_addr = SocketAddr::from(([127, 0, 0, 1], outbound));
    apply_all(
        &proxy,
        &mesh(port, &root, &spiffe("ns1", "server")),
        outbound,
    );
    let r = HttpRequest::get("http://alpha/")
        .via_proxy(proxy_addr)
        .await
        .unwrap();
    assert_eq!((r.status, r.text()), (200, "hello alpha.example".into()));

    apply_all(
        &proxy,
        &mesh(port, &root, &spiffe("ns1", "other")),
        outbound,
    );
    let r = HttpRequest::get("http://alpha/")
        .via_proxy(proxy_addr)
        .await
        .unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("x-envoy-overloaded"), None);
    assert!(r.text().contains("connection failure"), "{}", r.text());
}

fn node(workload: &str, app: &str, outbound: u16, inbound: Option<(u16, u16)>) -> ProxyNode {
    let mut md = serde_json::json!({"NAMESPACE": "default", "WORKLOAD_NAME": workload,
        "LABELS": {"app": app}, "MAST_CAPTURE_MODE": "ports",
        "MAST_OUTBOUND_PORT": outbound.to_string()});
    if let Some((a, l)) = inbound {
        md["MAST_INBOUND_PORTS"] = serde_json::json!(format!("{a}={l}"));
    }
    ProxyNode::parse(
        &format!("sidecar~127.0.0.1~{workload}.default~default.svc.cluster.local"),
        &md,
    )
    .unwrap()
}

fn apply_node(proxy: &Proxy, yaml: &str, node: &ProxyNode) {
    let out = mast_config::load_str(yaml, "mesh.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "load: {:?}", out.diagnostics);
    let snapshot = MeshSnapshot::build(&out.resources, SnapshotOptions::default(), 1);
    for t in [CLUSTER, ENDPOINTS, LISTENER, ROUTE] {
        let resources = mast_xds::generate(&snapshot, node, t)
            .into_iter()
            .map(|r| Resource {
                name: r.name,
                version: "1".into(),
                value: r.resource,
            })
            .collect();
        let update = Update {
            resources,
            removed: Vec::new(),
            complete: false,
        };
        proxy
            .apply(t, &update)
            .unwrap_or_else(|e| panic!("{t}: {e}"));
    }
}

fn new_proxy() -> Proxy {
    let mut registry = prometheus_client::registry::Registry::default();
    let env = Arc::new(Env {
        clusters: Arc::new(ClusterManager::new()),
        routes: Arc::new(RouteStore::new()),
        access_log: None,
        stats: ProxyStats::register(&mut registry),
    });
    Proxy::new(env, Signals::new())
}

/// Two in-process sidecars on mastd's config for PeerAuthentication `mode`: the client's auto
/// mTLS (the server's endpoint carries `tlsMode: istio`) reaches the server sidecar's inbound;
/// returns the response through the client sidecar and the status of a plaintext request
/// straight to the server's inbound listener (`None`: refused). Certificates come from the
/// process-wide SDS store.
async fn two_sidecars(mode: &str) -> (mast_test_support::HttpResponse, Option<u16>) {
    // One bundle for the whole test binary: tests run in parallel on the global store.
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(|| {
        let ca = Ca::new();
        let (chain, key) = ca.leaf(&spiffe("default", "default"));
        let bundle = CertBundle::from_chain(&[chain, ca.0.pem()], key).unwrap();
        SecretStore::global().set(Some(Arc::new(bundle))).unwrap();
    });
    let app = mast_test_support::EchoServer::start("server-app").unwrap();
    let listen = free_port();
    let yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: server, namespace: default}}\n\
         spec:\n  selector: {{app: server}}\n  ports:\n  - {{name: http, port: 80, targetPort: {app}}}\n---\n\
         apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n\
         metadata: {{name: server-1, namespace: default}}\n\
         spec:\n  address: 127.0.0.1\n  labels: {{app: server, security.istio.io/tlsMode: istio}}\n\
         \x20 ports: {{http: {listen}}}\n---\n\
         apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
         metadata: {{name: default, namespace: default}}\nspec: {{mtls: {{mode: {mode}}}}}\n",
        app = app.port()
    );
    let server = new_proxy();
    let server_node = node(
        "server-1",
        "server",
        free_port(),
        Some((app.port(), listen)),
    );
    apply_node(&server, &yaml, &server_node);
    let client = new_proxy();
    let outbound = free_port();
    apply_node(&client, &yaml, &node("client", "client", outbound, None));
    let r = HttpRequest::get("http://server/")
        .via_proxy(SocketAddr::from(([127, 0, 0, 1], outbound)))
        .await
        .unwrap();
    let direct = HttpRequest::get("http://server/")
        .direct(SocketAddr::from(([127, 0, 0, 1], listen)))
        .await
        .ok()
        .map(|r| r.status);
    drop((server, client));
    (r, direct)
}

fn assert_mtls(r: &mast_test_support::HttpResponse) {
    assert_eq!((r.status, r.trimmed()), (200, "server-app".into()), "{r:?}");
    // The server sidecar terminated mTLS: its XFCC names the client's identity.
    let xfcc = r
        .header("x-echo-x-forwarded-client-cert")
        .unwrap_or_default();
    assert!(
        xfcc.contains("URI=spiffe://cluster.local/ns/default/sa/default"),
        "{xfcc}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_mtls_to_a_strict_inbound_and_plaintext_refused() {
    let (r, direct) = two_sidecars("STRICT").await;
    assert_mtls(&r);
    assert!(direct.is_none_or(|s| s != 200), "{direct:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_mtls_to_a_permissive_inbound_and_plaintext_accepted() {
    let (r, direct) = two_sidecars("PERMISSIVE").await;
    assert_mtls(&r);
    assert_eq!(direct, Some(200));
}
