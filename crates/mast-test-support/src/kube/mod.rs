//! [`KubeEmulator`]: an in-process Kubernetes API server for tests, speaking enough of the
//! real HTTP API for kube-rs (and anything else that talks to an API server over plain
//! HTTP): no cluster, no etcd, no containers.
//!
//! What it serves, on `http://127.0.0.1:<free port>`:
//! - discovery: `/api`, `/apis`, `/api/v1`, `/apis/<group>`, `/apis/<group>/<version>`,
//!   `/version`, `/healthz`; the built-in types ([`types::builtin`]: namespaces, nodes,
//!   services, endpoints, pods, configmaps, secrets, serviceaccounts, events, deployments,
//!   replicasets, daemonsets, statefulsets, jobs, cronjobs, endpointslices, CRDs,
//!   webhook configurations, RBAC, poddisruptionbudgets, leases, HPAs) and, unless started
//!   with [`KubeEmulator::start_bare`], Istio's CRD types ([`types::istio`]:
//!   networking.istio.io v1/v1beta1/v1alpha3, security.istio.io v1/v1beta1,
//!   telemetry.istio.io) and, with [`EmulatorOptions::gateway_api_types`]
//!   ([`KubeEmulator::start_with_gateway_api`]), the Gateway API's ([`types::gateway_api`]:
//!   gateway.networking.k8s.io GatewayClass, Gateway, HTTPRoute, GRPCRoute, TCPRoute,
//!   TLSRoute with status subresources, ReferenceGrant). Creating a
//!   `CustomResourceDefinition` serves its type at once
//!   and marks it `Established`.
//! - list (with `metadata.resourceVersion`, label and field selectors; `limit` is
//!   ignored: one page), get, create (`generateName`, `dryRun=All`), replace (a stale
//!   `metadata.resourceVersion` gets 409 Conflict), delete, delete collection, merge patch
//!   (strategic merge patches are treated as merge patches), server-side apply (`PATCH`
//!   with `application/apply-patch+yaml`; `fieldManager` required; the applied object is
//!   merged into the stored one, arrays replaced; fields are not owned, so `force` changes
//!   nothing and fields dropped from an apply are kept), and the `status` subresource (on a
//!   type with one, writes to the main resource keep the stored status and a create drops
//!   it; writes to `…/status` change only the status);
//! - watch (`?watch=1`): JSON lines `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK","object":…}`
//!   from the given `resourceVersion` (replayed from history), or, without one (or `0`),
//!   an `ADDED` per current object first; bookmarks every second with
//!   `allowWatchBookmarks=true` (see [`EmulatorOptions::bookmark_every`]);
//!   `sendInitialEvents=true` ends the initial events with a bookmark annotated
//!   `k8s.io/initial-events-end`; `timeoutSeconds` ends the watch. A resourceVersion older
//!   than the history gets an `ERROR` event with a 410 `Expired` Status, as the API server
//!   sends.
//!
//! resourceVersions increase globally (one counter for every object, like etcd's
//! revision). Objects are stored once per type and read back in whichever served version
//! the request names. Not emulated: authentication (any request is allowed), admission
//! webhooks, finalizers, garbage collection and namespace deletion cascades, controllers
//! (a Deployment gets no Pods and no status unless the test writes them), field ownership.
//!
//! Test hooks (synchronous; call them from any thread): [`KubeEmulator::put`] creates or
//! replaces an object as given, status included (a Pod's `status.podIP`, a Deployment's
//! `readyReplicas`); [`KubeEmulator::delete`], [`KubeEmulator::get`],
//! [`KubeEmulator::list`]; [`KubeEmulator::drop_watches`] cuts every open watch (the
//! client sees its connection reset); [`KubeEmulator::expire_history`] compacts the
//! history so a watch from an older resourceVersion gets 410 Gone;
//! [`KubeEmulator::hold_watches`] makes new watches wait, so a test can change objects
//! while no watch is open; [`KubeEmulator::requests`] lists the requests answered
//! (method, path, query, status).
//!
//! Use with kube-rs (kube is not a dependency of this crate; the test's crate has it):
//!
//! ```ignore
//! use mast_test_support::kube::KubeEmulator;
//! use serde_json::json;
//!
//! let emulator = KubeEmulator::start()?;
//! // A client: plain HTTP, no credentials.
//! let client = kube::Client::try_from(kube::Config::new(emulator.url().parse()?))?;
//! // Or for a process (mastd --kubeconfig, mastctl --kubeconfig, KUBECONFIG=…):
//! emulator.write_kubeconfig(&dir.join("kubeconfig"))?;
//! // Objects the "cluster" has, as a controller or the kubelet would write them:
//! emulator.put(json!({"apiVersion": "v1", "kind": "Pod",
//!     "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}},
//!     "spec": {"containers": [{"name": "web", "image": "nginx"}]},
//!     "status": {"phase": "Running", "podIP": "10.0.0.1"}}))?;
//! // Make the next watch of every client reconnect and get 410 Gone (so it re-lists):
//! emulator.hold_watches(true);
//! emulator.drop_watches();
//! emulator.delete("v1", "Pod", "default", "web-1")?;
//! emulator.expire_history();
//! emulator.hold_watches(false);
//! ```
//!
//! The server runs on the shared [`crate::background`] runtime; dropping the emulator
//! stops it and ends its watches.

mod server;
pub mod store;
pub mod types;
pub mod util;
mod watch;

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::background;
pub use store::{ApiError, Store};
pub use types::ApiType;

/// One request the emulator answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, such as `/apis/networking.istio.io/v1/virtualservices`.
    pub path: String,
    /// The raw query string (empty when none).
    pub query: String,
    /// The response status (200 for a watch that started, even one that then sent 410).
    pub status: u16,
}

impl Request {
    /// Whether this was a watch.
    pub fn is_watch(&self) -> bool {
        self.method == "GET"
            && (self.query.contains("watch=1") || self.query.contains("watch=true"))
    }

    /// Whether this was a list (a collection GET that is not a watch).
    pub fn is_list(&self, plural: &str) -> bool {
        self.method == "GET" && !self.is_watch() && self.path.ends_with(&format!("/{plural}"))
    }
}

/// How the emulator starts.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// Serve Istio's CRD types from the start (as after `mastctl install`); without it
    /// they are served once their CRDs are created.
    pub istio_types: bool,
    /// Serve the Gateway API types from the start (as after installing its CRDs); off by
    /// default, as on a cluster where they are not installed.
    pub gateway_api_types: bool,
    /// How often a watch that allows bookmarks gets one.
    pub bookmark_every: Duration,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        Self {
            istio_types: true,
            gateway_api_types: false,
            bookmark_every: Duration::from_secs(1),
        }
    }
}

/// The Kubernetes API emulator. See the module documentation.
#[derive(Debug)]
pub struct KubeEmulator {
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    task: JoinHandle<()>,
}

impl KubeEmulator {
    /// Starts an emulator serving the built-in types and Istio's.
    pub fn start() -> io::Result<Self> {
        Self::start_with(EmulatorOptions::default())
    }

    /// Starts an emulator serving only the built-in types (Istio's appear when their CRDs
    /// are created, as on a fresh cluster).
    pub fn start_bare() -> io::Result<Self> {
        Self::start_with(EmulatorOptions {
            istio_types: false,
            ..EmulatorOptions::default()
        })
    }

    /// Starts an emulator serving the built-in types, Istio's and the Gateway API's.
    pub fn start_with_gateway_api() -> io::Result<Self> {
        Self::start_with(EmulatorOptions {
            gateway_api_types: true,
            ..EmulatorOptions::default()
        })
    }

    /// Starts an emulator with `options` on a free port of 127.0.0.1.
    pub fn start_with(options: EmulatorOptions) -> io::Result<Self> {
        let mut types = types::builtin();
        if options.istio_types {
            types.extend(types::istio());
        }
        if options.gateway_api_types {
            types.extend(types::gateway_api());
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(server::Shared {
            store: Store::new(types),
            drops: tokio::sync::watch::Sender::new(0),
            held: tokio::sync::watch::Sender::new(false),
            log: Mutex::new(Vec::new()),
            bookmark_every: options.bookmark_every,
        });
        let task = background::handle()?.spawn(serve(listener, shared.clone()));
        Ok(Self { addr, shared, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig (YAML) whose current context is this emulator, namespace `default`.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: mast-emulator\n  cluster:\n    server: {}\n\
             users:\n- name: mast-emulator\n  user: {{}}\ncontexts:\n- name: mast-emulator\n  context:\n    \
             cluster: mast-emulator\n    user: mast-emulator\n    namespace: default\n\
             current-context: mast-emulator\n",
            self.url()
        )
    }

    /// Writes [`KubeEmulator::kubeconfig`] to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// Creates or replaces an object exactly as given (status included), as a controller
    /// or the kubelet would. Its type comes from `apiVersion` and `kind`; a namespaced
    /// object without `metadata.namespace` goes to `default`. Returns it as stored.
    pub fn put(&self, object: Value) -> Result<Value, ApiError> {
        self.shared.store.put(object)
    }

    /// Deletes an object (`namespace` is ignored for cluster-scoped kinds); returns its
    /// last state.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let (t, version) = self.type_of(api_version, kind)?;
        let ns = if t.namespaced { namespace } else { "" };
        self.shared.store.delete(&t, ns, name, &version)
    }

    /// One object, in the given version.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let (t, version) = self.type_of(api_version, kind)?;
        let ns = if t.namespaced { namespace } else { "" };
        self.shared.store.get(&t, ns, name, &version)
    }

    /// Every object of a kind (all namespaces), in the given version.
    pub fn list(&self, api_version: &str, kind: &str) -> Result<Vec<Value>, ApiError> {
        let (t, version) = self.type_of(api_version, kind)?;
        let none = (
            &util::LabelSelector::default(),
            &util::FieldSelector::default(),
        );
        Ok(self.shared.store.list(&t, None, &version, none).0)
    }

    /// Serves another type (or replaces the one with the same group and plural).
    pub fn register(&self, t: ApiType) {
        self.shared.store.register(t);
    }

    /// The latest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store.resource_version()
    }

    /// Cuts every open watch: the clients see the connection reset mid-stream.
    pub fn drop_watches(&self) {
        self.shared.drops.send_modify(|g| *g += 1);
    }

    /// Compacts the history: a watch from a resourceVersion older than the latest gets an
    /// `ERROR` event with a 410 `Expired` Status.
    pub fn expire_history(&self) {
        self.shared.store.expire_history();
    }

    /// While `true`, new watch requests wait (at most 30 s) before starting.
    pub fn hold_watches(&self, hold: bool) {
        self.shared.held.send_replace(hold);
    }

    /// The requests answered so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.log.lock().clone()
    }

    fn type_of(&self, api_version: &str, kind: &str) -> Result<(ApiType, String), ApiError> {
        let t = self
            .shared
            .store
            .type_of(api_version, kind)
            .ok_or_else(|| {
                ApiError::new(
                    404,
                    "NotFound",
                    format!("no type {kind} is served in {api_version:?}"),
                )
            })?;
        let version = api_version.rsplit('/').next().unwrap_or("v1").to_owned();
        Ok((t, version))
    }
}

impl Drop for KubeEmulator {
    fn drop(&mut self) {
        self.drop_watches();
        self.task.abort();
    }
}

async fn serve(listener: std::net::TcpListener, shared: Arc<server::Shared>) {
    background::accept_each(listener, |stream| {
        let shared = shared.clone();
        async move {
            let service = service_fn(move |req| server::handle(shared.clone(), req));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await;
}
