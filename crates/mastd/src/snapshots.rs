//! Turns each published registry state into a new immutable [`MeshSnapshot`] (with a
//! monotonic version) and publishes it to the xDS server. The JWKS documents that
//! RequestAuthentications name by `jwksUri` ([`crate::jwks`]) go into the snapshot's options;
//! a new or changed document rebuilds the snapshot.

use std::sync::Arc;

use mast_model::{MeshSnapshot, SnapshotOptions};
use mast_registry::StoreState;
use tokio::sync::watch;

use crate::jwks::JwksResolver;

/// Builds a snapshot for every store state (and every change of the fetched JWKS documents)
/// until the store goes away or the receiver of snapshots is dropped.
pub async fn run(
    mut states: watch::Receiver<Arc<StoreState>>,
    snapshots: watch::Sender<Arc<MeshSnapshot>>,
    options: SnapshotOptions,
    jwks: JwksResolver,
) {
    let mut version = snapshots.borrow().version;
    let mut documents = jwks.subscribe();
    let mut resolver_alive = true;
    loop {
        let state = states.borrow_and_update().clone();
        version += 1;
        let mut opts = options.clone();
        opts.jwks = documents.borrow_and_update().clone();
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
                jwks.set_keys(mast_xds::authz::jwt::jwks_keys(&snapshot));
                if snapshots.send(Arc::new(snapshot)).is_err() {
                    return;
                }
            }
            Err(e) => tracing::error!("building the mesh snapshot failed: {e}"),
        }
        // A resolver that stopped (it never should) leaves the last documents in place.
        tokio::select! {
            changed = states.changed() => if changed.is_err() { return },
            changed = documents.changed(), if resolver_alive => {
                if changed.is_err() {
                    tracing::error!("the JWKS resolver stopped; keeping the last documents");
                    resolver_alive = false;
                }
            }
        }
    }
}
