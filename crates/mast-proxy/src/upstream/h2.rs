//! HTTP/2 connections of one endpoint: requests are multiplexed on the first connection with
//! room (`max_concurrent_streams`, `max_requests_per_connection`, `max_connection_duration`);
//! another connection is opened only when none has room.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;

use super::pool::{ConnState, map_error, spawn_driver};
use super::{ConnGuard, PendingGuard, Shared, UpstreamError, connect_tcp};
use crate::body::Body;

#[derive(Clone)]
struct Conn {
    sender: http2::SendRequest<Body>,
    state: Arc<ConnState>,
}

/// HTTP/2 connections of one endpoint.
#[derive(Default)]
pub(crate) struct H2Pool {
    conns: Mutex<Vec<Conn>>,
    connecting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for H2Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Pool")
            .field("connections", &self.conns.lock().len())
            .finish()
    }
}

/// Counts a stream as active until dropped.
struct Active(Arc<ConnState>);

impl Drop for Active {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.set_idle();
        }
    }
}

impl H2Pool {
    /// Sends one request as a new stream.
    pub async fn send(
        &self,
        shared: &Shared,
        addr: SocketAddr,
        mut req: Request<Body>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        *req.version_mut() = Version::HTTP_2;
        let mut pending: Option<PendingGuard> = None;
        let conn = loop {
            if let Some(c) = self.pick(shared) {
                break c;
            }
            let _connecting = self.connecting.lock().await;
            if let Some(c) = self.pick(shared) {
                break c;
            }
            let freed = shared.counters.freed.notified();
            let mut freed = std::pin::pin!(freed);
            freed.as_mut().enable();
            if let Some(guard) = ConnGuard::try_new(shared) {
                drop(pending);
                let c = self.open(shared, addr, guard).await?;
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
        let _active = Active(state);
        sender
            .send_request(req)
            .await
            .map_err(|e| map_error(&e))
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
        addr: SocketAddr,
        guard: ConnGuard,
    ) -> Result<Conn, UpstreamError> {
        let stream = connect_tcp(&shared.options, addr).await?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| UpstreamError::ConnectFailure(std::io::Error::other(e)))?;
        let state = Arc::new(ConnState::new());
        let o = &shared.options;
        spawn_driver(
            conn,
            guard,
            state.clone(),
            o.idle_timeout,
            o.max_connection_duration,
        );
        Ok(Conn { sender, state })
    }
}
