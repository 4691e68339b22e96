//! HTTP/2 connections of one endpoint: requests are multiplexed on the first connection with
//! room (`max_concurrent_streams`, `max_requests_per_connection`, `max_connection_duration`);
//! another connection is opened only when none has room.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;

use std::sync::Weak;
use std::time::Duration;

use super::io::{Target, secure};
use super::pool::{ConnState, expired_idle, map_error, next_check};
use super::{ConnGuard, Counters, PendingGuard, Shared, UpstreamError, connect_tcp};
use crate::body::Body;

#[derive(Clone)]
struct Conn {
    sender: http2::SendRequest<Body>,
    state: Arc<ConnState>,
}

/// HTTP/2 connections of one endpoint.
#[derive(Default)]
pub(crate) struct H2Pool {
    conns: Arc<Mutex<Vec<Conn>>>,
    connecting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for H2Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Pool")
            .field("connections", &self.conns.lock().len())
            .finish()
    }
}

/// Counts a stream as active until dropped; then wakes requests waiting for a stream slot
/// (only when `max_concurrent_streams` limits the connections).
struct Active(Arc<ConnState>, Option<Arc<Counters>>);

impl Drop for Active {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.set_idle();
        }
        if let Some(c) = &self.1 {
            c.freed.notify_waiters();
        }
    }
}

impl H2Pool {
    /// Sends one request as a new stream.
    pub async fn send(
        &self,
        shared: &Shared,
        target: &Target,
        host: Option<&str>,
        mut req: Request<Body>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        prepare(&mut req);
        let mut pending: Option<PendingGuard> = None;
        let conn = loop {
            if let Some(c) = self.pick(shared) {
                break c;
            }
            let _connecting = self.connecting.lock().await;
            let freed = shared.counters.freed.notified();
            let mut freed = std::pin::pin!(freed);
            freed.as_mut().enable();
            if let Some(c) = self.pick(shared) {
                break c;
            }
            if let Some(guard) = ConnGuard::try_new(shared) {
                drop(pending);
                let c = self.open(shared, target, host, guard).await?;
                self.conns.lock().push(c);
                pending = None;
                continue;
            }
            if pending.is_none() {
                pending = Some(PendingGuard::try_new(shared).ok_or(UpstreamError::Overflow)?);
            }
            drop(_connecting);
            freed.await;
        };
        drop(pending);
        let Conn { mut sender, state } = conn;
        let limited = shared.options.max_concurrent_streams.is_some();
        let _active = Active(state, limited.then(|| shared.counters.clone()));
        sender.send_request(req).await.map_err(|e| map_error(&e))
    }

    /// A connection with room for one more stream; takes the stream slot.
    fn pick(&self, shared: &Shared) -> Option<Conn> {
        let max_streams = shared.options.max_concurrent_streams.unwrap_or(u32::MAX);
        let mut conns = self.conns.lock();
        conns.retain(|c| !c.sender.is_closed());
        for c in conns.iter() {
            if !c.sender.is_ready() || !c.state.reusable(shared) {
                continue;
            }
            let taken = c
                .state
                .active
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < max_streams).then_some(n + 1)
                })
                .is_ok();
            if taken {
                c.state.requests.fetch_add(1, Ordering::AcqRel);
                return Some(c.clone());
            }
        }
        None
    }

    async fn open(
        &self,
        shared: &Shared,
        target: &Target,
        host: Option<&str>,
        guard: ConnGuard,
    ) -> Result<Conn, UpstreamError> {
        let stream = connect_tcp(&shared.options, target.addr).await?;
        let io = secure(
            stream,
            &shared.options,
            target,
            host,
            crate::tls::Carried::Http2,
        )
        .await?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| UpstreamError::ConnectFailure(std::io::Error::other(e)))?;
        let state = Arc::new(ConnState::new());
        let o = &shared.options;
        spawn_driver(
            conn,
            guard,
            state.clone(),
            Arc::downgrade(&self.conns),
            (o.idle_timeout, o.max_connection_duration),
        );
        Ok(Conn { sender, state })
    }
}

/// HTTP/2 on the wire: an absolute URI (`:scheme`, `:authority`), the authority taken from
/// `Host` when the URI has none.
pub(super) fn prepare(req: &mut Request<Body>) {
    *req.version_mut() = Version::HTTP_2;
    let uri = req.uri();
    if uri.scheme().is_some() && uri.authority().is_some() {
        return;
    }
    let authority = match uri.authority() {
        Some(a) => Some(a.clone()),
        None => req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| http::uri::Authority::try_from(h.as_bytes()).ok()),
    };
    let Some(authority) = authority else {
        return;
    };
    let mut parts = req.uri().clone().into_parts();
    parts.scheme = Some(parts.scheme.unwrap_or(http::uri::Scheme::HTTP));
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *req.uri_mut() = uri;
        req.headers_mut().remove(http::header::HOST);
    }
}

/// Drives an HTTP/2 connection. When it has been idle for `idle_timeout` or has lived for
/// `max_connection_duration`, it leaves the pool (no new streams) and hyper closes it once
/// its open streams are done — streaming responses are never cut.
fn spawn_driver<F>(
    conn: F,
    guard: ConnGuard,
    state: Arc<ConnState>,
    pool: Weak<Mutex<Vec<Conn>>>,
    (idle, max): (Option<Duration>, Option<Duration>),
) where
    F: Future + Send + 'static,
{
    tokio::spawn(async move {
        let _guard = guard;
        let mut conn = std::pin::pin!(conn);
        loop {
            let wait = next_check(&state, idle, max);
            tokio::select! {
                _ = &mut conn => return,
                _ = tokio::time::sleep(wait), if wait != Duration::MAX => {
                    let old = max.is_some_and(|m| !state.reusable_for(m));
                    if old || expired_idle(&state, idle, None) {
                        break;
                    }
                }
            }
        }
        if let Some(pool) = pool.upgrade() {
            pool.lock().retain(|c| !Arc::ptr_eq(&c.state, &state));
        }
        drop(pool);
        tracing::trace!("HTTP/2 upstream connection retired");
        conn.await;
    });
}
