//! The HTTP/1.1 keep-alive pool of one endpoint: idle connections are reused most recent first;
//! a connection returns to the pool once its response body is finished; a request that a
//! reused connection could not even start (the upstream had closed it) is re-sent once on a
//! new connection.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{HeaderValue, Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;

use super::io::{Target, secure};
use super::pool::{ConnState, map_error, spawn_driver};
use super::stream::{SharedStream, unusable};
use super::{ConnGuard, PendingGuard, Shared, UpstreamError, connect_tcp};
use crate::body::Body;

/// Idle time after which a pooled connection is checked for a close by the peer before reuse.
const PEEK_AFTER: std::time::Duration = std::time::Duration::from_millis(20);

/// How long a pooled connection whose response just ended may take to become ready.
const READY_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

struct Idle {
    sender: http1::SendRequest<Body>,
    state: Arc<ConnState>,
    stream: Arc<tokio::net::TcpStream>,
}

impl std::fmt::Debug for Idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idle").field("state", &self.state).finish()
    }
}

/// Idle HTTP/1.1 connections of one endpoint.
#[derive(Debug, Default)]
pub(crate) struct H1Pool {
    idle: Arc<Mutex<Vec<Idle>>>,
}

enum Sent {
    Done(Result<Response<Body>, UpstreamError>),
    /// The connection was closed before the request was written: the request comes back.
    Unsent(Request<Body>),
}

impl H1Pool {
    /// Sends one request, reusing an idle connection when one is usable.
    pub async fn send(
        &self,
        shared: &Shared,
        target: &Target,
        host: Option<&str>,
        mut req: Request<Body>,
    ) -> Result<Response<Body>, UpstreamError> {
        let addr = target.addr;
        prepare(&mut req);
        let mut pending: Option<PendingGuard> = None;
        let mut fresh_only = false;
        loop {
            let freed = shared.counters.freed.notified();
            let mut freed = std::pin::pin!(freed);
            freed.as_mut().enable();
            if !fresh_only && let Some(idle) = self.take_idle(shared).await {
                // The upstream may close a reused connection as the request goes out: keep a
                // copy to replay (bodyless idempotent requests only).
                let replay = replayable(&req);
                match self.dispatch(shared, idle, req).await {
                    Sent::Done(r) => match (r, replay) {
                        (Err(UpstreamError::Reset(e)), Some(again)) => {
                            tracing::debug!(%addr, error = %e, "reused connection reset; replaying");
                            req = again;
                            fresh_only = true;
                            continue;
                        }
                        (r, _) => return r,
                    },
                    Sent::Unsent(back) => {
                        tracing::debug!(%addr, "reused connection was closed; re-sending");
                        req = back;
                        fresh_only = true;
                        continue;
                    }
                }
            }
            if let Some(guard) = ConnGuard::try_new(shared) {
                drop(pending);
                let idle = self.open(shared, target, host, guard).await?;
                return match self.dispatch(shared, idle, req).await {
                    Sent::Done(r) => r,
                    Sent::Unsent(_) => Err(UpstreamError::Reset(
                        "new connection closed before the request was sent".into(),
                    )),
                };
            }
            if pending.is_none() {
                pending = Some(PendingGuard::try_new(shared).ok_or(UpstreamError::Overflow)?);
            }
            freed.await;
            fresh_only = false;
        }
    }

    /// The most recently used idle connection that can take a request: not spent, not
    /// closed by the peer (checked after [`PEEK_AFTER`] of idleness), and ready (a connection
    /// whose response just ended may need a moment for hyper to notice).
    async fn take_idle(&self, shared: &Shared) -> Option<Idle> {
        loop {
            let mut c = self.idle.lock().pop()?;
            let fresh = c.state.idle_for() < PEEK_AFTER;
            if !c.state.reusable(shared) || (!fresh && unusable(&c.stream)) {
                continue;
            }
            if c.sender.is_ready() {
                return Some(c);
            }
            if c.sender.is_closed() {
                continue;
            }
            let ready = tokio::time::timeout(READY_WAIT, c.sender.ready()).await;
            if matches!(ready, Ok(Ok(()))) {
                return Some(c);
            }
        }
    }

    async fn open(
        &self,
        shared: &Shared,
        target: &Target,
        host: Option<&str>,
        guard: ConnGuard,
    ) -> Result<Idle, UpstreamError> {
        let stream = Arc::new(connect_tcp(&shared.options, target.addr).await?);
        let io = secure(
            SharedStream(stream.clone()),
            &shared.options,
            target,
            host,
            crate::tls::Carried::Http1,
        )
        .await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| UpstreamError::ConnectFailure(std::io::Error::other(e)))?;
        // With upgrades, a 101 hands the socket to the upgraded stream (WebSocket) when the
        // connection future completes.
        let conn = conn.with_upgrades();
        let state = Arc::new(ConnState::new());
        let o = &shared.options;
        let (list, sock, st) = (Arc::downgrade(&self.idle), stream.clone(), state.clone());
        let on_exit = move |expired: bool| {
            // Only an idle connection we close ourselves is shut down: one the peer closed is
            // gone already, and an upgraded one now belongs to the upgraded stream.
            if expired {
                let _ = socket2::SockRef::from(&*sock).shutdown(std::net::Shutdown::Both);
            }
            if let Some(list) = list.upgrade() {
                list.lock().retain(|c| !Arc::ptr_eq(&c.state, &st));
            }
        };
        spawn_driver(
            conn,
            guard,
            state.clone(),
            (o.idle_timeout, o.max_connection_duration),
            on_exit,
        );
        Ok(Idle {
            sender,
            state,
            stream,
        })
    }

    async fn dispatch(&self, shared: &Shared, idle: Idle, req: Request<Body>) -> Sent {
        let Idle {
            mut sender,
            state,
            stream,
        } = idle;
        state.active.store(1, Ordering::Release);
        state.requests.fetch_add(1, Ordering::AcqRel);
        match sender.try_send_request(req).await {
            Ok(resp) => {
                let back = Back {
                    conn: Idle {
                        sender,
                        state,
                        stream,
                    },
                    pool: self.idle.clone(),
                    counters: shared.counters.clone(),
                    max_requests: shared.options.max_requests_per_connection,
                };
                Sent::Done(Ok(resp.map(|inner| {
                    crate::body::boxed(ReturnOnEnd {
                        inner,
                        back: Some(back),
                    })
                })))
            }
            Err(mut e) => {
                state.active.store(0, Ordering::Release);
                match e.take_message() {
                    Some(req) => Sent::Unsent(req),
                    None => Sent::Done(Err(map_error(e.error()))),
                }
            }
        }
    }
}

/// What puts a connection back into its pool when its response body has ended.
struct Back {
    conn: Idle,
    pool: Arc<Mutex<Vec<Idle>>>,
    counters: Arc<super::Counters>,
    max_requests: Option<u32>,
}

impl Back {
    fn give_back(self) {
        let state = &self.conn.state;
        state.set_idle();
        state.active.store(0, Ordering::Release);
        let spent = self
            .max_requests
            .is_some_and(|m| state.requests.load(Ordering::Acquire) >= m);
        if !spent {
            self.pool.lock().push(self.conn);
            self.counters.freed.notify_waiters();
        }
    }
}

/// The response body: when it ends cleanly the connection goes back to the pool at once (no
/// task per request); a body dropped early or failed takes its connection with it.
struct ReturnOnEnd {
    inner: Incoming,
    back: Option<Back>,
}

impl http_body::Body for ReturnOnEnd {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, hyper::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            std::task::Poll::Ready(None) => {
                if let Some(back) = self.back.take() {
                    back.give_back();
                }
            }
            std::task::Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ReturnOnEnd {
    fn drop(&mut self) {
        if let Some(back) = self.back.take()
            && http_body::Body::is_end_stream(&self.inner)
        {
            back.give_back();
        }
    }
}

/// A copy of a bodyless idempotent request (GET, HEAD, OPTIONS, TRACE), to send again when a
/// reused connection turns out to have been closed by the upstream as the request went out
/// (the race every keep-alive client has; the request had no effect upstream or is safe to
/// repeat).
pub(super) fn replayable(req: &Request<Body>) -> Option<Request<Body>> {
    use http::Method;
    use http_body::Body as _;
    let idempotent = matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    if !idempotent || !req.body().is_end_stream() {
        return None;
    }
    let mut copy = Request::new(crate::body::empty());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

/// HTTP/1.1 on the wire: origin-form URI and a `Host` header from the authority.
pub(super) fn prepare(req: &mut Request<Body>) {
    *req.version_mut() = Version::HTTP_11;
    if req.uri().authority().is_none() && req.uri().scheme().is_none() {
        return;
    }
    if req.method() == http::Method::CONNECT {
        return;
    }
    if !req.headers().contains_key(http::header::HOST)
        && let Some(auth) = req.uri().authority()
        && let Ok(v) = HeaderValue::from_str(auth.as_str())
    {
        req.headers_mut().insert(http::header::HOST, v);
    }
    let pq = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    *req.uri_mut() = Uri::from(pq);
}
