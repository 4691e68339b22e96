//! Turns each published registry state into a new immutable [`MeshSnapshot`] (with a
//! monotonic version) and publishes it to the xDS server.

use std::sync::Arc;

use mast_model::{MeshSnapshot, SnapshotOptions};
use mast_registry::StoreState;
use tokio::sync::watch;

/// Builds a snapshot for every store state until the store goes away or the receiver of
/// snapshots is dropped.
pub async fn run(
    mut states: watch::Receiver<Arc<StoreState>>,
    snapshots: watch::Sender<Arc<MeshSnapshot>>,
    options: SnapshotOptions,
) {
    let mut version = snapshots.borrow().version;
    loop {
        let state = states.borrow_and_update().clone();
        version += 1;
        let opts = options.clone();
        let started = std::time::Instant::now();
        let built = tokio::task::spawn_blocking(move || {
            MeshSnapshot::build(&state.resources, opts, version)
        })
        .await;
        match built {
            Ok(snapshot) => {
                tracing::info!(
                    version,
                    services = snapshot.services().count(),
                    build_ms = started.elapsed().as_secs_f64() * 1e3,
                    "new mesh snapshot"
                );
                if snapshots.send(Arc::new(snapshot)).is_err() {
                    return;
                }
            }
            Err(e) => tracing::error!("building the mesh snapshot failed: {e}"),
        }
        if states.changed().await.is_err() {
            return;
        }
    }
}
