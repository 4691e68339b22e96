//! Incremental ADS (`DeltaAggregatedResources`): per type, the subscription (wildcard —
//! including Envoy's legacy form, an empty first subscribe list — or names), the version of
//! each resource the proxy holds (seeded from `initial_resource_versions`), and the nonces
//! in flight so an ACK or NACK, which carries no version, can be tied to one.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::{Status, Streaming};

use crate::push::PushEvent;
use crate::service::{Gone, Session, StreamCtx, StreamHandler, control_plane, next_nonce, serve};
use crate::status::{XdsProtocol, short_type_name};
use crate::version::format_hash;
use crate::view::Generated;

type Tx = mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>;

/// Responses awaiting an ACK, per type, kept at most (older ones are forgotten).
const MAX_PENDING: usize = 64;

/// A response not yet ACKed or NACKed.
#[derive(Debug)]
struct Pending {
    nonce: String,
    version: String,
    changed_at: Option<Instant>,
}

/// One type on one stream.
#[derive(Debug, Default)]
struct TypeState {
    wildcard: bool,
    names: BTreeSet<String>,
    /// Resource name -> version the proxy holds (as far as the server knows).
    client: BTreeMap<String, String>,
    pending: VecDeque<Pending>,
}

impl TypeState {
    /// The state a type's first request creates.
    fn first(req: &DeltaDiscoveryRequest) -> Self {
        let subscribe = &req.resource_names_subscribe;
        Self {
            wildcard: subscribe.is_empty() || subscribe.iter().any(|n| n == "*"),
            names: subscribe.iter().filter(|n| *n != "*").cloned().collect(),
            client: req
                .initial_resource_versions
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            pending: VecDeque::new(),
        }
    }

    /// Applies a later request's subscribe/unsubscribe lists; true when something new is
    /// wanted.
    fn update(&mut self, req: &DeltaDiscoveryRequest) -> bool {
        let mut added = false;
        for name in &req.resource_names_subscribe {
            if name == "*" {
                added |= !self.wildcard;
                self.wildcard = true;
            } else {
                added |= self.names.insert(name.clone());
            }
        }
        for name in &req.resource_names_unsubscribe {
            if name == "*" {
                self.wildcard = false;
            } else {
                self.names.remove(name);
            }
        }
        let (wildcard, names) = (self.wildcard, &self.names);
        self.client.retain(|k, _| wildcard || names.contains(k));
        added
    }

    fn wants(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }

    /// What the proxy lacks: subscribed resources whose version it does not hold, and the
    /// names it holds that are gone or no longer subscribed.
    fn changes(&self, generated: &Generated) -> (Vec<Resource>, Vec<String>) {
        let mut present = BTreeSet::new();
        let mut resources = Vec::new();
        for (r, hash) in generated.iter() {
            let name = r.name();
            if !self.wants(name) {
                continue;
            }
            present.insert(name);
            let version = format_hash(hash);
            if self.client.get(name) != Some(&version) {
                resources.push(Resource {
                    name: name.to_owned(),
                    version,
                    resource: Some(r.to_any()),
                    ..Resource::default()
                });
            }
        }
        let removed = self
            .client
            .keys()
            .filter(|k| !present.contains(k.as_str()))
            .cloned()
            .collect();
        (resources, removed)
    }

    /// Notes that the proxy now holds `resources` and no longer holds `removed`.
    fn record(&mut self, resources: &[Resource], removed: &[String]) {
        for r in resources {
            self.client.insert(r.name.clone(), r.version.clone());
        }
        for name in removed {
            self.client.remove(name);
        }
    }

    /// Removes and returns the pending response with `nonce` (and forgets older ones).
    fn take_pending(&mut self, nonce: &str) -> Option<Pending> {
        let index = self.pending.iter().position(|p| p.nonce == nonce)?;
        self.pending.drain(..=index).next_back()
    }
}

/// Runs one delta stream to its end.
pub(crate) async fn run(ctx: StreamCtx, requests: Streaming<DeltaDiscoveryRequest>, tx: Tx) {
    fn node(r: &DeltaDiscoveryRequest) -> Option<&Node> {
        r.node.as_ref()
    }
    serve(
        ctx,
        requests,
        tx,
        XdsProtocol::Delta,
        node,
        |session, tx| DeltaStream {
            session,
            tx,
            types: BTreeMap::new(),
        },
    )
    .await;
}

struct DeltaStream {
    session: Session,
    tx: Tx,
    types: BTreeMap<String, TypeState>,
}

impl StreamHandler<DeltaDiscoveryRequest> for DeltaStream {
    type Resp = DeltaDiscoveryResponse;

    fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    fn tx(&self) -> &Tx {
        &self.tx
    }

    async fn on_request(&mut self, req: DeltaDiscoveryRequest) -> Result<(), Gone> {
        self.request(req).await
    }

    async fn on_event(&mut self, event: Arc<PushEvent>) -> Result<(), Gone> {
        self.event(event).await
    }
}

impl DeltaStream {
    async fn request(&mut self, req: DeltaDiscoveryRequest) -> Result<(), Gone> {
        let type_url = req.type_url.clone();
        let Some(state) = self.types.get_mut(&type_url) else {
            // The first request for this type on this stream: always answered.
            self.types.insert(type_url.clone(), TypeState::first(&req));
            return self.send(&type_url, None, true).await.map(drop);
        };
        if !req.response_nonce.is_empty() {
            match state.take_pending(&req.response_nonce) {
                Some(p) => self.acknowledge(&type_url, p, &req),
                None => {
                    tracing::debug!(r#type = short_type_name(&type_url), nonce = %req.response_nonce, "ignoring an unknown nonce")
                }
            }
        }
        let Some(state) = self.types.get_mut(&type_url) else {
            return Ok(());
        };
        if state.update(&req) {
            return self.send(&type_url, None, false).await.map(drop);
        }
        Ok(())
    }

    /// Records the ACK or NACK of a pending response.
    fn acknowledge(&self, type_url: &str, pending: Pending, req: &DeltaDiscoveryRequest) {
        let Pending {
            nonce,
            version,
            changed_at,
        } = pending;
        if let Some(error) = &req.error_detail {
            tracing::warn!(
                node = %self.session.node_id(),
                r#type = short_type_name(type_url),
                %version,
                %nonce,
                error = %error.message,
                "proxy rejected config (NACK); it keeps its last accepted config"
            );
            self.session.metrics.nacked(type_url);
            self.session
                .conn
                .update(|r| r.nacked(type_url, &version, &nonce, &error.message));
            return;
        }
        if let Some(at) = changed_at {
            self.session
                .metrics
                .converged(type_url, at.elapsed().as_secs_f64());
        }
        self.session
            .conn
            .update(|r| r.acked(type_url, &version, &nonce));
    }

    async fn event(&mut self, event: Arc<PushEvent>) -> Result<(), Gone> {
        let changed_at = event.changed_at;
        let mut clusters: Vec<String> = Vec::new();
        let mut endpoints_sent = false;
        for type_url in self.session.view.advance(event).await? {
            self.session.generated(&type_url).await?;
            if !self.types.contains_key(&type_url) {
                continue;
            }
            if type_url == mast_xds::ENDPOINT_TYPE {
                self.forget_endpoints_of(&clusters);
                endpoints_sent = true;
            }
            let sent = self.send(&type_url, Some(changed_at), false).await?;
            if type_url == mast_xds::CLUSTER_TYPE {
                clusters = sent;
            }
        }
        // Envoy re-creates every cluster a push changed and that new cluster warms until it
        // receives its endpoints again, even unchanged: they go out again, as istiod does.
        if !clusters.is_empty()
            && !endpoints_sent
            && self.types.contains_key(mast_xds::ENDPOINT_TYPE)
        {
            self.forget_endpoints_of(&clusters);
            self.send(mast_xds::ENDPOINT_TYPE, Some(changed_at), false)
                .await?;
        }
        Ok(())
    }

    /// Forgets that the proxy holds the assignments of `clusters` (an EDS cluster's
    /// assignment has its name), so the next endpoints response carries them.
    fn forget_endpoints_of(&mut self, clusters: &[String]) {
        if let Some(eds) = self.types.get_mut(mast_xds::ENDPOINT_TYPE) {
            for name in clusters {
                eds.client.remove(name);
            }
        }
    }

    /// Sends the subscribed resources of `type_url` whose version the proxy lacks, and the
    /// names it holds that no longer exist; nothing when there is neither, unless `always`.
    /// Returns the names of the resources sent.
    async fn send(
        &mut self,
        type_url: &str,
        changed_at: Option<Instant>,
        always: bool,
    ) -> Result<Vec<String>, Gone> {
        let generated = self.session.generated(type_url).await?;
        let Some(state) = self.types.get_mut(type_url) else {
            return Ok(Vec::new());
        };
        let (resources, removed) = state.changes(&generated);
        if resources.is_empty() && removed.is_empty() && !always {
            return Ok(Vec::new());
        }
        let names: Vec<String> = resources.iter().map(|r| r.name.clone()).collect();
        state.record(&resources, &removed);
        let nonce = next_nonce();
        state.pending.push_back(Pending {
            nonce: nonce.clone(),
            version: generated.version.clone(),
            changed_at,
        });
        if state.pending.len() > MAX_PENDING {
            state.pending.pop_front();
        }
        tracing::debug!(r#type = short_type_name(type_url), version = %generated.version, %nonce, updated = resources.len(), removed = removed.len(), "sending");
        let response = DeltaDiscoveryResponse {
            system_version_info: generated.version.clone(),
            resources,
            type_url: type_url.to_owned(),
            removed_resources: removed,
            nonce: nonce.clone(),
            control_plane: control_plane(),
            ..DeltaDiscoveryResponse::default()
        };
        self.session
            .conn
            .update(|r| r.sent(type_url, &generated.version, &nonce));
        self.session.metrics.pushed(type_url);
        self.tx.send(Ok(response)).await.map_err(|_| Gone)?;
        Ok(names)
    }
}
