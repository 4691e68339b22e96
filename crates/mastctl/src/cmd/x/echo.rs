//! `mastctl x echo`: the echo server's flags, its listener (HTTP/1.1 and h2c with prior
//! knowledge on one port, through hyper-util's auto builder) and its clean exit on
//! SIGTERM or Ctrl-C. What it answers lives in [`super::reply`].

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use super::reply::{self, Echo};

/// How long in-flight requests may finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(5);

/// `mastctl x echo` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The text a plain GET answers, followed by a newline.
    #[arg(long, default_value = "hello from mastctl x echo")]
    pub message: String,
    /// The version reported in the `x-echo-version` header and in JSON answers.
    #[arg(long, default_value = "v1")]
    pub version: String,
    /// Delay added before every answer (`100ms`, `1s`); `?delay=` overrides it per request.
    #[arg(long, value_parser = super::parse_duration, default_value = "0s")]
    pub delay: Duration,
    /// Fraction of requests (0 to 1) answered with `--error-status`; `?status=` forces one.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub error_rate: f64,
    /// The HTTP status of injected errors (gRPC answers the matching grpc-status).
    #[arg(long, default_value_t = 503, value_parser = parse_status)]
    pub error_status: u16,
    /// Port to listen on (all addresses); default `$PORT`, else 8080.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{text:?} is not a fraction between 0 and 1")),
    }
}

fn parse_status(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(s) if (100..=599).contains(&s) => Ok(s),
        _ => Err(format!("{text:?} is not an HTTP status (100-599)")),
    }
}

impl Args {
    /// The server's identity and behaviour from the flags and the environment.
    pub fn echo(&self) -> Echo {
        let workload = [
            ("name", "MAST_WORKLOAD"),
            ("namespace", "MAST_NAMESPACE"),
            ("serviceAccount", "MAST_SERVICE_ACCOUNT"),
        ]
        .into_iter()
        .filter_map(|(key, var)| {
            let v = std::env::var(var).ok().filter(|v| !v.is_empty())?;
            Some((key.to_owned(), v))
        })
        .collect::<BTreeMap<_, _>>();
        Echo {
            message: self.message.clone(),
            version: self.version.clone(),
            hostname: hostname(),
            workload,
            delay: self.delay,
            error_rate: self.error_rate,
            error_status: StatusCode::from_u16(self.error_status)
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
        }
    }
}

/// This machine's host name: `$HOSTNAME`, else the kernel's, else `localhost`.
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Runs the server until SIGTERM or Ctrl-C.
pub async fn run(args: &Args) -> anyhow::Result<i32> {
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, args.port));
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let echo = args.echo();
    let local = listener.local_addr().context("listener address")?;
    let _ = writeln!(
        std::io::stdout().lock(),
        "mastctl x echo: listening on {local} (HTTP/1.1, h2c, gRPC {}), message {:?}, version {}",
        super::grpc::ECHO_PATH,
        echo.message,
        echo.version
    );
    serve(listener, Arc::new(echo), shutdown_signal()).await?;
    let _ = writeln!(std::io::stdout().lock(), "mastctl x echo: stopped");
    Ok(0)
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Serves connections from `listener` until `shutdown` resolves, then lets in-flight requests
/// finish (at most [`DRAIN`]).
pub async fn serve(
    listener: TcpListener,
    echo: Arc<Echo>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let echo = echo.clone();
        let service =
            hyper::service::service_fn(move |req| reply::handle(echo.clone(), remote, req));
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection from {remote}: {e}");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after {DRAIN:?}; stopping anyway");
    }
    Ok(())
}
