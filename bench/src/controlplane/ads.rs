//! One benchmark xDS client: a real ADS gRPC stream (envoy-types' generated client, state of
//! the world) that subscribes and ACKs the way Envoy does.
//!
//! - First stream: CDS wildcard; on the clusters, ACK, then EDS for the EDS clusters' names;
//!   on the first endpoints, LDS wildcard; on the listeners, ACK, then RDS for the route
//!   tables their HTTP connection managers name. Every response is ACKed by echoing its
//!   `version_info` and `nonce` with the current subscription; a change in the clusters or
//!   listeners re-subscribes EDS or RDS with the new names, as Envoy's warming does.
//! - When the stream ends, the client reconnects with a jittered exponential backoff (50 ms
//!   doubling to 1 s) and, like Envoy, re-sends all its subscriptions at once, each with the
//!   version it last accepted.
//! - It never NACKs: the benchmark measures delivery, not validation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use mast_xds::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE};
use std::sync::atomic::Ordering;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

use crate::fleet::{ProbeKind, Shared};
use crate::lite;

/// Envoy's default HTTP/2 `initial_stream_window_size` and `initial_connection_window_size`.
const ENVOY_H2_WINDOW: u32 = 256 * 1024 * 1024;

/// The four types in subscription order; indexes into per-type arrays.
const TYPES: [&str; 4] = [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE];
const CDS: usize = 0;
const EDS: usize = 1;
const LDS: usize = 2;
const RDS: usize = 3;

/// Reconnection attempts before a client gives up (with backoff, well over the run's length).
const MAX_ATTEMPTS: u32 = 2_000;
/// Largest response accepted (a full EDS or RDS push for 1,000 services is a few MB).
const MAX_MESSAGE: usize = 512 * 1024 * 1024;

/// Per type: the subscription and what was last received.
#[derive(Debug, Default, Clone)]
struct TypeState {
    names: Arc<Vec<String>>,
    version: String,
    nonce: String,
    requested: bool,
    pending: bool,
    acked: bool,
}

/// What a client keeps across its streams.
#[derive(Debug, Default)]
struct ClientState {
    types: [TypeState; 4],
}

/// Runs client `idx` until `stop` turns true (or it has failed [`MAX_ATTEMPTS`] times).
pub async fn run_client(
    shared: Arc<Shared>,
    idx: usize,
    node: Node,
    mut stop: watch::Receiver<bool>,
) {
    let mut state = ClientState::default();
    let mut backoff = Backoff::new(idx as u64);
    for _ in 0..MAX_ATTEMPTS {
        if *stop.borrow() {
            return;
        }
        let outcome = tokio::select! {
            r = run_stream(&shared, idx, &node, &mut state) => r,
            _ = stop.changed() => return,
        };
        let report = &shared.clients[idx];
        report.errors.fetch_add(1, Ordering::Relaxed);
        let message: String = format!("{outcome:#}").chars().take(300).collect();
        *shared
            .error_kinds
            .lock()
            .entry(message.clone())
            .or_default() += 1;
        *report.last_error.lock() = message;
        if report.stream.lock().synced.is_some() {
            backoff.reset();
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next()) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One stream, from connecting to its end (always an error: streams end only when mastd
/// goes away).
async fn run_stream(
    shared: &Shared,
    idx: usize,
    node: &Node,
    state: &mut ClientState,
) -> anyhow::Error {
    let channel = match Endpoint::from_shared(format!("http://{}", shared.addr)) {
        // HTTP/2 windows as Envoy's defaults (256 MiB per stream and per connection), so a
        // client reads a 1 MiB response as Envoy does rather than in 64 KiB round trips.
        Ok(e) => e
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .initial_stream_window_size(Some(ENVOY_H2_WINDOW))
            .initial_connection_window_size(Some(ENVOY_H2_WINDOW)),
        Err(e) => return e.into(),
    };
    let channel = match channel.connect().await {
        Ok(c) => c,
        Err(e) => return anyhow::Error::new(e).context("connecting"),
    };
    let mut client =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
    let (tx, rx) = mpsc::channel(16);
    let mut out = Sender {
        tx,
        node: Some(node.clone()),
    };
    for t in &mut state.types {
        (t.nonce, t.requested, t.pending, t.acked) = (String::new(), false, false, false);
    }
    // Like Envoy after a reconnect: every subscription at once, with the versions it holds.
    let resubscribe: Vec<usize> = (0..4)
        .filter(|&t| t == CDS || !state.types[t].version.is_empty())
        .collect();
    for t in resubscribe {
        if out.request(state, t).await.is_err() {
            return anyhow::anyhow!("request stream closed");
        }
    }
    let mut responses = match client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(status) => return anyhow::Error::new(status).context("opening the ADS stream"),
    };
    {
        let mut s = shared.clients[idx].stream.lock();
        let generation = s.generation + 1;
        *s = crate::fleet::StreamInfo {
            generation,
            opened: Some(Instant::now()),
            ..Default::default()
        };
    }
    loop {
        let response = match responses.message().await {
            Ok(Some(r)) => r,
            Ok(None) => return anyhow::anyhow!("stream ended by mastd"),
            Err(status) => return anyhow::Error::new(status).context("ADS stream"),
        };
        if let Err(e) = handle(shared, idx, state, &mut out, response).await {
            return e;
        }
    }
}

/// ACKs one response, records what the coordinator watches, and sends the follow-up
/// subscriptions.
async fn handle(
    shared: &Shared,
    idx: usize,
    state: &mut ClientState,
    out: &mut Sender,
    r: DiscoveryResponse,
) -> anyhow::Result<()> {
    let Some(t) = TYPES.iter().position(|u| *u == r.type_url) else {
        return Ok(());
    };
    let bytes: usize = r.resources.iter().map(|a| a.value.len()).sum();
    shared.traffic.responses[t].fetch_add(1, Ordering::Relaxed);
    shared.traffic.bytes[t].fetch_add(bytes as u64, Ordering::Relaxed);
    let hit = probe_hit(shared, t, &r);
    let ts = &mut state.types[t];
    (ts.version, ts.nonce, ts.pending, ts.acked) =
        (r.version_info.clone(), r.nonce.clone(), false, true);
    out.request(state, t).await?;
    let acked_at = Instant::now();
    let report = &shared.clients[idx];
    if let Some(id) = hit {
        *report.hit.lock() = Some((id, acked_at));
    }
    {
        let mut s = report.stream.lock();
        s.last_ack = Some(acked_at);
        if t == CDS {
            s.clusters = r.resources.len();
            s.min_clusters = Some(s.min_clusters.map_or(s.clusters, |m| m.min(s.clusters)));
        }
    }
    follow_up(shared, state, out, t, &r).await?;
    if is_synced(state) {
        let now = Instant::now();
        let mut s = report.stream.lock();
        s.synced.get_or_insert(now);
        if s.clusters >= shared.full_clusters {
            s.complete.get_or_insert(now);
        }
    }
    Ok(())
}

/// The subscriptions Envoy sends after a response of type `t`.
async fn follow_up(
    shared: &Shared,
    state: &mut ClientState,
    out: &mut Sender,
    t: usize,
    r: &DiscoveryResponse,
) -> anyhow::Result<()> {
    match t {
        CDS => {
            let names = shared.intern(lite::eds_names(&r.resources));
            if resubscribe(&mut state.types[EDS], names) {
                out.request(state, EDS).await?;
            }
            if state.types[EDS].names.is_empty() && !state.types[LDS].requested {
                out.request(state, LDS).await?;
            }
        }
        EDS if !state.types[LDS].requested => out.request(state, LDS).await?,
        LDS => {
            let names = Arc::new(lite::rds_names(&r.resources));
            if resubscribe(&mut state.types[RDS], names) {
                out.request(state, RDS).await?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Takes `names` as the type's subscription; whether a request must go out for it.
fn resubscribe(ts: &mut TypeState, names: Arc<Vec<String>>) -> bool {
    let changed = *ts.names != *names;
    ts.names = names;
    let needed = (changed || !ts.requested) && !ts.names.is_empty();
    if needed {
        ts.pending = true;
    }
    needed
}

/// Every type with something to wait for has been ACKed on this stream, nothing pending.
fn is_synced(state: &ClientState) -> bool {
    let [cds, eds, lds, rds] = &state.types;
    let done = |t: &TypeState| t.acked && !t.pending;
    done(cds)
        && done(lds)
        && (eds.names.is_empty() || done(eds))
        && (rds.names.is_empty() || done(rds))
}

/// The id of the active probe if this response carries its change.
fn probe_hit(shared: &Shared, t: usize, r: &DiscoveryResponse) -> Option<u64> {
    let probe = shared.probe.read().clone()?;
    let found = match &probe.kind {
        ProbeKind::Endpoints { cluster, marker } if t == EDS => {
            lite::endpoints_mention(&r.resources, cluster, marker)
        }
        ProbeKind::Route { domain, marker } if t == RDS => {
            lite::route_mentions(&r.resources, domain, marker)
        }
        _ => false,
    };
    found.then_some(probe.id)
}

/// The request half of a stream: the node goes on the first request only, as Envoy's
/// `set_node_on_first_message_only` does.
struct Sender {
    tx: mpsc::Sender<DiscoveryRequest>,
    node: Option<Node>,
}

impl Sender {
    /// Sends type `t`'s request: the subscription with the last version and nonce (an ACK
    /// right after a response, a (re)subscription otherwise).
    async fn request(&mut self, state: &mut ClientState, t: usize) -> anyhow::Result<()> {
        let ts = &mut state.types[t];
        ts.requested = true;
        let request = DiscoveryRequest {
            version_info: ts.version.clone(),
            node: self.node.take(),
            resource_names: if t == CDS || t == LDS {
                Vec::new()
            } else {
                (*ts.names).clone()
            },
            type_url: TYPES[t].to_owned(),
            response_nonce: ts.nonce.clone(),
            ..DiscoveryRequest::default()
        };
        self.tx
            .send(request)
            .await
            .map_err(|_| anyhow::anyhow!("request stream closed"))
    }
}

/// Jittered exponential backoff: 50 ms doubling to 1 s, each delay drawn from [d/2, d].
struct Backoff {
    seed: u64,
    delay: Duration,
}

impl Backoff {
    const BASE: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(1);

    fn new(seed: u64) -> Self {
        Self {
            seed: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            delay: Self::BASE,
        }
    }

    fn reset(&mut self) {
        self.delay = Self::BASE;
    }

    fn next(&mut self) -> Duration {
        // xorshift64: deterministic per client, good enough to spread reconnects.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let half = self.delay / 2;
        let jitter = half.mul_f64((self.seed % 1_000) as f64 / 1_000.0);
        let delay = half + jitter;
        self.delay = (self.delay * 2).min(Self::MAX);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_and_resets() {
        let mut b = Backoff::new(7);
        let first = b.next();
        assert!(first >= Duration::from_millis(25) && first <= Duration::from_millis(50));
        for _ in 0..10 {
            assert!(b.next() <= Backoff::MAX);
        }
        b.reset();
        assert!(b.next() <= Duration::from_millis(50));
    }

    #[test]
    fn synced_needs_every_subscribed_type_acked() {
        let mut s = ClientState::default();
        assert!(!is_synced(&s));
        for t in &mut s.types {
            t.acked = true;
        }
        assert!(is_synced(&s));
        assert!(resubscribe(&mut s.types[EDS], Arc::new(vec!["a".into()])));
        assert!(!is_synced(&s));
        s.types[EDS].pending = false;
        assert!(is_synced(&s));
        assert!(!resubscribe(&mut s.types[RDS], Arc::new(vec![])));
    }
}
