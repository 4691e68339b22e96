//! An endpoint (host) of a cluster: its address and weight, its connection pool, its active
//! request count (least request) and its outlier state.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};

use http::{Request, Response};

use super::outlier::{HostOutlier, Outcome};
use super::state::Cluster;
use crate::body::Body;
use crate::upstream::{Pool, Shared, UpstreamConnection, UpstreamError, connect_raw};

/// One upstream host.
#[derive(Debug)]
pub struct Endpoint {
    addr: SocketAddr,
    weight: AtomicU32,
    pub(super) active: AtomicU32,
    shared: Arc<Shared>,
    pool: Arc<Pool>,
    pub(crate) outlier: HostOutlier,
    cluster: Weak<Cluster>,
    /// Outlier detection is configured (skip the work in `report` otherwise).
    detect: bool,
}

/// Counts an active request on the endpoint until dropped.
struct Active<'a>(&'a AtomicU32);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Endpoint {
    pub(crate) fn new(
        addr: SocketAddr,
        weight: u32,
        shared: Arc<Shared>,
        pool: Arc<Pool>,
        cluster: Weak<Cluster>,
        detect: bool,
    ) -> Self {
        Self {
            addr,
            weight: AtomicU32::new(weight.max(1)),
            active: AtomicU32::new(0),
            shared,
            pool,
            outlier: HostOutlier::default(),
            cluster,
            detect,
        }
    }

    /// The endpoint's address.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// The load-balancing weight (at least 1).
    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    pub(crate) fn set_weight(&self, w: u32) {
        self.weight.store(w.max(1), Ordering::Relaxed);
    }

    /// Requests in flight on this endpoint (until their response headers).
    pub fn active_requests(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }

    pub(crate) fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// Sends one request on a pooled connection (HTTP/1.1 keep-alive or multiplexed HTTP/2,
    /// per the cluster's protocol options), honouring the connect timeout, `max_connections`
    /// and `max_pending_requests` (→ [`UpstreamError::Overflow`]) and the connection limits.
    /// HTTP/1.1 requests go out in origin-form. A request that a reused keep-alive connection
    /// could not start (closed by the upstream) is re-sent once on a new connection.
    pub async fn send(&self, req: Request<Body>) -> Result<Response<Body>, UpstreamError> {
        self.active.fetch_add(1, Ordering::AcqRel);
        let _active = Active(&self.active);
        self.pool.send(&self.shared, self.addr, req).await
    }

    /// A new TCP connection for the TCP proxy and `CONNECT`, counted toward
    /// `max_connections` while open.
    pub async fn connect(&self) -> Result<UpstreamConnection, UpstreamError> {
        connect_raw(&self.shared, self.addr).await
    }

    /// Outlier detection input: a response status, or a local-origin failure.
    pub fn report(&self, outcome: Outcome) {
        if !self.detect {
            return;
        }
        let Some(cluster) = self.cluster.upgrade() else {
            return;
        };
        let Some(cfg) = cluster.outlier_config() else {
            return;
        };
        if self.outlier.record(cfg, outcome).is_some() && !self.outlier.is_ejected() {
            cluster.eject(self);
        }
    }
}
