//! Filter-chain matching against the real Envoy: the same listeners (overlapping exact and
//! wildcard SNI, SNI and none, tls and raw_buffer, ALPN, destination port and IP) run in
//! Envoy with each chain answering its own name (`direct_response`), and go through
//! mast-proxy's conversion and `select_chain`; for each connection (a real ClientHello with
//! SNI/ALPN, or plaintext) both must pick the same chain (or none).
//!
//! Skipped (with a message) when no Envoy binary is found (`MAST_ENVOY`, `.venv/bin/envoy`,
//! `PATH`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::listener::v3::Listener;
use mast_proxy::listener::ListenerConfig;
use mast_proxy::listener::accept::select_chain;
use mast_proxy::listener::inspect::Inspected;
use mast_test_support::{ProcessGuard, TempDir, envoy_binary, free_port};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The terminal filter of chain `name`: Envoy answers the name; mast-proxy gets a tcp_proxy
/// (only the selection is compared).
fn terminal(name: &str, envoy: bool) -> Value {
    if envoy {
        json!({"name": "envoy.filters.network.direct_response", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.direct_response.v3.Config",
            "response": {"inline_string": name}}})
    } else {
        json!({"name": "envoy.filters.network.tcp_proxy", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": name, "cluster": name}})
    }
}

/// A listener on 127.0.0.1:`port` with `chains` ((name, match)) and a default chain.
fn listener(port: u16, chains: &[(&str, Value)], envoy: bool) -> Value {
    let chains: Vec<Value> = chains
        .iter()
        .map(|(name, m)| {
            json!({"name": name, "filter_chain_match": m, "filters": [terminal(name, envoy)]})
        })
        .collect();
    json!({
        "name": format!("l{port}"),
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "listener_filters": [{"name": "envoy.filters.listener.tls_inspector", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}}],
        "filter_chains": chains,
        "default_filter_chain": {"name": "default", "filters": [terminal("default", envoy)]}
    })
}

/// What a test connection offers.
#[derive(Debug, Clone)]
enum Offer {
    Tls(Option<&'static str>, &'static [&'static str]),
    Raw,
}

fn client_hello(sni: Option<&str>, alpn: &[&str]) -> Vec<u8> {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let name = match sni {
        Some(s) => rustls::pki_types::ServerName::try_from(s.to_owned()).unwrap(),
        None => {
            rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into())
        }
    };
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

/// The chain Envoy picked: what it answered ("" when it closed without a chain).
async fn envoy_pick(addr: SocketAddr, offer: &Offer) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let bytes = match offer {
        Offer::Tls(sni, alpn) => client_hello(*sni, alpn),
        Offer::Raw => b"GET / HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
    };
    s.write_all(&bytes).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).into_owned()
}

fn mast_pick(l: &ListenerConfig, addr: SocketAddr, offer: &Offer) -> String {
    let seen = match offer {
        Offer::Tls(sni, alpn) => Inspected {
            transport: "tls",
            server_name: sni.map(str::to_owned),
            alpn: alpn.iter().map(|s| (*s).to_owned()).collect(),
        },
        Offer::Raw => Inspected {
            transport: "raw_buffer",
            ..Inspected::default()
        },
    };
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    select_chain(l, addr, peer, &seen)
        .map(|c| c.name.clone())
        .unwrap_or_default()
}

fn start_envoy(envoy: &std::path::Path, dir: &TempDir, listeners: Vec<Value>) -> ProcessGuard {
    let config = dir.path().join("envoy.json");
    let bootstrap = json!({"static_resources": {"listeners": listeners}});
    std::fs::write(&config, bootstrap.to_string()).unwrap();
    let log = std::fs::File::create(dir.path().join("envoy.log")).unwrap();
    let mut cmd = Command::new(envoy);
    cmd.arg("-c")
        .arg(&config)
        .args([
            "--disable-hot-restart",
            "--concurrency",
            "1",
            "-l",
            "warning",
        ])
        .args(["--base-id", &free_port().to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    ProcessGuard::spawn(&mut cmd).unwrap()
}

fn wait_listening(guard: &mut ProcessGuard, dir: &TempDir, ports: &[u16]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if ports
            .iter()
            .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())
        {
            return;
        }
        if let Ok(Some(status)) = guard.try_wait() {
            let log = std::fs::read_to_string(dir.path().join("envoy.log")).unwrap_or_default();
            panic!("envoy exited with {status}:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(dir.path().join("envoy.log")).unwrap_or_default();
    panic!("envoy did not listen within 20 s:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mast_proxy_picks_the_chain_envoy_picks() {
    let Some(envoy) = envoy_binary() else {
        eprintln!("skipped: no Envoy binary (set MAST_ENVOY)");
        return;
    };
    let (a, b, c) = (free_port(), free_port(), free_port());
    let sni_chains = [
        (
            "exact-tls",
            json!({"server_names": ["api.example.com"], "transport_protocol": "tls"}),
        ),
        ("wild", json!({"server_names": ["*.example.com"]})),
        ("wild-eu", json!({"server_names": ["*.eu.example.com"]})),
        (
            "alpn-h2",
            json!({"server_names": ["h2.example.com"], "application_protocols": ["h2"]}),
        ),
        ("h2-any", json!({"server_names": ["h2.example.com"]})),
        ("tls-any", json!({"transport_protocol": "tls"})),
        ("raw", json!({"transport_protocol": "raw_buffer"})),
    ];
    let port_chains = [
        (
            "port-tls",
            json!({"destination_port": b, "transport_protocol": "tls"}),
        ),
        ("other-port", json!({"destination_port": 1})),
        ("no-port", json!({})),
    ];
    let ip_chains = [
        (
            "ip-32",
            json!({"prefix_ranges": [{"address_prefix": "127.0.0.1", "prefix_len": 32}],
                   "server_names": ["ip.example.com"]}),
        ),
        (
            "ip-8",
            json!({"prefix_ranges": [{"address_prefix": "127.0.0.0", "prefix_len": 8}]}),
        ),
        ("any-ip", json!({"transport_protocol": "raw_buffer"})),
    ];
    let build = |envoy: bool| {
        vec![
            listener(a, &sni_chains, envoy),
            listener(b, &port_chains, envoy),
            listener(c, &ip_chains, envoy),
        ]
    };
    let dir = TempDir::new("mast-chain-match").unwrap();
    let mut guard = start_envoy(&envoy, &dir, build(true));
    wait_listening(&mut guard, &dir, &[a, b, c]);
    let mast: Vec<ListenerConfig> = build(false)
        .into_iter()
        .map(|l| {
            let pb: Listener = mast_xds_json::json_to_message(&l).unwrap();
            ListenerConfig::from_proto(&pb).unwrap()
        })
        .collect();

    let offers = [
        Offer::Tls(Some("api.example.com"), &[]),
        Offer::Tls(Some("www.example.com"), &[]),
        Offer::Tls(Some("a.b.example.com"), &[]),
        Offer::Tls(Some("x.eu.example.com"), &[]),
        Offer::Tls(Some("example.com"), &[]),
        Offer::Tls(Some("h2.example.com"), &["h2", "http/1.1"]),
        Offer::Tls(Some("h2.example.com"), &["http/1.1"]),
        Offer::Tls(Some("other.org"), &["h2"]),
        Offer::Tls(Some("ip.example.com"), &[]),
        Offer::Tls(None, &["h2"]),
        Offer::Raw,
    ];
    let mut report = Vec::new();
    for (l, port) in mast.iter().zip([a, b, c]) {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        for offer in &offers {
            let theirs = envoy_pick(addr, offer).await;
            let ours = mast_pick(l, addr, offer);
            report.push(format!("{port} {offer:?}: envoy {theirs:?}, mast {ours:?}"));
            assert_eq!(
                ours,
                theirs,
                "listener {port}, {offer:?}\n{}",
                report.join("\n")
            );
        }
    }
    eprintln!("{}", report.join("\n"));
    // The cases above cover every step's "no fallback to a less specific chain".
    assert!(report.iter().any(|r| r.contains("envoy \"default\"")));
}
