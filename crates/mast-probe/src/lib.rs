//! Istio's application probes through the sidecar (pilot-agent's status server does this
//! in Istio). With mTLS the kubelet cannot probe an application directly, so the injector
//! rewrites each HTTP, TCP and gRPC probe into `GET :15020/app-health/<container>/<readyz|
//! livez|startupz>` and puts the original probe in the sidecar's `ISTIO_KUBE_APP_PROBERS`
//! (JSON: path → `{"httpGet"|"tcpSocket"|"grpc": {...}, "timeoutSeconds": N}`). The
//! sidecar's status port answers those paths by running the original probe against the
//! application on 127.0.0.1.
//!
//! - [`AppProbers`]: the table, parsed and checked at start ([`AppProbers::from_env`]);
//! - [`run`] / [`AppProbers::answer`]: one probe run and the HTTP answer it makes
//!   (2xx/3xx → 200; another status → that status and the application's body; no answer,
//!   refused connection or timeout → 500);
//! - [`http`], [`grpc`]: the HTTP(S) GET and the `grpc.health.v1.Health/Check` call.

pub mod config;
pub mod grpc;
pub mod http;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;

pub use config::{AppProbers, ConfigError, GrpcAction, HttpGetAction, Probe, Prober, Scheme};

/// The environment variable holding the table (Istio's name).
pub const ENV: &str = "ISTIO_KUBE_APP_PROBERS";
/// The path prefix of application probes on the status port.
pub const PATH_PREFIX: &str = "/app-health/";
/// The kubelet's default probe timeout, used when `timeoutSeconds` is absent or 0.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// The most of the application's body passed back on a failed HTTP probe (Istio's).
pub const MAX_BODY: usize = 10 * 1024;
/// Where the application is probed.
pub const APP_HOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The answer to one probe request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status for the kubelet.
    pub status: u16,
    /// A short text: the application's body, or why the probe failed.
    pub body: Bytes,
}

impl Answer {
    fn new(status: u16, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            body: body.into(),
        }
    }

    fn failed(what: impl std::fmt::Display) -> Self {
        Self::new(500, format!("{what}\n"))
    }
}

impl AppProbers {
    /// The answer for a request to `path` on the status port: `None` when `path` is not
    /// under `/app-health/` (the caller's 404); 400 for an application path with no probe
    /// (Istio's "app prober config does not exists"); otherwise the probe's answer.
    /// `headers` are the kubelet's request headers, forwarded to HTTP probes (Istio does).
    pub async fn answer(&self, path: &str, headers: &::http::HeaderMap) -> Option<Answer> {
        if !path.starts_with(PATH_PREFIX) {
            return None;
        }
        let Some(prober) = self.get(path) else {
            return Some(Answer::new(
                400,
                format!("app prober config does not exist for {path}\n"),
            ));
        };
        Some(run(prober, headers).await)
    }
}

/// Runs `prober` against the application on 127.0.0.1, within its timeout.
pub async fn run(prober: &Prober, headers: &::http::HeaderMap) -> Answer {
    let timeout = prober.timeout;
    let work = async {
        match &prober.probe {
            Probe::HttpGet(action) => http::probe(action, headers).await,
            Probe::TcpSocket { port } => tcp(*port).await,
            Probe::Grpc(action) => grpc::probe(action, timeout).await,
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(answer) => answer,
        Err(_) => Answer::failed(format!(
            "the application did not answer within {} s",
            timeout.as_secs_f64()
        )),
    }
}

/// A TCP probe: the application accepts a connection.
async fn tcp(port: u16) -> Answer {
    let addr = SocketAddr::new(APP_HOST, port);
    match tokio::net::TcpStream::connect(addr).await {
        Ok(_) => Answer::new(200, Bytes::new()),
        Err(e) => Answer::failed(format!("connecting to {addr}: {e}")),
    }
}

#[cfg(test)]
mod tests;
