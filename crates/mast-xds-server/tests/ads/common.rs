//! Test helpers: a generator whose output the test controls and a server on a free loopback
//! port. Resource builders and the clients are re-exported from their modules.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mast_model::{Change, MeshSnapshot, ProxyNode, SnapshotOptions};
use mast_xds::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, NamedResource, ROUTE_TYPE};
use mast_xds_server::{Debounce, Generator, ProxyStatus, XdsServer};
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};

pub use crate::clients::*;
pub use crate::resources::*;

/// How long a test waits for anything before failing.
pub const WAIT: Duration = Duration::from_secs(10);

/// The four types in push order.
pub const TYPES: [&str; 4] = [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE];

/// What a test generator produces for (snapshot version, type URL).
pub type Content = dyn Fn(u64, &str) -> Vec<NamedResource> + Send + Sync;

/// A generator whose output and change classification the test decides.
pub struct TestGen {
    content: Box<Content>,
    /// `None`: classify with `mast_model::diff`.
    change: Mutex<Option<Change>>,
}

impl TestGen {
    /// Generates with `content`; every snapshot change is classified `Full` until told otherwise.
    pub fn new(
        content: impl Fn(u64, &str) -> Vec<NamedResource> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            content: Box::new(content),
            change: Mutex::new(Some(Change::Full)),
        })
    }

    /// Generates with `content`, classifying changes with the real `mast_model::diff`.
    pub fn with_model_diff(
        content: impl Fn(u64, &str) -> Vec<NamedResource> + Send + Sync + 'static,
    ) -> Arc<Self> {
        let generator = Self::new(content);
        *generator.change.lock() = None;
        generator
    }

    /// How the next snapshot changes are classified.
    pub fn set_change(&self, change: Change) {
        *self.change.lock() = Some(change);
    }
}

impl Generator for TestGen {
    fn generate(
        &self,
        snapshot: &MeshSnapshot,
        _proxy: &ProxyNode,
        type_url: &str,
    ) -> Vec<NamedResource> {
        (self.content)(snapshot.version, type_url)
    }

    fn change(&self, old: &MeshSnapshot, new: &MeshSnapshot) -> Change {
        let fixed = self.change.lock().clone();
        fixed.unwrap_or_else(|| mast_model::diff(old, new))
    }
}

/// A snapshot at `version`.
pub fn snap(version: u64) -> Arc<MeshSnapshot> {
    Arc::new(MeshSnapshot::build(
        &[],
        SnapshotOptions::default(),
        version,
    ))
}

/// A debounce short enough not to slow tests.
pub fn fast() -> Debounce {
    Debounce {
        quiet: Duration::from_millis(5),
        max: Duration::from_millis(20),
    }
}

/// A running server on a free loopback port, starting at snapshot version 1.
pub struct Harness {
    pub server: XdsServer,
    pub snapshots: watch::Sender<Arc<MeshSnapshot>>,
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Harness {
    /// Starts a server with `generator` (None: the production generator).
    pub async fn start(generator: Option<Arc<dyn Generator>>, debounce: Debounce) -> Self {
        Self::start_on("127.0.0.1:0", generator, debounce).await
    }

    /// Starts a server listening on `bind` (retried briefly: a server that just stopped may
    /// still hold the port).
    pub async fn start_on(
        bind: &str,
        generator: Option<Arc<dyn Generator>>,
        debounce: Debounce,
    ) -> Self {
        let (snapshots, rx) = watch::channel(snap(1));
        let mut server = XdsServer::new(rx).with_debounce(debounce);
        if let Some(g) = generator {
            server = server.with_generator(g);
        }
        let mut attempts = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(bind).await {
                Ok(l) => break l,
                Err(e) if attempts >= 100 => panic!("cannot bind {bind}: {e}"),
                Err(_) => attempts += 1,
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.clone().serve_with_listener(listener, async move {
            let _ = stopped.await;
        }));
        Self {
            server,
            snapshots,
            addr,
            _stop: stop,
        }
    }

    /// Publishes the snapshot at `version`.
    pub fn publish(&self, version: u64) {
        self.snapshots.send_replace(snap(version));
    }

    /// Publishes a snapshot built from Istio/Kubernetes YAML, at `version`.
    pub fn publish_yaml(&self, yaml: &str, version: u64) {
        let out = mast_config::load_str(yaml, "test.yaml", &Default::default());
        assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
        let snapshot = MeshSnapshot::build(&out.resources, SnapshotOptions::default(), version);
        self.snapshots.send_replace(Arc::new(snapshot));
    }

    /// Waits (bounded) until `check` holds for the status, returning it.
    pub async fn wait_status(
        &self,
        what: &str,
        check: impl Fn(&[ProxyStatus]) -> bool,
    ) -> Vec<ProxyStatus> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let status = self.server.status();
            if check(&status) {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; status: {status:#?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn metrics(&self) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        self.server.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }
}

/// A node id Mast accepts.
pub fn node_id(workload: &str) -> String {
    format!("sidecar~127.0.0.1~{workload}.default~default.svc.cluster.local")
}
