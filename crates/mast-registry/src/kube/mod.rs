//! The Kubernetes source: watches Services, EndpointSlices, Pods, Namespaces and Istio's
//! CRD kinds (see [`kinds::WATCHED`]) through kube-rs and feeds them into a
//! [`ConfigStore`] as pseudo-files (see [`convert`]), so that they are validated and
//! reported exactly like files: an invalid object is reported with its kind, namespace,
//! name and field and left out, and everything else keeps being served.
//!
//! How it behaves:
//! - One [`kube::runtime::watcher()`] per kind; it lists, then watches from the list's
//!   resourceVersion, resumes a dropped watch from the last resourceVersion it saw, and
//!   re-lists after `410 Gone`, backing off on errors. A (re-)list is applied as the
//!   difference with the last good state, so a watch restart never flaps to empty.
//! - Istio's kinds are read at the newest version the cluster serves (v1, else v1beta1,
//!   else v1alpha3). A kind whose CRD is not installed is looked for again every
//!   [`KubeOptions::rediscover`] and watched once it appears.
//! - Changes from all kinds are applied to the store in batches: whatever arrived while
//!   the previous batch was applied goes in the next one.
//! - [`KubeSourceHandle::wait_synced`] tells when every served kind has been listed once.
//!
//! Dropping the [`KubeSourceHandle`] stops every watch. [`status`] writes analyzer results
//! back to the Istio resources, from one elected writer.

pub mod convert;
pub mod kinds;
pub mod status;

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt as _;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use mast_config::LoadOptions;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::store::{Change, ConfigStore};
use convert::KindState;
use kinds::{WATCHED, WatchedKind};

/// Why the Kubernetes source could not start.
#[derive(Debug, thiserror::Error)]
pub enum KubeSourceError {
    /// The API server did not answer.
    #[error("cannot reach the Kubernetes API server: {0}")]
    Unreachable(#[source] kube::Error),
}

/// How the Kubernetes source runs.
#[derive(Debug, Clone)]
pub struct KubeOptions {
    /// How objects are loaded (the default namespace, for objects without one).
    pub load: LoadOptions,
    /// The source's rank among the sources feeding the store (see
    /// [`ConfigStore::update_source`]).
    pub source: usize,
    /// How often to look again for Istio kinds whose CRDs are not installed.
    pub rediscover: Duration,
}

impl Default for KubeOptions {
    fn default() -> Self {
        Self {
            load: LoadOptions::default(),
            source: 0,
            rediscover: Duration::from_secs(10),
        }
    }
}

/// The Kubernetes source. See the module documentation.
#[derive(Debug)]
pub struct KubeSource;

impl KubeSource {
    /// Checks that the API server answers, then starts watching every kind (on the
    /// current Tokio runtime) until the returned handle is dropped.
    pub async fn start(
        client: Client,
        store: ConfigStore,
        opts: KubeOptions,
    ) -> Result<KubeSourceHandle, KubeSourceError> {
        let version = client
            .apiserver_version()
            .await
            .map_err(KubeSourceError::Unreachable)?;
        tracing::info!(version = %version.git_version, "watching the Kubernetes API server");
        let (tx, rx) = mpsc::unbounded_channel();
        let (synced_tx, synced) = watch::channel(BTreeSet::new());
        let mut tasks = vec![tokio::spawn(apply_batches(
            rx,
            store,
            opts.source,
            synced_tx,
        ))];
        for (index, kind) in WATCHED.iter().enumerate() {
            let task = KindTask {
                client: client.clone(),
                kind: *kind,
                index,
                opts: opts.clone(),
                tx: tx.clone(),
            };
            tasks.push(tokio::spawn(task.run()));
        }
        Ok(KubeSourceHandle { tasks, synced })
    }
}

/// A running Kubernetes source. Dropping it stops every watch.
#[derive(Debug)]
pub struct KubeSourceHandle {
    tasks: Vec<JoinHandle<()>>,
    synced: watch::Receiver<BTreeSet<usize>>,
}

impl KubeSourceHandle {
    /// Whether every kind has been listed once (a kind whose CRD is not installed counts
    /// as listed, with nothing in it).
    pub fn is_synced(&self) -> bool {
        self.synced.borrow().len() == WATCHED.len()
    }

    /// Waits until [`KubeSourceHandle::is_synced`], at most `timeout`; returns whether it
    /// is.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let mut rx = self.synced.clone();
        let all = |s: &BTreeSet<usize>| s.len() == WATCHED.len();
        let synced = async move { rx.wait_for(all).await.is_ok() };
        tokio::time::timeout(timeout, synced).await.unwrap_or(false)
    }

    /// The kinds not listed yet.
    pub fn pending(&self) -> Vec<&'static str> {
        let synced = self.synced.borrow();
        WATCHED
            .iter()
            .enumerate()
            .filter(|(i, _)| !synced.contains(i))
            .map(|(_, k)| k.kind)
            .collect()
    }
}

impl Drop for KubeSourceHandle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What a kind's task sends to the applier.
struct Batch {
    changes: Vec<Change>,
    /// The kind (by index in [`WATCHED`]) finished a list.
    synced: Option<usize>,
}

/// Applies the kinds' changes to the store, as few updates as possible.
async fn apply_batches(
    mut rx: mpsc::UnboundedReceiver<Batch>,
    store: ConfigStore,
    source: usize,
    synced_tx: watch::Sender<BTreeSet<usize>>,
) {
    while let Some(first) = rx.recv().await {
        let mut changes = first.changes;
        let mut synced: Vec<usize> = first.synced.into_iter().collect();
        while let Ok(more) = rx.try_recv() {
            changes.extend(more.changes);
            synced.extend(more.synced);
        }
        if !changes.is_empty() {
            let store = store.clone();
            // Validation is CPU work: keep it off the async workers.
            let applied =
                tokio::task::spawn_blocking(move || store.update_source(source, changes)).await;
            if let Err(e) = applied {
                tracing::error!("applying Kubernetes changes failed: {e}");
            }
        }
        if !synced.is_empty() {
            synced_tx.send_modify(|s| s.extend(synced));
        }
    }
}

/// The watch of one kind.
struct KindTask {
    client: Client,
    kind: WatchedKind,
    index: usize,
    opts: KubeOptions,
    tx: mpsc::UnboundedSender<Batch>,
}

impl KindTask {
    async fn run(self) {
        let Some(resource) = self.resolve().await else {
            return;
        };
        tracing::debug!(kind = self.kind.kind, api_version = %resource.api_version, "watching");
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
        let mut state = KindState::new(self.kind, resource, self.opts.load.clone());
        let mut listing: Option<Vec<DynamicObject>> = None;
        let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            let (changes, synced) = match event {
                Ok(Event::Init) => {
                    listing = Some(Vec::new());
                    continue;
                }
                Ok(Event::InitApply(o)) => {
                    listing.get_or_insert_with(Vec::new).push(o);
                    continue;
                }
                Ok(Event::InitDone) => {
                    let changes = state.resync(listing.take().unwrap_or_default());
                    tracing::info!(
                        kind = self.kind.kind,
                        objects = state.len(),
                        changed = changes.len(),
                        "listed"
                    );
                    (changes, Some(self.index))
                }
                Ok(Event::Apply(o)) => (state.apply(o), None),
                Ok(Event::Delete(o)) => (state.delete(&o), None),
                Err(e) => {
                    tracing::warn!(
                        kind = self.kind.kind,
                        "Kubernetes watch failed (retrying): {e}"
                    );
                    continue;
                }
            };
            if (!changes.is_empty() || synced.is_some())
                && self.tx.send(Batch { changes, synced }).is_err()
            {
                return;
            }
        }
    }

    /// The resource to watch, once the cluster serves the kind. Reports the kind as synced
    /// (empty) while it is not served.
    async fn resolve(&self) -> Option<kube::discovery::ApiResource> {
        let mut reported = false;
        loop {
            let retry = match self.kind.resolve(&self.client).await {
                Ok(Some(r)) => return Some(r),
                Ok(None) => {
                    if !reported {
                        reported = true;
                        tracing::info!(
                            kind = self.kind.kind,
                            group = self.kind.group,
                            "CRD not installed; looking again every {:?}",
                            self.opts.rediscover
                        );
                        let batch = Batch {
                            changes: Vec::new(),
                            synced: Some(self.index),
                        };
                        if self.tx.send(batch).is_err() {
                            return None;
                        }
                    }
                    self.opts.rediscover
                }
                Err(e) => {
                    tracing::warn!(
                        kind = self.kind.kind,
                        "Kubernetes discovery failed (retrying): {e}"
                    );
                    self.opts.rediscover.min(Duration::from_secs(1))
                }
            };
            tokio::time::sleep(retry).await;
        }
    }
}
