//! `DeltaSecrets`, incremental: the client subscribes and unsubscribes names, says which
//! versions it already holds (on reconnection), and gets each subscribed secret whenever its
//! version differs from what it holds; NACKs are logged.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};
use tracing::{debug, info, warn};

use super::{Pending, ROOT_SECRET, SECRET_TYPE_URL, SdsServer, WORKLOAD_SECRET, check_type};

type Tx = mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>;

/// What one stream has subscribed to and holds.
#[derive(Default)]
struct Stream {
    /// Whether a request was seen.
    started: bool,
    /// The subscribed names.
    subscribed: BTreeSet<String>,
    /// The version the client holds, by name.
    held: BTreeMap<String, String>,
    /// The node id of the first request.
    node: String,
    /// Whether the "no certificate" answer was sent.
    refused: bool,
}

/// Serves one stream until the client ends it.
pub(super) async fn run(server: SdsServer, mut requests: Streaming<DeltaDiscoveryRequest>, tx: Tx) {
    let mut bundles = server.bundles.clone();
    let mut watching = true;
    let mut stream = Stream::default();
    loop {
        tokio::select! {
            request = requests.message() => match request {
                Ok(Some(r)) => {
                    if let Err(status) = check_type(&r.type_url) {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                    stream.on_request(r);
                    stream.push(&server, &tx).await;
                }
                Ok(None) => return,
                Err(e) => {
                    debug!(node = stream.node, error = %e, "delta SDS stream ended");
                    return;
                }
            },
            changed = bundles.changed(), if watching && stream.started => {
                if changed.is_err() {
                    watching = false;
                } else {
                    stream.push(&server, &tx).await;
                }
            }
            () = tx.closed() => return,
        }
    }
}

impl Stream {
    fn on_request(&mut self, r: DeltaDiscoveryRequest) {
        if let Some(node) = &r.node
            && self.node.is_empty()
        {
            self.node.clone_from(&node.id);
        }
        if let Some(error) = &r.error_detail {
            warn!(
                node = self.node,
                nonce = r.response_nonce,
                error = error.message,
                "Envoy rejected the secrets (NACK)"
            );
        }
        let first = !self.started;
        self.started = true;
        if first {
            self.held.extend(r.initial_resource_versions);
        }
        for name in r.resource_names_subscribe {
            if name == "*" {
                self.subscribed
                    .extend([WORKLOAD_SECRET.into(), ROOT_SECRET.into()]);
            } else {
                self.subscribed.insert(name);
            }
        }
        for name in r.resource_names_unsubscribe {
            self.held.remove(&name);
            self.subscribed.remove(&name);
        }
        if first && self.subscribed.is_empty() {
            self.subscribed
                .extend([WORKLOAD_SECRET.into(), ROOT_SECRET.into()]);
        }
        if first {
            info!(node = self.node, names = ?self.subscribed, "delta SDS request");
        }
    }

    /// Sends the subscribed secrets whose version the client does not hold.
    async fn push(&mut self, server: &SdsServer, tx: &Tx) {
        if self.subscribed.is_empty() {
            return;
        }
        let Some(secrets) = server.current(&self.subscribed) else {
            if server.pending == Pending::Refuse && !self.refused {
                self.refused = true;
                let mut out = response(Vec::new(), server.next_nonce());
                out.removed_resources = self.subscribed.iter().cloned().collect();
                let _ = tx.send(Ok(out)).await;
            }
            return;
        };
        let resources: Vec<Resource> = secrets
            .into_iter()
            .filter(|s| self.held.get(&s.name) != Some(&s.version))
            .map(|s| Resource {
                name: s.name,
                version: s.version,
                resource: Some(s.resource),
                ..Resource::default()
            })
            .collect();
        if resources.is_empty() {
            return;
        }
        for r in &resources {
            self.held.insert(r.name.clone(), r.version.clone());
        }
        debug!(
            node = self.node,
            count = resources.len(),
            "pushing secrets (delta)"
        );
        let names: Vec<String> = resources.iter().map(|r| r.name.clone()).collect();
        if tx
            .send(Ok(response(resources, server.next_nonce())))
            .await
            .is_ok()
        {
            server.pushed(names.iter().map(String::as_str));
        }
    }
}

fn response(resources: Vec<Resource>, nonce: String) -> DeltaDiscoveryResponse {
    DeltaDiscoveryResponse {
        system_version_info: nonce.clone(),
        resources,
        type_url: SECRET_TYPE_URL.to_owned(),
        nonce,
        ..DeltaDiscoveryResponse::default()
    }
}
