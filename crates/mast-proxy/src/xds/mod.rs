//! The ADS client: one gRPC stream to mastd (delta by default, state of the world with
//! `--sotw`) subscribing to CDS, EDS, LDS and RDS (wildcard: mastd serves every type's whole
//! set to a wildcard subscription, in both protocols), in Envoy's order. Each response goes
//! to a [`Handler`]; an `Err` NACKs it (the handler keeps its last good configuration), `Ok`
//! ACKs it and the resources are kept in the [`cache`](XdsClient::cache) for `/config_dump`.
//! The client reconnects with jittered back-off and keeps what it has.

mod cache;
mod delta;
mod session;
mod sotw;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::Any;
use tokio::sync::watch;

pub use cache::{CacheSnapshot, CachedResource, Nack, TypeSnapshot, TypeStatus};
use session::Session;

/// CDS.
pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// EDS.
pub const ENDPOINT_TYPE: &str =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
/// LDS.
pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// RDS.
pub const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
/// The types subscribed to, in Envoy's order.
pub const TYPES: [&str; 4] = [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE];

/// The first back-off after a failed or ended stream.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// The longest back-off.
const BACKOFF_MAX: Duration = Duration::from_secs(8);

/// One resource of a response.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// The resource's name.
    pub name: String,
    /// Its version (delta: per resource; SotW: the response's version).
    pub version: String,
    /// The resource.
    pub value: Any,
}

/// One response, as the handler sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Update {
    /// Resources added or changed.
    pub resources: Vec<Resource>,
    /// Names removed.
    pub removed: Vec<String>,
    /// SotW CDS/LDS, and the first SotW response of any type on a stream: `resources` is the
    /// whole set (anything not listed is removed; those names are also in `removed`). Delta,
    /// and later SotW EDS/RDS responses: `false`.
    pub complete: bool,
}

/// What the proxy does with configuration.
pub trait Handler: Send + Sync + 'static {
    /// One response for `type_url`: resources added or changed, names removed (delta), or for
    /// SotW the complete set for CDS/LDS (`complete == true`: anything not listed is removed,
    /// and listed in `removed` too) and a partial set for EDS/RDS (docs/ads.md). Err(reason)
    /// NACKs the whole response and must leave the proxy's configuration unchanged.
    /// Called on the blocking thread pool, one call at a time, in the order responses arrive.
    fn apply(&self, type_url: &str, update: &Update) -> Result<(), String>;
}

/// The ADS client.
pub struct XdsClient {
    address: String,
    /// The mesh root an `https://` address is verified against (istiod's 15012).
    roots_pem: Option<String>,
    node: Node,
    delta: bool,
    handler: Arc<dyn Handler>,
    cache: cache::Cache,
    connected: AtomicBool,
    initial: watch::Sender<bool>,
}

impl std::fmt::Debug for XdsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdsClient")
            .field("address", &self.address)
            .field("node", &self.node.id)
            .field("delta", &self.delta)
            .finish_non_exhaustive()
    }
}

impl XdsClient {
    /// Verifies an `https://` control plane against `roots_pem` (the mesh root).
    #[must_use]
    pub fn with_root_cert(mut self, roots_pem: Option<String>) -> Self {
        self.roots_pem = roots_pem;
        self
    }

    /// A client for the ADS server at `address` (`host:port` or `http://host:port`).
    pub fn new(
        address: impl Into<String>,
        node: Node,
        delta: bool,
        handler: Arc<dyn Handler>,
    ) -> Self {
        let address = address.into();
        let address = if address.contains("://") {
            address
        } else {
            format!("http://{address}")
        };
        Self {
            address,
            roots_pem: None,
            node,
            delta,
            handler,
            cache: cache::Cache::default(),
            connected: AtomicBool::new(false),
            initial: watch::Sender::new(false),
        }
    }

    /// The node sent to the control plane.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Whether the client speaks delta ADS.
    pub fn is_delta(&self) -> bool {
        self.delta
    }

    /// Runs until the shutdown signal: connects, reconnects with jittered back-off
    /// (0.5 s → 8 s) keeping the last good config (delta: sends `initial_resource_versions`
    /// of what it has), ACKs and NACKs (`error_detail` = the handler's message; a NACKed
    /// version is never ACKed).
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = BACKOFF_MIN;
        while !*shutdown.borrow() {
            let session = Session::new(&self);
            let outcome = tokio::select! {
                r = self.stream_once(&session) => r,
                _ = shutdown.wait_for(|s| *s) => break,
            };
            self.connected.store(false, Ordering::Relaxed);
            match outcome {
                Ok(()) => tracing::warn!(address = %self.address, "xDS stream ended; reconnecting"),
                Err(e) => {
                    tracing::warn!(address = %self.address, error = %e, "xDS stream failed; reconnecting")
                }
            }
            if session.received_any() {
                backoff = BACKOFF_MIN;
            }
            let wait = jitter(backoff);
            backoff = (backoff * 2).min(BACKOFF_MAX);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
        self.connected.store(false, Ordering::Relaxed);
    }

    async fn stream_once(&self, session: &Session<'_>) -> Result<(), tonic::Status> {
        if self.delta {
            delta::run(session).await
        } else {
            sotw::run(session).await
        }
    }

    /// The accepted resources per type (name → version, value, last update) and per-type
    /// status (last accepted version, last ACKed nonce, last NACK), in Envoy's type order.
    pub fn cache(&self) -> CacheSnapshot {
        self.cache.snapshot(self.connected.load(Ordering::Relaxed))
    }

    /// The accepted resources of one type (cheaper than [`Self::cache`]).
    pub fn resources(&self, type_url: &str) -> Vec<(String, CachedResource)> {
        self.cache.resources(type_url)
    }

    /// Whether a stream to the control plane is open.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Whether the first response of each of CDS, EDS, LDS and RDS has been processed
    /// (applied, or NACKed — as in Envoy, a rejected first response also ends the initial
    /// fetch): the proxy's "initial fetch" is done. All four are subscribed to with a
    /// wildcard and mastd always answers a type's first request, so all four arrive.
    pub fn initial_fetch_done(&self) -> bool {
        *self.initial.borrow()
    }

    /// A receiver that turns `true` when [`Self::initial_fetch_done`] does.
    pub fn initial_fetch(&self) -> watch::Receiver<bool> {
        self.initial.subscribe()
    }
}

#[cfg(test)]
impl XdsClient {
    /// Records `resources` as accepted, as a response would (for tests of the readers).
    pub(crate) fn accept_for_test(&self, type_url: &str, resources: Vec<Resource>, version: &str) {
        self.cache.accept(type_url, resources, &[], version, "test");
    }
}

/// `base` ± 25 %.
fn jitter(base: Duration) -> Duration {
    base.mul_f64(0.75 + fastrand::f64() * 0.5)
}
