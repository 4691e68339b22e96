//! An endpoint's connection pool: picks HTTP/1.1 or HTTP/2 per the cluster's protocol options,
//! tracks each connection's age, request count and idleness, and closes idle connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{Request, Response, Version};
use parking_lot::Mutex;

use super::h1::H1Pool;
use super::h2::H2Pool;
use super::io::{Target, sni_host};
use super::{ConnGuard, Protocol, Shared, UpstreamError};
use crate::body::Body;

/// The most SNI-specific sub-pools one endpoint keeps (`auto_sni`); beyond, they are reset.
const MAX_SNI_POOLS: usize = 256;

/// Connections of one protocol pair, all with the same transport settings.
#[derive(Debug, Default)]
struct Sub {
    h1: H1Pool,
    h2: H2Pool,
}

/// One endpoint's pooled connections. With `auto_sni`, connections are also keyed by the SNI
/// (the request's host), so no connection carries a request for another host.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    main: Sub,
    by_sni: Mutex<std::collections::HashMap<String, Arc<Sub>>>,
}

impl Pool {
    /// Sends `req` on a pooled connection of the protocol the cluster asks for.
    pub async fn send(
        &self,
        shared: &Shared,
        target: &Target,
        req: Request<Body>,
    ) -> Result<Response<Body>, UpstreamError> {
        let h2 = match shared.options.protocol {
            Protocol::Http1 => false,
            Protocol::Http2 => true,
            Protocol::Downstream => req.version() == Version::HTTP_2,
        };
        let host = target
            .tls
            .as_ref()
            .filter(|t| t.auto_sni())
            .and_then(|_| sni_host(&req))
            .map(str::to_owned);
        let keyed;
        let sub = match &host {
            None => &self.main,
            Some(h) => {
                keyed = self.sub(h);
                &*keyed
            }
        };
        let host = host.as_deref();
        if h2 {
            let response = sub.h2.send(shared, target, host, req).await?;
            Ok(response.map(crate::body::boxed))
        } else {
            sub.h1.send(shared, target, host, req).await
        }
    }

    fn sub(&self, host: &str) -> Arc<Sub> {
        let mut map = self.by_sni.lock();
        if let Some(s) = map.get(host) {
            return Arc::clone(s);
        }
        if map.len() >= MAX_SNI_POOLS {
            map.clear();
        }
        let s = Arc::new(Sub::default());
        map.insert(host.to_owned(), Arc::clone(&s));
        s
    }
}

/// The life of one upstream connection, shared by its pool entry and its driver task.
#[derive(Debug)]
pub(crate) struct ConnState {
    created: Instant,
    /// Requests started on the connection.
    pub requests: AtomicU32,
    /// Requests in flight (HTTP/1.1: 0 or 1).
    pub active: AtomicU32,
    /// When the connection last became idle, in ms since `created`.
    idle_since_ms: AtomicU64,
}

impl ConnState {
    /// A new connection's state.
    pub fn new() -> Self {
        Self {
            created: Instant::now(),
            requests: AtomicU32::new(0),
            active: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(0),
        }
    }

    /// Marks the connection idle from now on.
    pub fn set_idle(&self) {
        let ms = self.created.elapsed().as_millis() as u64;
        self.idle_since_ms.store(ms, Ordering::Release);
    }

    /// How long the connection has been idle (zero while a request is active).
    pub(crate) fn idle_for(&self) -> Duration {
        if self.active.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        self.created.elapsed().saturating_sub(since)
    }

    /// Whether the connection is younger than `max` (`max_connection_duration`).
    pub fn reusable_for(&self, max: Duration) -> bool {
        self.created.elapsed() < max
    }

    /// Whether the connection may carry another request under the cluster's limits.
    pub fn reusable(&self, shared: &Shared) -> bool {
        let o = &shared.options;
        if let Some(max) = o.max_requests_per_connection
            && self.requests.load(Ordering::Acquire) >= max
        {
            return false;
        }
        if let Some(max) = o.max_connection_duration
            && self.created.elapsed() >= max
        {
            return false;
        }
        if let Some(idle) = o.idle_timeout
            && self.idle_for() >= idle
        {
            return false;
        }
        true
    }
}

/// Drives an HTTP/1.1 connection until it ends, is idle for `idle_timeout`, or outlives
/// `max_connection_duration` while idle; then closes the socket (the pool may still hold a
/// handle to it), drops it from the idle list and releases its connection slot.
pub(crate) fn spawn_driver<F>(
    conn: F,
    guard: ConnGuard,
    state: Arc<ConnState>,
    (idle_timeout, max_duration): (Option<Duration>, Option<Duration>),
    on_exit: impl FnOnce(bool) + Send + 'static,
) where
    F: Future + Send + 'static,
{
    tokio::spawn(async move {
        let _guard = guard;
        let mut conn = std::pin::pin!(conn);
        let expired = loop {
            let wait = next_check(&state, idle_timeout, max_duration);
            tokio::select! {
                _ = &mut conn => break false,
                _ = tokio::time::sleep(wait), if wait != Duration::MAX => {
                    if expired_idle(&state, idle_timeout, max_duration) {
                        tracing::trace!("closing idle upstream connection");
                        break true;
                    }
                }
            }
        };
        on_exit(expired);
    });
}

pub(super) fn next_check(
    state: &ConnState,
    idle: Option<Duration>,
    max: Option<Duration>,
) -> Duration {
    let mut wait = Duration::MAX;
    if let Some(idle) = idle {
        wait = wait.min(
            idle.saturating_sub(state.idle_for())
                .max(Duration::from_millis(10)),
        );
    }
    if let Some(max) = max {
        let left = max.saturating_sub(state.created.elapsed());
        wait = wait.min(left.max(Duration::from_millis(10)));
    }
    wait
}

pub(super) fn expired_idle(
    state: &ConnState,
    idle: Option<Duration>,
    max: Option<Duration>,
) -> bool {
    if state.active.load(Ordering::Acquire) > 0 {
        return false;
    }
    idle.is_some_and(|t| state.idle_for() >= t) || max.is_some_and(|t| state.created.elapsed() >= t)
}

/// Maps a hyper client error to an [`UpstreamError`].
pub(crate) fn map_error(e: &hyper::Error) -> UpstreamError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h2e) = s.downcast_ref::<h2::Error>() {
            if h2e.reason() == Some(h2::Reason::REFUSED_STREAM) {
                return UpstreamError::RefusedStream;
            }
            if h2e.reason().is_none() && !h2e.is_io() {
                return UpstreamError::Protocol(h2e.to_string());
            }
            if h2e.reason() == Some(h2::Reason::PROTOCOL_ERROR) && !h2e.is_remote() {
                return UpstreamError::Protocol(e.to_string());
            }
            return UpstreamError::Reset(e.to_string());
        }
        source = s.source();
    }
    if e.is_parse() || e.is_parse_status() || e.is_user() {
        UpstreamError::Protocol(e.to_string())
    } else {
        UpstreamError::Reset(e.to_string())
    }
}
