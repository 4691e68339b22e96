//! A mast-proxy HTTP connection manager on 127.0.0.1 (library route: `hcm::server::serve`
//! on accepted sockets) routing `/` to an echo upstream, and raw-socket helpers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use mast_proxy::cluster::{ClusterConfig, ClusterManager};
use mast_proxy::config::RouteStore;
use mast_proxy::hcm::stream::ConnInfo;
use mast_proxy::hcm::{Env, HcmConfig};
use mast_test_support::EchoServer;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running HCM and its upstream.
pub struct Proxy {
    /// Where the HCM listens.
    pub addr: SocketAddr,
    /// The upstream every route goes to.
    pub upstream: EchoServer,
    env: Arc<Env>,
    hcm: Arc<HcmConfig>,
    _drain: tokio::sync::watch::Sender<bool>,
}

fn decode<T: prost::Message + prost::Name + Default>(v: serde_json::Value) -> T {
    mast_xds_json::json_to_message(&v).expect("proto json")
}

/// Starts an HCM; `extra` is merged into the HttpConnectionManager JSON.
pub async fn start(extra: serde_json::Value) -> Proxy {
    let upstream = EchoServer::start("up").expect("echo");
    let mut hcm = json!({
        "stat_prefix": "hardening",
        "route_config": {"name": "r", "virtual_hosts": [{"name": "all", "domains": ["*"],
            "routes": [{"match": {"prefix": "/direct"}, "direct_response": {"status": 200}},
                {"match": {"prefix": "/"}, "route": {"cluster": "up"}}]}]},
        "http_filters": [{"name": "envoy.filters.http.router"}],
        "stream_idle_timeout": "0s",
    });
    if let (Some(h), Some(e)) = (hcm.as_object_mut(), extra.as_object()) {
        h.extend(e.clone());
    }
    let hcm: HttpConnectionManager = decode(hcm);
    let hcm = Arc::new(HcmConfig::from_proto(&hcm).expect("hcm"));
    let cluster: Cluster = decode(json!({
        "name": "up", "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "up", "endpoints": [{"lb_endpoints": [{"endpoint":
            {"address": {"socket_address": {"address": "127.0.0.1",
                "port_value": upstream.port()}}}}]}]}
    }));
    let clusters = ClusterManager::new();
    clusters.apply_clusters(
        vec![ClusterConfig::from_proto(&cluster).expect("cluster")],
        &[],
    );
    let mut registry = prometheus_client::registry::Registry::default();
    let env = Arc::new(Env {
        clusters: Arc::new(clusters),
        routes: Arc::new(RouteStore::new()),
        access_log: None,
        stats: mast_proxy::stats::ProxyStats::register(&mut registry),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (drain, draining) = tokio::sync::watch::channel(false);
    let parts = (Arc::clone(&env), Arc::clone(&hcm));
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let conn = ConnInfo {
                local: addr,
                peer,
                tls: None,
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
        env: parts.0,
        hcm: parts.1,
        _drain: drain,
    }
}

/// The proxy's environment and HCM, to serve other connections with.
pub fn parts(p: &Proxy) -> (Arc<Env>, Arc<HcmConfig>) {
    (Arc::clone(&p.env), Arc::clone(&p.hcm))
}

/// How a raw exchange ended.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum End {
    /// The server closed (FIN or reset).
    Closed,
    /// Still open at the deadline.
    Open,
}

/// Sends `bytes` on a new connection and reads until the server closes or `wait` passes.
pub async fn exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> (Vec<u8>, End) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let _ = s.write_all(bytes).await;
    read_until_closed(&mut s, wait).await
}

/// Reads until the server closes or `wait` passes.
pub async fn read_until_closed(s: &mut TcpStream, wait: Duration) -> (Vec<u8>, End) {
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return (out, End::Open),
            Ok(Ok(0)) | Ok(Err(_)) => return (out, End::Closed),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The status line's code of the first response in `raw`.
pub fn status(raw: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(raw.get(..12)?).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.parse().ok()
}

/// An HTTP/2 frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The client preface and an empty SETTINGS frame.
pub fn preface() -> Vec<u8> {
    let mut p = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    p.extend(frame(4, 0, 0, b""));
    p
}

fn hpack_int(out: &mut Vec<u8>, mut v: usize) {
    if v < 127 {
        out.push(v as u8);
        return;
    }
    out.push(127);
    v -= 127;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// An HPACK block of literal fields (no indexing, no Huffman).
pub fn hpack(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in fields {
        out.push(0);
        hpack_int(&mut out, n.len());
        out.extend_from_slice(n);
        hpack_int(&mut out, v.len());
        out.extend_from_slice(v);
    }
    out
}

/// A GET request block with `extra` fields.
pub fn get_block(extra: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut f: Vec<(&[u8], &[u8])> = vec![
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":path", b"/x"),
        (b":authority", b"a"),
    ];
    f.extend_from_slice(extra);
    hpack(&f)
}

/// Frame types and codes found in `raw` server output: (type, stream, first 4 payload bytes).
pub fn frames(raw: &[u8]) -> Vec<(u8, u32, u32)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 9 <= raw.len() {
        let len = u32::from_be_bytes([0, raw[i], raw[i + 1], raw[i + 2]]) as usize;
        let stream = u32::from_be_bytes([raw[i + 5], raw[i + 6], raw[i + 7], raw[i + 8]]);
        let p = &raw[i + 9..(i + 9 + len).min(raw.len())];
        let word = |o: usize| {
            p.get(o..o + 4)
                .map_or(0, |w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
        };
        let code = if raw[i + 3] == 7 { word(4) } else { word(0) };
        out.push((raw[i + 3], stream & 0x7fff_ffff, code));
        i += 9 + len;
    }
    out
}
