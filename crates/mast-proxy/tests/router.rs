//! mast-proxy as a gateway (`--type router` listeners: bound to their own address, no
//! capture), through the library's listener manager on 127.0.0.1, with gateway-shaped xDS
//! (Envoy JSON):
//! - HTTPS: two chains selected by SNI (exact and `*.example.com`) with their own inline
//!   certificates; ALPN `h2` runs the HTTP/2 codec, `http/1.1` HTTP/1.1; the upstream sees
//!   Envoy's edge headers (`x-forwarded-for` appended, `x-forwarded-proto: https`,
//!   `x-envoy-external-address`), the client `server: envoy`;
//! - plaintext HTTP: `require_tls: ALL` answers 301 to https, an h2c (prior knowledge)
//!   request is routed, an unknown host gets 404;
//! - AUTO_PASSTHROUGH: `sni_cluster` + `tcp_proxy` carries the TLS connection untouched to the
//!   cluster the SNI names (a TLS server the client completes its handshake with); a SNI
//!   naming no cluster is closed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mast_proxy::cluster::{ClusterConfig, ClusterManager};
use mast_proxy::config::RouteStore;
use mast_proxy::hcm::Env;
use mast_proxy::listener::{ListenerConfig, ListenerManager};
use mast_proxy::route::RouteTable;
use mast_test_support::{EchoServer, free_port};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    fn new() -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Self(CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap())
    }

    /// (chain PEM, key PEM, DER) for DNS `names`.
    fn leaf(&self, names: &[&str]) -> (String, String, Vec<u8>) {
        self.leaf_serial(names, fastrand::u64(1..u64::MAX >> 1))
    }

    /// [`Ca::leaf`] with serial number `serial`.
    fn leaf_serial(&self, names: &[&str], serial: u64) -> (String, String, Vec<u8>) {
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let mut p = CertificateParams::new(names).unwrap();
        p.serial_number = Some(serial.into());
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.0).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }

    fn root_der(&self) -> Vec<u8> {
        self.0.der().to_vec()
    }
}

fn decode<T: prost::Message + prost::Name + Default>(v: Value) -> T {
    mast_xds_json::json_to_message(&v).unwrap_or_else(|e| panic!("{e}: {v}"))
}

fn static_cluster(name: &str, port: u16) -> ClusterConfig {
    let c: Cluster = decode(json!({
        "name": name, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint":
            {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}
    }));
    ClusterConfig::from_proto(&c).unwrap()
}

fn table(v: Value) -> RouteTable {
    RouteTable::from_proto(&decode::<RouteConfiguration>(v)).unwrap()
}

/// The gateway HCM on RDS `route` (Istio's gateway settings).
fn hcm(route: &str) -> Value {
    json!({"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": route, "codec_type": "AUTO", "use_remote_address": true,
        "xff_num_trusted_hops": 0, "normalize_path": true,
        "rds": {"route_config_name": route, "config_source": {"ads": {}, "resource_api_version": "V3"}},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}})
}

fn tls_socket(cert: &str, key: &str) -> Value {
    json!({"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "common_tls_context": {
            "alpn_protocols": ["h2", "http/1.1"],
            "tls_certificates": [{"certificate_chain": {"inline_string": cert},
                                  "private_key": {"inline_string": key}}]}}})
}

fn listener(name: &str, chains: Value, tls_inspector: bool) -> Listener {
    let filters = if tls_inspector {
        json!([{"name": "envoy.filters.listener.tls_inspector", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}}])
    } else {
        json!([])
    };
    decode(json!({
        "name": name, "traffic_direction": "OUTBOUND",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": free_port()}},
        "listener_filters": filters, "filter_chains": chains
    }))
}

struct Gateway {
    _manager: ListenerManager,
    addrs: HashMap<String, SocketAddr>,
}

fn env(clusters: Vec<ClusterConfig>, tables: Vec<RouteTable>) -> Arc<Env> {
    let manager = ClusterManager::new();
    manager.apply_clusters(clusters, &[]);
    let routes = RouteStore::new();
    routes.apply(tables, &[]);
    let mut registry = prometheus_client::registry::Registry::default();
    Arc::new(Env {
        clusters: Arc::new(manager),
        routes: Arc::new(routes),
        access_log: None,
        stats: mast_proxy::stats::ProxyStats::register(&mut registry),
    })
}

fn start(env: Arc<Env>, listeners: Vec<Listener>) -> Gateway {
    let manager = ListenerManager::new(env, mast_proxy::signals::Signals::new());
    let configs = listeners
        .iter()
        .map(|l| ListenerConfig::from_proto(l).unwrap())
        .collect();
    manager.apply(configs, &[]).unwrap();
    Gateway {
        addrs: manager.addresses(),
        _manager: manager,
    }
}

/// A TLS client trusting `root`, offering `alpn`, to `addr` with SNI `sni`.
async fn tls_connect(
    addr: SocketAddr,
    root: &[u8],
    sni: &str,
    alpn: &[&str],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.to_vec().into()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .unwrap()
    .unwrap()
}

type Reply = http::Response<Bytes>;

async fn collect(r: http::Response<hyper::body::Incoming>) -> Reply {
    let (parts, body) = r.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    http::Response::from_parts(parts, body)
}

/// One HTTP/2 request over `io`.
async fn h2_get<IO>(io: IO, authority: &str, path: &str) -> Reply
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(format!("https://{authority}{path}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), send.send_request(req));
    collect(r.await.unwrap().unwrap()).await
}

/// One HTTP/1.1 request over `io`.
async fn h1_get<IO>(io: IO, host: &str, path: &str) -> Reply
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", host)
        .header("x-forwarded-proto", "http")
        .header("x-envoy-retry-on", "5xx")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), send.send_request(req));
    collect(r.await.unwrap().unwrap()).await
}

fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn https_chains_select_their_certificate_by_sni_and_speak_h2_or_h1() {
    let ca = Ca::new();
    let (a_cert, a_key, a_der) = ca.leaf(&["a.example.com"]);
    let (w_cert, w_key, w_der) = ca.leaf(&["*.example.com", "x.y.example.com"]);
    let (up_a, up_w) = (
        EchoServer::start("a").unwrap(),
        EchoServer::start("w").unwrap(),
    );
    let route = |name: &str, cluster: &str| {
        table(
            json!({"name": name, "virtual_hosts": [{"name": "vh", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}]}]}),
        )
    };
    let env = env(
        vec![
            static_cluster("backend-a", up_a.port()),
            static_cluster("backend-w", up_w.port()),
        ],
        vec![
            route("https.443.a.gw.ns", "backend-a"),
            route("https.443.w.gw.ns", "backend-w"),
        ],
    );
    let chains = json!([
        {"filter_chain_match": {"server_names": ["a.example.com"]},
         "transport_socket": tls_socket(&a_cert, &a_key),
         "filters": [hcm("https.443.a.gw.ns")]},
        {"filter_chain_match": {"server_names": ["*.example.com"]},
         "transport_socket": tls_socket(&w_cert, &w_key),
         "filters": [hcm("https.443.w.gw.ns")]}
    ]);
    let gw = start(env, vec![listener("0.0.0.0_443", chains, true)]);
    let addr = gw.addrs["0.0.0.0_443"];
    let root = ca.root_der();

    let tls = tls_connect(addr, &root, "a.example.com", &["h2", "http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(
        tls.get_ref().1.peer_certificates().unwrap()[0].as_ref(),
        &a_der[..]
    );
    let r = h2_get(tls, "a.example.com", "/hello").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), http::Version::HTTP_2);
    assert_eq!(header(&r, "x-echo-server"), Some("a"));
    assert_eq!(header(&r, "server"), Some("envoy"));
    assert_eq!(header(&r, "x-echo-x-forwarded-proto"), Some("https"));
    assert_eq!(
        header(&r, "x-echo-x-envoy-external-address"),
        Some("127.0.0.1")
    );
    assert!(header(&r, "x-echo-x-forwarded-for").is_some());

    // Several labels under the wildcard; HTTP/1.1 by ALPN.
    let tls = tls_connect(addr, &root, "x.y.example.com", &["http/1.1"]).await;
    assert_eq!(
        tls.get_ref().1.peer_certificates().unwrap()[0].as_ref(),
        &w_der[..]
    );
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let r = h1_get(tls, "x.y.example.com", "/").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-echo-server"), Some("w"));
    assert_eq!(
        header(&r, "x-echo-x-forwarded-proto"),
        Some("https"),
        "the client's x-forwarded-proto is not trusted"
    );
    assert_eq!(header(&r, "x-echo-x-envoy-retry-on"), None);
}

#[tokio::test]
async fn plaintext_http_redirects_require_tls_hosts_and_serves_h2c() {
    let up = EchoServer::start("app").unwrap();
    let env = env(
        vec![static_cluster("backend", up.port())],
        vec![table(json!({"name": "http.80", "virtual_hosts": [
            {"name": "secure", "domains": ["secure.example.com"], "require_tls": "ALL",
             "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "backend"}}]},
            {"name": "app", "domains": ["app.example.com"],
             "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "backend"}}]},
            {"name": "gone", "domains": ["gone.example.com"],
             "routes": [{"match": {"prefix": "/api"}, "route": {"cluster": "missing",
                 "cluster_not_found_response_code": "INTERNAL_SERVER_ERROR"}},
                        {"match": {"prefix": "/"}, "route": {"cluster": "missing"}}]}]}))],
    );
    let chains = json!([{"filters": [hcm("http.80")]}]);
    let gw = start(env, vec![listener("0.0.0.0_80", chains, false)]);
    let addr = gw.addrs["0.0.0.0_80"];

    let tcp = TcpStream::connect(addr).await.unwrap();
    let r = h1_get(tcp, "secure.example.com", "/login?next=%2F").await;
    assert_eq!(r.status(), 301);
    assert_eq!(
        header(&r, "location"),
        Some("https://secure.example.com/login?next=%2F")
    );

    let tcp = TcpStream::connect(addr).await.unwrap();
    let r = h2_get(tcp, "app.example.com", "/grpc.Service/Call").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-echo-server"), Some("app"));
    assert_eq!(header(&r, "x-echo-x-forwarded-proto"), Some("http"));

    let tcp = TcpStream::connect(addr).await.unwrap();
    let r = h1_get(tcp, "other.example.com", "/").await;
    assert_eq!(r.status(), 404);

    // A route whose cluster does not exist: its cluster_not_found_response_code (Istio
    // sets 500 on Gateway API routes), else 503.
    let tcp = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        h1_get(tcp, "gone.example.com", "/api/x").await.status(),
        500
    );
    let tcp = TcpStream::connect(addr).await.unwrap();
    assert_eq!(h1_get(tcp, "gone.example.com", "/").await.status(), 503);
}

/// A TLS server answering `name` after its handshake.
async fn tls_backend(ca: &Ca, name: &'static str) -> u16 {
    tls_backend_as(ca, name, name).await
}

/// A TLS server for `cert_name` answering `reply` after its handshake.
async fn tls_backend_as(ca: &Ca, cert_name: &str, reply: &'static str) -> u16 {
    let name = reply;
    let (cert, key, _) = ca.leaf(&[cert_name]);
    use rustls::pki_types::pem::PemObject as _;
    let certs = vec![rustls::pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((s, _)) = l.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(s).await {
                    let _ = tls.write_all(name.as_bytes()).await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn auto_passthrough_sends_the_connection_to_the_cluster_the_sni_names() {
    let ca = Ca::new();
    let a = tls_backend(&ca, "a.svc.cluster.local").await;
    let b = tls_backend(&ca, "b.svc.cluster.local").await;
    let env = env(
        vec![
            static_cluster("a.svc.cluster.local", a),
            static_cluster("b.svc.cluster.local", b),
        ],
        vec![],
    );
    let chains = json!([{
        "filter_chain_match": {"server_names": ["*.svc.cluster.local"]},
        "filters": [
            {"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "stat_prefix": "BlackHoleCluster", "cluster": "BlackHoleCluster"}}]}]);
    let mut l = listener("0.0.0.0_15443", chains, true);
    // (mast-xds-json has no descriptor for SniCluster, an empty message.)
    l.filter_chains[0].filters.insert(
        0,
        envoy_types::pb::envoy::config::listener::v3::Filter {
            name: "envoy.filters.network.sni_cluster".into(),
            config_type: Some(
                envoy_types::pb::envoy::config::listener::v3::filter::ConfigType::TypedConfig(
                    envoy_types::pb::google::protobuf::Any {
                        type_url: "type.googleapis.com/envoy.extensions.filters.network.sni_cluster.v3.SniCluster".into(),
                        value: Vec::new(),
                    },
                ),
            ),
        },
    );
    let gw = start(env, vec![l]);
    let addr = gw.addrs["0.0.0.0_15443"];
    let root = ca.root_der();
    for name in ["a.svc.cluster.local", "b.svc.cluster.local"] {
        let mut tls = tls_connect(addr, &root, name, &[]).await;
        let mut got = String::new();
        tokio::time::timeout(Duration::from_secs(5), tls.read_to_string(&mut got))
            .await
            .unwrap()
            .ok();
        assert_eq!(got, name, "the backend for {name} terminated TLS");
    }
    // No cluster of that name: closed (as Envoy: no cluster found).
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone().into()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("c.svc.cluster.local").unwrap();
    let attempt = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .unwrap();
    assert!(attempt.is_err());
}

#[path = "router/tls_cases.rs"]
mod tls_cases;
