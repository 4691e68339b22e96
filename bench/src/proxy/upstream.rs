//! The benchmark's upstream: a small hyper server answering every request with 200 and a
//! fixed 1 KiB body, HTTP/1.1 keep-alive on one port and h2c (prior knowledge) on another,
//! on a single-threaded runtime. It runs as a separate process (this binary re-executed with
//! the `upstream` subcommand, see [`Upstream::spawn`]) so its CPU is not counted with the load
//! generator's.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mast_test_support::{ProcessGuard, free_port};

/// The response body: 1 KiB.
static BODY: [u8; 1024] = [b'x'; 1024];

/// Runs the server on `127.0.0.1:h1_port` (HTTP/1.1) and `127.0.0.1:h2_port` (h2c) until the
/// process is killed.
pub fn serve(h1_port: u16, h2_port: u16) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let h1 = tokio::net::TcpListener::bind(("127.0.0.1", h1_port))
            .await
            .with_context(|| format!("binding 127.0.0.1:{h1_port}"))?;
        let h2 = tokio::net::TcpListener::bind(("127.0.0.1", h2_port))
            .await
            .with_context(|| format!("binding 127.0.0.1:{h2_port}"))?;
        tokio::spawn(accept(h2, true));
        accept(h1, false).await;
        Ok(())
    })
}

pub(crate) async fn accept(listener: tokio::net::TcpListener, h2: bool) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(stream);
        let service = service_fn(respond);
        if h2 {
            tokio::spawn(
                http2::Builder::new(TokioExecutor::new())
                    .max_concurrent_streams(1000)
                    .serve_connection(io, service),
            );
        } else {
            tokio::spawn(
                http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(io, service),
            );
        }
    }
}

/// The request header asking the upstream to echo what it received as
/// `x-forwarded-client-cert` (the mTLS mode's check), and the response header carrying it.
pub const ECHO_XFCC: &str = "x-echo-xfcc";

/// Answers any request with 200 and the 1 KiB body (echoing `x-forwarded-client-cert` when
/// asked with [`ECHO_XFCC`]).
pub(crate) async fn respond(
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(&BODY)));
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    if request.headers().contains_key(ECHO_XFCC) {
        let seen = request
            .headers()
            .get("x-forwarded-client-cert")
            .cloned()
            .unwrap_or_else(|| hyper::header::HeaderValue::from_static("none"));
        headers.insert(ECHO_XFCC, seen);
    }
    Ok(response)
}

/// The running upstream process, killed when dropped.
pub struct Upstream {
    guard: ProcessGuard,
    /// The HTTP/1.1 address.
    pub h1: SocketAddr,
    /// The h2c address.
    pub h2: SocketAddr,
}

impl Upstream {
    /// Re-executes this binary as the upstream on two free ports and waits (up to 10 s) until
    /// both accept connections.
    pub async fn spawn() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating proxy-bench")?;
        let (h1_port, mut h2_port) = (free_port(), free_port());
        for _ in 0..10 {
            if h2_port != h1_port {
                break;
            }
            h2_port = free_port();
        }
        let mut command = Command::new(exe);
        command
            .args(["upstream", "--h1-port", &h1_port.to_string()])
            .args(["--h2-port", &h2_port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let mut guard = ProcessGuard::spawn(&mut command).context("starting the upstream")?;
        let h1 = SocketAddr::from(([127, 0, 0, 1], h1_port));
        let h2 = SocketAddr::from(([127, 0, 0, 1], h2_port));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if tokio::net::TcpStream::connect(h1).await.is_ok()
                && tokio::net::TcpStream::connect(h2).await.is_ok()
            {
                return Ok(Self { guard, h1, h2 });
            }
            if let Ok(Some(status)) = guard.try_wait() {
                bail!("the upstream exited with {status}");
            }
            if Instant::now() >= deadline {
                bail!("the upstream did not listen within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }
}
