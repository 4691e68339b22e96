//! The ADS server: Envoy's Aggregated Discovery Service over gRPC (tonic + envoy-types),
//! state of the world (`StreamAggregatedResources`) and incremental
//! (`DeltaAggregatedResources`), serving what the [`Generator`] (by default
//! `mast_xds::generate`) produces from the current [`MeshSnapshot`] for each connected proxy.
//!
//! It owns the protocol side of the control plane: streams, nonces and versions, ACK/NACK,
//! debounced and ordered pushes (CDS → EDS → LDS → RDS), per-proxy sync status for
//! `proxy-status` and `/debug/syncz`, the last generated config for `/debug/config_dump`, and
//! the `pilot_*` metrics. Protocol behaviour is written down in `docs/ads.md`.
//!
//! ```no_run
//! # async fn run(snapshots: tokio::sync::watch::Receiver<std::sync::Arc<mast_model::MeshSnapshot>>) {
//! let server = mast_xds_server::XdsServer::new(snapshots);
//! let status = server.clone(); // status(), config_dump() from the debug endpoints
//! let addr = "127.0.0.1:15010".parse().unwrap();
//! server.serve(addr, async { let _ = tokio::signal::ctrl_c().await; }).await.unwrap();
//! # }
//! ```

mod delta;
mod generator;
mod grpc;
mod intern;
mod metrics;
mod node;
mod push;
mod service;
mod share;
mod sotw;
mod status;
mod version;
mod view;
mod wire;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mast_model::MeshSnapshot;
use mast_xds::NamedResource;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use generator::{Generator, MastGenerator};
pub use grpc::AdsServer;
pub use node::struct_to_json;
pub use push::Debounce;
pub use status::{
    NackRecord, ProxyStatus, ProxySummary, SyncStatus, TypeStatus, XdsProtocol, short_type_name,
};
pub use version::resource_version;

use service::Core;

/// Largest request accepted from a proxy (delta `initial_resource_versions` can be large).
const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum XdsServerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("xDS gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The ADS server. Cheap to clone; clones share streams, status and metrics.
#[derive(Clone)]
pub struct XdsServer {
    snapshots: watch::Receiver<Arc<MeshSnapshot>>,
    generator: Arc<dyn Generator>,
    debounce: Debounce,
    core: Arc<Core>,
}

impl std::fmt::Debug for XdsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdsServer")
            .field("debounce", &self.debounce)
            .finish_non_exhaustive()
    }
}

impl XdsServer {
    /// A server that serves the snapshots published on `snapshots`, with
    /// [`MastGenerator`] and the default [`Debounce`] (100 ms quiet, 1 s max).
    pub fn new(mut snapshots: watch::Receiver<Arc<MeshSnapshot>>) -> Self {
        let initial = snapshots.borrow_and_update().clone();
        Self {
            snapshots,
            generator: Arc::new(MastGenerator),
            debounce: Debounce::default(),
            core: Arc::new(Core::new(initial)),
        }
    }

    /// Serves what `generator` produces instead of `mast_xds::generate` (set before
    /// [`Self::into_service`]).
    #[must_use]
    pub fn with_generator(mut self, generator: Arc<dyn Generator>) -> Self {
        self.generator = generator;
        self
    }

    /// Changes the debounce (set before [`Self::into_service`]).
    #[must_use]
    pub fn with_debounce(mut self, debounce: Debounce) -> Self {
        self.debounce = debounce;
        self
    }

    /// The tonic service to mount. Starts the push task (on the current Tokio runtime, or on
    /// the first stream when called outside one); the first call's generator and debounce
    /// are the ones used.
    pub fn into_service(&self) -> AdsServer {
        self.core.prepare_pusher(
            self.snapshots.clone(),
            self.generator.clone(),
            self.debounce,
        );
        self.core.ensure_pusher();
        AdsServer::new(
            service::AdsService::new(self.core.clone()),
            MAX_REQUEST_BYTES,
        )
    }

    /// Binds `addr` and serves until `shutdown` completes; then ends every stream with
    /// UNAVAILABLE (proxies reconnect elsewhere and keep their config meanwhile).
    pub async fn serve(
        self,
        addr: SocketAddr,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), XdsServerError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| XdsServerError::Bind { addr, source })?;
        self.serve_with_listener(listener, shutdown).await
    }

    /// Like [`Self::serve`] on an already bound listener (tests bind port 0).
    pub async fn serve_with_listener(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), XdsServerError> {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "xDS server listening");
        }
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let core = self.core.clone();
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .serve_with_incoming_shutdown(self.into_service(), incoming, async move {
                shutdown.await;
                core.close();
            })
            .await?;
        Ok(())
    }

    /// Ends every stream with UNAVAILABLE and stops the push task (for embedders that mount
    /// [`Self::into_service`] on their own server and shut it down gracefully).
    pub fn shutdown(&self) {
        self.core.close();
    }

    /// Every connected proxy stream with its per-type sync status, oldest first.
    pub fn status(&self) -> Vec<ProxyStatus> {
        self.core.registry.status()
    }

    /// The resources last generated per type URL for the newest stream of `proxy_id`.
    pub fn config_dump(&self, proxy_id: &str) -> Option<BTreeMap<String, Vec<NamedResource>>> {
        self.core.registry.dump(proxy_id)
    }

    /// Registers the server's metrics (`pilot_xds`, `pilot_xds_pushes`,
    /// `pilot_total_xds_rejects`, `pilot_proxy_convergence_time`).
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        self.core.metrics.register(registry);
    }
}
