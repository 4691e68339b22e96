//! An endpoint (host) of a cluster: its address and weight, its metadata and transport socket
//! (plaintext or TLS, chosen by the cluster's `transport_socket_matches`), its connection pool,
//! its active request count (least request) and its outlier state.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};

use arc_swap::ArcSwapOption;
use envoy_types::pb::envoy::config::core::v3::Metadata;
use http::{Request, Response};

use super::outlier::{HostOutlier, Outcome};
use super::state::Cluster;
use crate::body::Body;
use crate::tls::ClientTls;
use crate::upstream::{Pool, Shared, Target, UpstreamConnection, UpstreamError, connect_raw};

/// An endpoint's transport socket and metadata.
#[derive(Debug, Clone, Default)]
pub(crate) struct Transport {
    /// Which of the cluster's transports (0: `transport_socket`, `i + 1`: match `i`).
    pub index: usize,
    /// The TLS context; `None`: plaintext.
    pub tls: Option<Arc<ClientTls>>,
    /// The endpoint's metadata.
    pub metadata: Option<Arc<Metadata>>,
}

/// One upstream host.
#[derive(Debug)]
pub struct Endpoint {
    target: Target,
    transport: usize,
    metadata: ArcSwapOption<Metadata>,
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
        (addr, weight): (SocketAddr, u32),
        transport: Transport,
        shared: Arc<Shared>,
        pool: Arc<Pool>,
        cluster: Weak<Cluster>,
        detect: bool,
    ) -> Self {
        Self {
            target: Target {
                addr,
                tls: transport.tls,
            },
            transport: transport.index,
            metadata: ArcSwapOption::new(transport.metadata),
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
        self.target.addr
    }

    /// The endpoint's metadata (EDS / inline), if any.
    pub fn metadata(&self) -> Option<Arc<Metadata>> {
        self.metadata.load_full()
    }

    pub(crate) fn set_metadata(&self, metadata: Option<Arc<Metadata>>) {
        self.metadata.store(metadata);
    }

    /// Whether connections to this endpoint use TLS.
    pub fn is_tls(&self) -> bool {
        self.target.tls.is_some()
    }

    /// The index of the cluster transport the endpoint uses.
    pub(crate) fn transport_index(&self) -> usize {
        self.transport
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
        self.pool.send(&self.shared, &self.target, req).await
    }

    /// A new connection for the TCP proxy and `CONNECT` (TLS when the endpoint's transport
    /// socket is), counted toward `max_connections` while open.
    pub async fn connect(&self) -> Result<UpstreamConnection, UpstreamError> {
        connect_raw(&self.shared, &self.target).await
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
