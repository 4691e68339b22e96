//! Connections and pools to upstream endpoints: TCP connect with the cluster's timeout,
//! keepalive and bind address ([`connect`]), TLS over it when the endpoint's transport socket
//! says so ([`io`]: SNI, ALPN, client certificate; a failed handshake is a connect failure),
//! the per-endpoint HTTP/1.1 keep-alive pool and
//! multiplexed HTTP/2 connections ([`pool`]), and the connection counting that the circuit
//! breakers (`max_connections`, `max_pending_requests`) rely on.

mod connect;
mod h1;
mod h2;
mod io;
mod pool;
mod stream;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

pub(crate) use connect::connect_tcp;
pub(crate) use io::{MaybeTls, Target};
pub(crate) use pool::Pool;

/// Why an upstream attempt failed. Each maps to an Envoy response flag: `ConnectFailure` and
/// `ConnectTimeout` → UF, `Overflow` → UO, `Reset` before a response → UR/UC, `RefusedStream`
/// → the refused-stream retry condition.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The TCP connection could not be established.
    #[error("upstream connect error: {0}")]
    ConnectFailure(std::io::Error),
    /// The TCP connection was not established within the cluster's `connect_timeout`.
    #[error("upstream connect timeout")]
    ConnectTimeout,
    /// A circuit breaker (`max_connections` + `max_pending_requests`) is full.
    #[error("upstream overflow")]
    Overflow,
    /// The connection was closed or reset before a response arrived.
    #[error("upstream reset: {0}")]
    Reset(String),
    /// The HTTP/2 upstream refused the stream (REFUSED_STREAM); the request was not processed.
    #[error("upstream refused the stream")]
    RefusedStream,
    /// The upstream spoke invalid HTTP.
    #[error("upstream protocol error: {0}")]
    Protocol(String),
}

/// The upstream HTTP protocol of a cluster (its `HttpProtocolOptions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// HTTP/1.1 (Envoy's default, `explicit_http_config.http_protocol_options`).
    Http1,
    /// HTTP/2 with prior knowledge (`explicit_http_config.http2_protocol_options`).
    Http2,
    /// The request's version (`use_downstream_protocol_config`).
    Downstream,
}

/// TCP keepalive settings (`upstream_connection_options.tcp_keepalive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Keepalive {
    pub probes: Option<u32>,
    pub time: Option<Duration>,
    pub interval: Option<Duration>,
}

/// The circuit-breaker limits of the default priority.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Limits {
    pub max_connections: u64,
    pub max_pending_requests: u64,
    pub max_requests: u64,
    pub max_retries: u64,
    /// `retry_budget`: (budget percent, min retry concurrency); replaces `max_retries`.
    pub retry_budget: Option<(f64, u64)>,
}

impl Default for Limits {
    fn default() -> Self {
        // Envoy's defaults.
        Self {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
            retry_budget: None,
        }
    }
}

/// How connections to a cluster's endpoints are made and pooled.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UpstreamOptions {
    pub connect_timeout: Duration,
    pub protocol: Protocol,
    /// Close a connection with no active request after this long (Envoy's default: 1 hour).
    pub idle_timeout: Option<Duration>,
    pub max_requests_per_connection: Option<u32>,
    pub max_connection_duration: Option<Duration>,
    /// At most this many concurrent streams per HTTP/2 connection; more opens another one.
    pub max_concurrent_streams: Option<u32>,
    pub keepalive: Option<Keepalive>,
    /// `upstream_bind_config.source_address`.
    pub bind: Option<SocketAddr>,
    /// `upstream_http_protocol_options.auto_sni`: SNI from the request's host.
    pub auto_sni: bool,
    /// `upstream_http_protocol_options.auto_san_validation`: verify the certificate against
    /// that host.
    pub auto_san: bool,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            protocol: Protocol::Http1,
            idle_timeout: Some(Duration::from_secs(3600)),
            max_requests_per_connection: None,
            max_connection_duration: None,
            max_concurrent_streams: None,
            keepalive: None,
            bind: None,
            auto_sni: false,
            auto_san: false,
        }
    }
}

/// The live counters of a cluster's circuit breakers, shared by its endpoints' pools.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub connections: AtomicU64,
    pub pending: AtomicU64,
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    /// Woken when a connection closes or returns to a pool (pending requests re-check).
    pub freed: Notify,
}

impl Counters {
    /// Takes one unit of `counter` if it stays within `max`.
    pub fn try_take(counter: &AtomicU64, max: u64) -> bool {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }
}

/// The per-cluster context every endpoint pool of that cluster shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub options: UpstreamOptions,
    pub limits: Limits,
    pub counters: Arc<Counters>,
}

/// One open upstream connection counted toward `max_connections`; released on drop.
#[derive(Debug)]
pub(crate) struct ConnGuard {
    counters: Arc<Counters>,
}

impl ConnGuard {
    /// Takes a connection slot, or `None` when `max_connections` is reached.
    pub fn try_new(shared: &Shared) -> Option<Self> {
        Counters::try_take(&shared.counters.connections, shared.limits.max_connections).then(|| {
            Self {
                counters: shared.counters.clone(),
            }
        })
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.counters.connections.fetch_sub(1, Ordering::AcqRel);
        self.counters.freed.notify_waiters();
    }
}

/// A pending request (waiting for a connection), counted toward `max_pending_requests`.
#[derive(Debug)]
pub(crate) struct PendingGuard {
    counters: Arc<Counters>,
}

impl PendingGuard {
    /// Takes a pending slot, or `None` when `max_pending_requests` is reached.
    pub fn try_new(shared: &Shared) -> Option<Self> {
        Counters::try_take(&shared.counters.pending, shared.limits.max_pending_requests).then(
            || Self {
                counters: shared.counters.clone(),
            },
        )
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.counters.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection to an endpoint carrying raw bytes (TCP proxy, `CONNECT`) — TLS when the
/// endpoint's transport socket says so — counted toward the cluster's `max_connections` until
/// dropped.
#[derive(Debug)]
pub struct UpstreamConnection {
    stream: MaybeTls<TcpStream>,
    _guard: ConnGuard,
}

impl UpstreamConnection {
    /// The underlying socket (for addresses and socket options).
    pub fn stream(&self) -> &TcpStream {
        match &self.stream {
            MaybeTls::Plain(s) => s,
            MaybeTls::Tls(t) => t.get_ref().0,
        }
    }

    /// Whether the connection is TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, MaybeTls::Tls(_))
    }
}

impl AsyncRead for UpstreamConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for UpstreamConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Opens a counted connection for raw bytes (for [`crate::cluster::Endpoint::connect`]).
pub(crate) async fn connect_raw(
    shared: &Shared,
    target: &Target,
) -> Result<UpstreamConnection, UpstreamError> {
    let guard = ConnGuard::try_new(shared).ok_or(UpstreamError::Overflow)?;
    let tcp = connect_tcp(&shared.options, target.addr).await?;
    let stream = io::secure(tcp, &shared.options, target, None, crate::tls::Carried::Raw).await?;
    Ok(UpstreamConnection {
        stream,
        _guard: guard,
    })
}

#[cfg(test)]
mod tests;
