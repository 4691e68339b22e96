//! `StreamSecrets`, state of the world: the first request (or one naming other secrets) is
//! answered with the current secrets; an ACK (the last nonce, no error) or a NACK (an error,
//! logged) of the same names is not; a request carrying a stale nonce is ignored; and every
//! change of the bundle that changes the requested secrets pushes a new version.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};
use tracing::{debug, info, warn};

use super::{
    Pending, SECRET_TYPE_URL, SdsServer, Served, check_type, content_version, unusable, wanted,
};

type Tx = mpsc::Sender<Result<DiscoveryResponse, Status>>;

/// A response carrying `secrets`; its version is a hash of theirs.
pub(super) fn response(secrets: &[Served], nonce: String) -> DiscoveryResponse {
    let versions: Vec<&[u8]> = secrets.iter().map(|s| s.version.as_bytes()).collect();
    DiscoveryResponse {
        version_info: content_version(&versions),
        resources: secrets.iter().map(|s| s.resource.clone()).collect(),
        type_url: SECRET_TYPE_URL.to_owned(),
        nonce,
        ..DiscoveryResponse::default()
    }
}

/// What one stream has asked for and been sent.
#[derive(Default)]
struct Stream {
    /// The names asked for (`None` before the first request).
    names: Option<BTreeSet<String>>,
    /// The version last sent.
    sent: Option<String>,
    /// The nonce last sent.
    nonce: String,
    /// The node id of the first request.
    node: String,
    /// Whether the "no certificate" answer was sent.
    refused: bool,
}

/// Serves one stream until the client ends it.
pub(super) async fn run(server: SdsServer, mut requests: Streaming<DiscoveryRequest>, tx: Tx) {
    let mut bundles = server.bundles.clone();
    let mut watching = true;
    let mut stream = Stream::default();
    loop {
        tokio::select! {
            request = requests.message() => match request {
                Ok(Some(r)) => {
                    if let Err(status) = stream.on_request(&server, r, &tx).await {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    debug!(node = stream.node, error = %e, "SDS stream ended");
                    return;
                }
            },
            changed = bundles.changed(), if watching && stream.names.is_some() => {
                if changed.is_err() {
                    watching = false;
                } else {
                    stream.push(&server, &tx, false).await;
                }
            }
            () = tx.closed() => return,
        }
    }
}

impl Stream {
    async fn on_request(
        &mut self,
        server: &SdsServer,
        r: DiscoveryRequest,
        tx: &Tx,
    ) -> Result<(), Status> {
        check_type(&r.type_url)?;
        if let Some(node) = &r.node
            && self.node.is_empty()
        {
            self.node.clone_from(&node.id);
        }
        if !r.response_nonce.is_empty() && r.response_nonce != self.nonce {
            debug!(
                node = self.node,
                nonce = r.response_nonce,
                "SDS request with a stale nonce ignored"
            );
            return Ok(());
        }
        let names = wanted(&r.resource_names);
        let changed = self.names.as_ref() != Some(&names);
        match &r.error_detail {
            Some(error) if !self.refused => warn!(node = self.node, version = r.version_info,
                names = ?names, error = error.message, "Envoy rejected the secrets (NACK)"),
            Some(_) => debug!(
                node = self.node,
                "the secrets without certificate were rejected, as expected"
            ),
            None if !r.response_nonce.is_empty() => {
                debug!(node = self.node, version = r.version_info, "secrets ACK");
            }
            None => {}
        }
        if !changed {
            return Ok(());
        }
        info!(node = self.node, names = ?names, "SDS request");
        self.names = Some(names);
        self.push(server, tx, true).await;
        Ok(())
    }

    /// Sends the current secrets if they differ from the last sent (or `force`).
    async fn push(&mut self, server: &SdsServer, tx: &Tx, force: bool) {
        let Some(names) = &self.names else { return };
        let Some(secrets) = server.current(names) else {
            if server.pending == Pending::Refuse && !self.refused {
                self.refused = true;
                self.nonce = server.next_nonce();
                let placeholders: Vec<Served> = names.iter().filter_map(|n| unusable(n)).collect();
                let _ = tx
                    .send(Ok(response(&placeholders, self.nonce.clone())))
                    .await;
            }
            return;
        };
        if secrets.len() < names.len() {
            warn!(node = self.node, names = ?names, "only secrets default and ROOTCA are served");
        }
        if secrets.is_empty() {
            return;
        }
        let nonce = server.next_nonce();
        let out = response(&secrets, nonce.clone());
        if !force && self.sent.as_deref() == Some(out.version_info.as_str()) {
            return;
        }
        debug!(
            node = self.node,
            version = out.version_info,
            "pushing secrets"
        );
        self.sent = Some(out.version_info.clone());
        self.nonce = nonce;
        if tx.send(Ok(out)).await.is_ok() {
            server.pushed(secrets.iter().map(|s| s.name.as_str()));
        }
    }
}
