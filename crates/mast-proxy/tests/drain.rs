//! Graceful drain on SIGTERM, with the real binaries: a request in flight when mast-proxy is
//! told to stop completes (with `Connection: close`), the listener takes no new connection,
//! the health check fails, and the process exits as soon as its last connection closes —
//! long before the drain deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mast_test_support::{
    Behaviour, EchoServer, MastdOptions, MastdProcess, ProxyKind, ProxyOptions, ProxyProcess,
    TempDir,
};

fn mesh_yaml(port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: slow, namespace: default}}\n\
         spec:\n  selector: {{app: slow}}\n  ports: [{{name: http, port: 80}}]\n---\n\
         apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n\
         metadata: {{name: slow-1, namespace: default}}\n\
         spec:\n  address: 127.0.0.1\n  labels: {{app: slow}}\n  ports: {{http: {port}}}\n"
    )
}

/// Sends `GET http://slow/` and reads the whole response (bounded by a read timeout).
fn get(outbound: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect(outbound)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET http://slow/ HTTP/1.1\r\nhost: slow\r\n\r\n")?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out);
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if out.len() >= end + 4 + len {
                break;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits_early() {
    let upstream = EchoServer::start_with(
        "slow",
        Behaviour::default().delay(Duration::from_millis(1500)),
    )
    .unwrap();
    let dir = TempDir::new("mast-proxy-drain").unwrap();
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("mesh.yaml"), mesh_yaml(upstream.port())).unwrap();
    let mastd = MastdProcess::start(&MastdOptions::new(&config).unwrap())
        .await
        .unwrap();
    let options = ProxyOptions::new(ProxyKind::Mast, mastd.xds_addr())
        .binary(env!("CARGO_BIN_EXE_mast-proxy"))
        .args(["--drain-duration", "20s"]);
    let mut proxy = tokio::task::spawn_blocking(move || ProxyProcess::start(options))
        .await
        .unwrap()
        .unwrap();
    assert!(
        proxy.wait_ready(Duration::from_secs(20)).await,
        "{}",
        proxy.log_tail()
    );
    let outbound = proxy.outbound_addr();
    // The route is in place: a first request is answered by the upstream.
    let first = tokio::task::spawn_blocking(move || get(outbound))
        .await
        .unwrap()
        .unwrap();
    assert!(
        first.starts_with("HTTP/1.1 200"),
        "{first}\n{}",
        proxy.log_tail()
    );

    let in_flight = tokio::task::spawn_blocking(move || get(outbound));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let pid = proxy.pid();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let signalled = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Draining: no new connection is served (refused, or closed without an answer).
    let refused = match TcpStream::connect_timeout(&outbound, Duration::from_secs(1)) {
        Err(_) => true,
        Ok(mut s) => {
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let _ = s.write_all(b"GET http://slow/ HTTP/1.1\r\nhost: slow\r\n\r\n");
            let mut buf = [0u8; 64];
            matches!(s.read(&mut buf), Ok(0) | Err(_))
        }
    };
    assert!(refused, "a new connection was served while draining");

    let answer = in_flight.await.unwrap().unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "in-flight request: {answer}"
    );
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "the drained connection is closed after its response: {answer}"
    );
    let exit = tokio::task::spawn_blocking(move || {
        let status = proxy.stop(Duration::from_secs(15));
        (status, proxy)
    });
    let (status, proxy) = exit.await.unwrap();
    let took = signalled.elapsed();
    assert!(
        status.is_some(),
        "mast-proxy did not exit: {}",
        proxy.log_tail()
    );
    assert!(
        took < Duration::from_secs(10),
        "exited {took:?} after SIGTERM: it should leave once idle, not at the 20 s deadline\n{}",
        proxy.log_tail()
    );
    assert_eq!(upstream.request_count(), 2);
}
