//! Istio's standard metrics with the real binaries: a real mastd, two mast-proxy sidecars
//! (client, and a server with an HTTP and a TCP app port) with workload certificates from
//! mastd's CA, so the client's auto mTLS reaches the server's inbound. A request through
//! both counts `istio_requests_total` on the client (`reporter="source"`, the server's
//! workload learnt from the metadata exchange) and on the server (`reporter="destination"`,
//! `mutual_tls`, the client's SPIFFE principal); a 503 and a TCP connection are counted too,
//! all read from the sidecars' Istio metrics port (`--prometheus-port`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mast_test_support::{
    EchoServer, HttpRequest, MastdOptions, MastdProcess, ProxyKind, ProxyOptions, ProxyProcess,
    TcpEchoServer, TempDir, free_port, http_get_direct,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn mesh_yaml(http_app: u16, http_listen: u16, tcp_app: u16, tcp_listen: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: server, namespace: default}}\n\
         spec:\n  selector: {{app: server}}\n  ports:\n  - {{name: http, port: 80, targetPort: {http_app}}}\n\
         \x20 - {{name: tcp, port: 9000, targetPort: {tcp_app}}}\n---\n\
         apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n\
         metadata: {{name: server, namespace: default}}\n\
         spec:\n  address: 127.0.0.1\n  serviceAccount: server\n\
         \x20 labels: {{app: server, version: v1, security.istio.io/tlsMode: istio}}\n\
         \x20 ports: {{http: {http_listen}, tcp: {tcp_listen}}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: nothing, namespace: default}}\n\
         spec:\n  selector: {{app: nothing}}\n  ports:\n  - {{name: http, port: 80}}\n"
    )
}

async fn sidecar(mastd: &MastdProcess, name: &str, inbound: &[(u16, u16)]) -> ProxyProcess {
    let token = mastd.token_file("default", name).unwrap();
    let mut options = ProxyOptions::new(ProxyKind::Mast, mastd.xds_addr())
        .binary(env!("CARGO_BIN_EXE_mast-proxy"))
        .workload(name, "default")
        .label("app", name)
        .label("version", "v1")
        .args(["--service-account", name, "--prometheus-port", "0"])
        .ca_token_file(token);
    for (app, listen) in inbound {
        options = options.inbound(*app, *listen);
    }
    let proxy = tokio::task::spawn_blocking(move || ProxyProcess::start(options))
        .await
        .unwrap()
        .unwrap();
    assert!(
        proxy.wait_ready(Duration::from_secs(20)).await,
        "{}",
        proxy.log_tail()
    );
    proxy
}

/// The sidecar's Istio metrics address, from its ports file.
fn metrics_addr(proxy: &ProxyProcess) -> SocketAddr {
    let text = std::fs::read_to_string(proxy.dir().join("ports.json")).unwrap();
    let ports: serde_json::Value = serde_json::from_str(&text).unwrap();
    let port = ports["prometheus"].as_u64().expect("prometheus port") as u16;
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The value of the `metric` sample whose labels include all of `want` (`k="v"`).
fn sample(text: &str, metric: &str, want: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .find(|l| {
            want.iter()
                .all(|w| l.contains(&format!("{w},")) || l.contains(&format!("{w}}}")))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Scrapes `addr` until `metric{want…}` reaches `at_least` (at most 10 s).
async fn wait_sample(addr: SocketAddr, metric: &str, want: &[&str], at_least: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = http_get_direct(addr, "/stats/prometheus", &[])
            .await
            .unwrap();
        let text = r.text();
        if sample(&text, metric, want).is_some_and(|v| v >= at_least) || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_metrics_on_both_sidecars() {
    let app = EchoServer::start("server-app").unwrap();
    let tcp_app = TcpEchoServer::start("tcp-app").unwrap();
    let (http_listen, tcp_listen) = (free_port(), free_port());
    let dir = TempDir::new("mast-proxy-istio-stats").unwrap();
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    let yaml = mesh_yaml(app.port(), http_listen, tcp_app.port(), tcp_listen);
    std::fs::write(config.join("mesh.yaml"), yaml).unwrap();
    let mastd = MastdProcess::start(&MastdOptions::new(&config).unwrap())
        .await
        .unwrap();
    let inbound = [(app.port(), http_listen), (tcp_app.port(), tcp_listen)];
    let server = sidecar(&mastd, "server", &inbound).await;
    let client = sidecar(&mastd, "client", &[]).await;
    let outbound = client.outbound_addr();

    // Certificates arrive asynchronously: retry until the mTLS request goes through.
    let deadline = Instant::now() + Duration::from_secs(20);
    let r = loop {
        let r = HttpRequest::get("http://server/").via_proxy(outbound).await;
        match r {
            Ok(r) if r.status == 200 || Instant::now() > deadline => break r,
            _ if Instant::now() > deadline => panic!("{r:?}\n{}", client.log_tail()),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    assert_eq!((r.status, r.trimmed()), (200, "server-app".into()), "{r:?}");
    assert_eq!(
        r.header("x-envoy-peer-metadata"),
        None,
        "stripped for the client app"
    );
    let seen = app.last_request().unwrap();
    assert_eq!(
        seen.header("x-envoy-peer-metadata"),
        None,
        "stripped for the server app"
    );
    assert_eq!(seen.header("x-envoy-peer-metadata-id"), None);

    let source = [
        "reporter=\"source\"",
        "source_workload=\"client\"",
        "source_principal=\"spiffe://cluster.local/ns/default/sa/client\"",
        "destination_workload=\"server\"",
        "destination_app=\"server\"",
        "destination_service=\"server.default.svc.cluster.local\"",
        "destination_service_name=\"server\"",
        "destination_service_namespace=\"default\"",
        "response_code=\"200\"",
    ];
    let text = wait_sample(metrics_addr(&client), "istio_requests_total", &source, 1.0).await;
    assert!(
        sample(&text, "istio_requests_total", &source).is_some(),
        "{text}"
    );
    let destination = [
        "reporter=\"destination\"",
        "source_workload=\"client\"",
        "source_principal=\"spiffe://cluster.local/ns/default/sa/client\"",
        "destination_workload=\"server\"",
        "destination_principal=\"spiffe://cluster.local/ns/default/sa/server\"",
        "response_code=\"200\"",
        "connection_security_policy=\"mutual_tls\"",
    ];
    let server_metrics = metrics_addr(&server);
    let text = wait_sample(server_metrics, "istio_requests_total", &destination, 1.0).await;
    assert!(
        sample(&text, "istio_requests_total", &destination).is_some(),
        "{text}"
    );
    // The same families are on the admin's /stats/prometheus.
    let admin = http_get_direct(server.admin_addr(), "/stats/prometheus", &[])
        .await
        .unwrap()
        .text();
    assert!(
        admin.contains("istio_request_duration_milliseconds_bucket{"),
        "{admin}"
    );

    // A service without endpoints: a local 503 (UH) on the client.
    let r = HttpRequest::get("http://nothing/")
        .via_proxy(outbound)
        .await
        .unwrap();
    assert_eq!(r.status, 503, "{r:?}");
    let unavailable = [
        "reporter=\"source\"",
        "destination_service=\"nothing.default.svc.cluster.local\"",
        "destination_workload=\"unknown\"",
        "response_code=\"503\"",
        "response_flags=\"UH\"",
    ];
    let text = wait_sample(
        metrics_addr(&client),
        "istio_requests_total",
        &unavailable,
        1.0,
    )
    .await;
    assert!(
        sample(&text, "istio_requests_total", &unavailable).is_some(),
        "{text}"
    );

    // A TCP connection to the server's inbound TCP port (plaintext: PERMISSIVE).
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", tcp_listen))
        .await
        .unwrap();
    s.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    while !got.ends_with(b"ping") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed early: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    drop(s);
    let tcp = [
        "reporter=\"destination\"",
        "request_protocol=\"tcp\"",
        "response_flags=\"-\"",
        "connection_security_policy=\"none\"",
        "destination_workload=\"server\"",
    ];
    let text = wait_sample(
        server_metrics,
        "istio_tcp_connections_closed_total",
        &tcp,
        1.0,
    )
    .await;
    assert!(
        sample(&text, "istio_tcp_connections_opened_total", &tcp).is_some_and(|v| v >= 1.0),
        "{text}"
    );
    assert!(
        sample(&text, "istio_tcp_connections_closed_total", &tcp).is_some_and(|v| v >= 1.0),
        "{text}"
    );
    assert!(
        sample(&text, "istio_tcp_received_bytes_total", &tcp).is_some_and(|v| v >= 4.0),
        "{text}"
    );
    assert!(
        sample(&text, "istio_tcp_sent_bytes_total", &tcp).is_some_and(|v| v >= 4.0),
        "{text}"
    );
}
