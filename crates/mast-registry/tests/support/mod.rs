//! Helpers for the files-source tests: a temp folder removed on drop, YAML builders, and
//! bounded waits on the store's watch channel.

#![allow(dead_code, reason = "each test binary uses a part")]
#![allow(
    clippy::unwrap_used,
    reason = "test support: a failure is a test failure"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mast_registry::{ConfigStore, FilesOptions, FilesSource, FilesSourceHandle, StoreState};
use tokio::sync::watch;

/// Longest wait for any expected state.
pub const WAIT: Duration = Duration::from_secs(3);

/// A fresh folder under the system temp folder, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!(
            "mast-registry-{tag}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    /// Writes `rel` (creating its folders).
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A valid VirtualService `name` routing `host` to itself with `weight`.
pub fn vs(name: &str, host: &str, weight: i64) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\n\
         spec:\n  hosts:\n  - {host}\n  http:\n  - route:\n    - destination:\n        host: {host}\n\
         \x20     weight: {weight}\n"
    )
}

/// A valid DestinationRule.
pub fn dr(name: &str, host: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {name}\n\
         spec:\n  host: {host}\n"
    )
}

/// The hosts of VirtualService `default/name`, if it is served.
pub fn vs_hosts(state: &StoreState, name: &str) -> Option<Vec<String>> {
    state
        .get("VirtualService", "default", name)
        .map(|r| r.as_virtual_service().unwrap().hosts.clone())
}

/// Whether VirtualService `default/name` is served with exactly `host`.
pub fn has_vs(state: &StoreState, name: &str, host: &str) -> bool {
    vs_hosts(state, name).is_some_and(|h| h == [host])
}

/// `kind/name` of every served resource, in store order.
pub fn names(state: &StoreState) -> Vec<String> {
    state
        .resources
        .iter()
        .map(|r| format!("{}/{}", r.kind, r.name()))
        .collect()
}

/// A store fed by a files source on `dir`, and a receiver of its states.
pub fn start(
    dir: &Path,
) -> (
    ConfigStore,
    FilesSourceHandle,
    watch::Receiver<Arc<StoreState>>,
) {
    let store = ConfigStore::new();
    let rx = store.subscribe();
    let handle = FilesSource::start(dir, store.clone(), FilesOptions::default()).unwrap();
    (store, handle, rx)
}

/// Waits (at most [`WAIT`]) for a state satisfying `pred`.
pub async fn wait_for(
    rx: &mut watch::Receiver<Arc<StoreState>>,
    what: &str,
    mut pred: impl FnMut(&StoreState) -> bool,
) -> Arc<StoreState> {
    let found = match tokio::time::timeout(WAIT, rx.wait_for(|s| pred(s))).await {
        Ok(Ok(state)) => Some(state.clone()),
        Ok(Err(_)) => panic!("store closed while waiting for {what}"),
        Err(_) => None,
    };
    found.unwrap_or_else(|| {
        let s = rx.borrow().clone();
        panic!(
            "timed out waiting for {what}; generation {}: {:?}; diagnostics {:?}",
            s.generation,
            names(&s),
            s.diagnostics
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        )
    })
}

/// Sleeps long enough for any pending debounced update to be published.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}
