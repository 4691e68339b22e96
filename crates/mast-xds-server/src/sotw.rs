//! State-of-the-world ADS (`StreamAggregatedResources`): per type, the subscription
//! (wildcard or names), the last response sent (nonce, version, content digest) and the
//! ACK/NACK bookkeeping. Every response carries all subscribed resources of its type.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::Status;

use crate::grpc::SotwResponse;
use crate::push::PushEvent;
use crate::service::{Gone, Session, StreamCtx, StreamHandler, control_plane, next_nonce, serve};
use crate::status::{XdsProtocol, short_type_name};
use crate::view::{Generated, Selection, digest};
use crate::wire::{Names, Requests, SotwRequest};

type Tx = mpsc::Sender<Result<SotwResponse, Status>>;

/// The last response sent for a type.
#[derive(Debug)]
struct Sent {
    nonce: String,
    version: String,
    /// Digest of the subscribed resources, for a full response (an incremental one leaves it
    /// unknown).
    digest: Option<u64>,
    /// Set when the response was a push caused by a snapshot change (for push latency).
    changed_at: Option<Instant>,
    /// What the proxy holds after this response (for incremental pushes).
    held: Option<Arc<Generated>>,
}

/// One type on one stream.
#[derive(Debug, Default)]
struct TypeState {
    wildcard: bool,
    /// The names subscribed to, shared by every stream that subscribes to the same set.
    names: Arc<BTreeSet<String>>,
    /// Hash of the last request's name list as sent, to see an unchanged list (every ACK
    /// repeats it: thousands of names for EDS) without building a set.
    names_hash: u64,
    sent: Option<Sent>,
}

impl TypeState {
    /// Applies a request's `resource_names`; true when the subscription changed. An empty
    /// list on the first request is the legacy wildcard, as is `*`.
    fn subscribe(&mut self, names: &Names, first: bool) -> bool {
        let wildcard = names.has_star || (names.len == 0 && (first || self.wildcard));
        if !first && names.hash == self.names_hash && wildcard == self.wildcard {
            return false;
        }
        self.names_hash = names.hash;
        let set: BTreeSet<String> = names.iter().filter(|n| n != "*").collect();
        let changed = wildcard != self.wildcard || set != *self.names;
        self.wildcard = wildcard;
        if set != *self.names {
            self.names = crate::intern::names(set);
        }
        changed
    }

    fn wants(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }
}

/// Runs one SotW stream to its end.
pub(crate) async fn run(ctx: StreamCtx, requests: Requests<SotwRequest>, tx: Tx) {
    fn node(r: &SotwRequest) -> Option<&Node> {
        r.req.node.as_ref()
    }
    serve(ctx, requests, tx, XdsProtocol::Sotw, node, |session, tx| {
        SotwStream {
            session,
            tx,
            types: BTreeMap::new(),
        }
    })
    .await;
}

struct SotwStream {
    session: Session,
    tx: Tx,
    types: BTreeMap<String, TypeState>,
}

impl StreamHandler<SotwRequest> for SotwStream {
    type Resp = SotwResponse;

    fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    fn tx(&self) -> &Tx {
        &self.tx
    }

    async fn on_request(&mut self, req: SotwRequest) -> Result<(), Gone> {
        self.request(req).await
    }

    async fn on_event(&mut self, event: Arc<PushEvent>) -> Result<(), Gone> {
        self.event(event).await
    }
}

impl SotwStream {
    async fn request(&mut self, req: SotwRequest) -> Result<(), Gone> {
        let SotwRequest { req, names } = req;
        let type_url = req.type_url.clone();
        let state = self.types.entry(type_url.clone()).or_default();
        let Some(sent) = &mut state.sent else {
            // The first request for this type on this stream: always answered in full.
            state.subscribe(&names, true);
            return self.respond(&type_url, None).await;
        };
        if req.response_nonce != sent.nonce {
            tracing::debug!(r#type = short_type_name(&type_url), nonce = %req.response_nonce, "ignoring request with a stale nonce");
            return Ok(());
        }
        if let Some(error) = &req.error_detail {
            let (version, nonce) = (sent.version.clone(), sent.nonce.clone());
            sent.changed_at = None;
            // The proxy kept its previous config: the next push must be complete.
            sent.held = None;
            sent.digest = None;
            self.nack(&type_url, &version, &nonce, &error.message);
            return Ok(());
        }
        if let Some(at) = sent.changed_at.take() {
            self.session
                .metrics
                .converged(&type_url, at.elapsed().as_secs_f64());
        }
        let nonce = sent.nonce.clone();
        self.session
            .conn
            .update(|r| r.acked(&type_url, &req.version_info, &nonce));
        if state.subscribe(&names, false) {
            return self.respond(&type_url, None).await;
        }
        Ok(())
    }

    fn nack(&self, type_url: &str, version: &str, nonce: &str, error: &str) {
        tracing::warn!(
            node = %self.session.node_id(),
            r#type = short_type_name(type_url),
            %version,
            %nonce,
            %error,
            "proxy rejected config (NACK); it keeps its last accepted config"
        );
        self.session.metrics.nacked(type_url);
        self.session
            .conn
            .update(|r| r.nacked(type_url, version, nonce, error));
    }

    async fn event(&mut self, event: Arc<PushEvent>) -> Result<(), Gone> {
        let changed_at = event.changed_at;
        // Clusters this push changed (`Some(None)`: unknown which, so all).
        let mut clusters: Option<Option<BTreeSet<String>>> = None;
        for type_url in self.session.view.advance(event).await? {
            self.session.generated(&type_url).await?;
            if !self.subscribed(&type_url) {
                continue;
            }
            if type_url == mast_xds::ENDPOINT_TYPE
                && let Some(changed) = clusters.take()
            {
                self.push_endpoints_after(changed, changed_at).await?;
                continue;
            }
            let held = self.held(&type_url);
            if self.push(&type_url, changed_at).await? && type_url == mast_xds::CLUSTER_TYPE {
                let now = self.session.generated(&type_url).await?;
                clusters = Some(held.map(|held| {
                    now.iter()
                        .filter(|(r, hash)| held.hash_of(r.name()) != Some(*hash))
                        .map(|(r, _)| r.name().to_owned())
                        .collect()
                }));
            }
        }
        // Endpoints did not change, but the clusters did: their assignments go out again.
        if let Some(changed) = clusters
            && self.subscribed(mast_xds::ENDPOINT_TYPE)
        {
            self.push_endpoints_after(changed, changed_at).await?;
        }
        Ok(())
    }

    /// Pushes endpoints after a push of `clusters` (`None`: unknown which): Envoy re-creates
    /// every cluster a push changed and that new cluster warms until it receives its
    /// assignment again, even unchanged (its re-request looks like an ACK). So the changed
    /// clusters' assignments go out with the changed ones, as istiod re-sends EDS after CDS.
    async fn push_endpoints_after(
        &mut self,
        clusters: Option<BTreeSet<String>>,
        changed_at: Instant,
    ) -> Result<(), Gone> {
        const EDS: &str = mast_xds::ENDPOINT_TYPE;
        let generated = self.session.generated(EDS).await?;
        let (Some(clusters), Some(held)) = (clusters, self.held(EDS)) else {
            return self.respond(EDS, Some(changed_at)).await;
        };
        if generated.changes_since(&held).removed {
            return self.respond(EDS, Some(changed_at)).await;
        }
        let Some(state) = self.types.get(EDS) else {
            return Ok(());
        };
        let resources = generated.select(|name| {
            state.wants(name)
                && (clusters.contains(name) || held.hash_of(name) != generated.hash_of(name))
        });
        if resources.is_empty() {
            if let Some(sent) = self.types.get_mut(EDS).and_then(|s| s.sent.as_mut()) {
                sent.held = Some(generated);
            }
            return Ok(());
        }
        self.send(EDS, &generated, resources, Some(changed_at), false)
            .await
    }

    /// Whether the proxy has been sent `type_url` on this stream (it asked for it).
    fn subscribed(&self, type_url: &str) -> bool {
        self.types.get(type_url).is_some_and(|s| s.sent.is_some())
    }

    /// What the proxy holds of `type_url`, when known.
    fn held(&self, type_url: &str) -> Option<Arc<Generated>> {
        self.types
            .get(type_url)
            .and_then(|s| s.sent.as_ref())
            .and_then(|s| s.held.clone())
    }

    /// Pushes `type_url` if what the proxy subscribes to differs from what it was last sent.
    /// Endpoints and route tables (which Envoy asks for by name) are sent incrementally, as
    /// the xDS protocol allows and istiod does: only the subscribed resources that changed.
    /// Returns whether a response went out.
    async fn push(&mut self, type_url: &str, changed_at: Instant) -> Result<bool, Gone> {
        let generated = self.session.generated(type_url).await?;
        let Some(state) = self.types.get(type_url) else {
            return Ok(false);
        };
        match incremental_update(type_url, state, &generated) {
            Some(resources) if resources.is_empty() => {
                if let Some(sent) = self.types.get_mut(type_url).and_then(|s| s.sent.as_mut()) {
                    sent.held = Some(generated);
                }
                Ok(false)
            }
            Some(resources) => {
                self.send(type_url, &generated, resources, Some(changed_at), false)
                    .await?;
                Ok(true)
            }
            None if state
                .sent
                .as_ref()
                .is_some_and(|s| s.digest == Some(selected_digest(state, &generated))) =>
            {
                Ok(false)
            }
            None => {
                self.respond(type_url, Some(changed_at)).await?;
                Ok(true)
            }
        }
    }

    /// Sends every subscribed resource of `type_url`.
    async fn respond(&mut self, type_url: &str, changed_at: Option<Instant>) -> Result<(), Gone> {
        let generated = self.session.generated(type_url).await?;
        let state = self.types.entry(type_url.to_owned()).or_default();
        let resources = generated.select(|name| state.wants(name));
        self.send(type_url, &generated, resources, changed_at, true)
            .await
    }

    /// Sends `resources` as the response for `type_url` at `generated`, which the proxy
    /// then holds.
    async fn send(
        &mut self,
        type_url: &str,
        generated: &Arc<Generated>,
        resources: Vec<Selection>,
        changed_at: Option<Instant>,
        full: bool,
    ) -> Result<(), Gone> {
        let state = self.types.entry(type_url.to_owned()).or_default();
        let nonce = next_nonce();
        let count: usize = resources.iter().map(Selection::len).sum();
        let response = SotwResponse {
            head: DiscoveryResponse {
                version_info: generated.version.clone(),
                type_url: type_url.to_owned(),
                nonce: nonce.clone(),
                control_plane: control_plane(),
                ..DiscoveryResponse::default()
            },
            body: resources,
        };
        state.sent = Some(Sent {
            nonce: nonce.clone(),
            version: generated.version.clone(),
            digest: full.then(|| selected_digest(state, generated)),
            changed_at,
            held: Some(generated.clone()),
        });
        tracing::debug!(r#type = short_type_name(type_url), version = %generated.version, %nonce, resources = count, "sending");
        self.session
            .conn
            .update(|r| r.sent(type_url, &generated.version, &nonce));
        self.session.metrics.pushed(type_url);
        self.tx.send(Ok(response)).await.map_err(|_| Gone)
    }
}

/// Whether a response of `type_url` may carry only the changed resources (in SotW every
/// type but listeners and clusters).
fn incremental(type_url: &str) -> bool {
    type_url != mast_xds::CLUSTER_TYPE && type_url != mast_xds::LISTENER_TYPE
}

/// The subscribed resources of `generated` that the proxy lacks, when `type_url` may be
/// pushed incrementally and the proxy holds an earlier generation with nothing since removed;
/// `None` when a full response is needed.
fn incremental_update(
    type_url: &str,
    state: &TypeState,
    generated: &Generated,
) -> Option<Vec<Selection>> {
    if !incremental(type_url) {
        return None;
    }
    let held = state.sent.as_ref()?.held.as_ref()?;
    let changes = generated.changes_since(held);
    (!changes.removed).then(|| generated.select_changes(&changes, |name| state.wants(name)))
}

/// The digest of what `state` subscribes to in `generated`.
fn selected_digest(state: &TypeState, generated: &Generated) -> u64 {
    if state.wildcard {
        return generated.digest;
    }
    let selected: Vec<_> = generated
        .iter()
        .filter(|(r, _)| state.wants(r.name()))
        .collect();
    digest(selected.iter().map(|(r, h)| (r.name(), h)))
}
