//! The fleet of benchmark xDS clients: what every client reports back (its stream's sync
//! state, whether it has seen the change being probed, its errors), the probe itself, and
//! the bounded waits the benchmark phases use.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ads;

/// How often the waits look at the clients.
const POLL: Duration = Duration::from_millis(5);

/// The change a probe waits for.
#[derive(Debug, Clone)]
pub enum ProbeKind {
    /// An EDS response whose load assignment for `cluster` mentions `marker`.
    Endpoints {
        /// The EDS resource (cluster) name.
        cluster: String,
        /// Bytes only the new version contains (the new address).
        marker: Vec<u8>,
    },
    /// An RDS response with a virtual host for `domain` that mentions `marker`.
    Route {
        /// The service's host name.
        domain: String,
        /// Bytes only the new version contains (the new header value).
        marker: Vec<u8>,
    },
}

/// A change every client is expected to receive and ACK.
#[derive(Debug)]
pub struct Probe {
    /// Tells probes apart.
    pub id: u64,
    /// What to look for.
    pub kind: ProbeKind,
}

/// One client's current stream.
#[derive(Debug, Default, Clone)]
pub struct StreamInfo {
    /// Streams opened so far (1 for the first).
    pub generation: u32,
    /// When this stream was opened.
    pub opened: Option<Instant>,
    /// When every subscribed type was first ACKed on this stream with nothing pending.
    pub synced: Option<Instant>,
    /// When it was first synced holding at least [`Shared::full_clusters`] clusters (the
    /// whole mesh rather than a partial or empty configuration).
    pub complete: Option<Instant>,
    /// The last ACK sent on this stream.
    pub last_ack: Option<Instant>,
    /// Clusters in the last CDS response.
    pub clusters: usize,
    /// Fewest clusters any CDS response on this stream carried.
    pub min_clusters: Option<usize>,
}

/// What one client reports.
#[derive(Debug, Default)]
pub struct ClientReport {
    /// Its current stream.
    pub stream: Mutex<StreamInfo>,
    /// The last probe it saw and when it ACKed the response carrying it.
    pub hit: Mutex<Option<(u64, Instant)>>,
    /// Streams that failed or ended.
    pub errors: AtomicU32,
    /// The last failure.
    pub last_error: Mutex<String>,
}

/// Responses received per type (CDS, EDS, LDS, RDS) and their resource bytes.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Responses per type.
    pub responses: [AtomicU64; 4],
    /// Bytes of resources per type.
    pub bytes: [AtomicU64; 4],
}

/// State shared by the coordinator and every client task.
#[derive(Debug)]
pub struct Shared {
    /// mastd's xDS address (the same across restarts).
    pub addr: SocketAddr,
    /// One report per client.
    pub clients: Vec<ClientReport>,
    /// What the clients look for now.
    pub probe: RwLock<Option<Arc<Probe>>>,
    /// The last EDS name list seen, shared between clients that subscribe to the same list.
    pub eds_names: Mutex<Arc<Vec<String>>>,
    /// Responses and bytes received.
    pub traffic: Traffic,
    /// Clusters a client must hold to count as having the whole mesh.
    pub full_clusters: usize,
    /// Stream failures by message (the first 300 characters), over all clients.
    pub error_kinds: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    /// `names`, or an equal list another client already holds (saves a copy per client).
    pub fn intern(&self, names: Vec<String>) -> Arc<Vec<String>> {
        let mut last = self.eds_names.lock();
        if **last != names {
            *last = Arc::new(names);
        }
        last.clone()
    }
}

/// The running clients.
pub struct Fleet {
    /// Shared with the tasks.
    pub shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    next_probe: u64,
}

impl Fleet {
    /// Starts one task per node, all connecting to `addr` at once; a client holding
    /// `full_clusters` clusters has the whole mesh.
    pub fn start(addr: SocketAddr, nodes: Vec<Node>, full_clusters: usize) -> Self {
        let shared = Arc::new(Shared {
            addr,
            clients: nodes.iter().map(|_| ClientReport::default()).collect(),
            probe: RwLock::new(None),
            eds_names: Mutex::new(Arc::new(Vec::new())),
            traffic: Traffic::default(),
            full_clusters,
            error_kinds: Mutex::new(BTreeMap::new()),
        });
        let (stop, stop_rx) = watch::channel(false);
        let tasks = nodes
            .into_iter()
            .enumerate()
            .map(|(i, node)| {
                tokio::spawn(ads::run_client(shared.clone(), i, node, stop_rx.clone()))
            })
            .collect();
        Self {
            shared,
            stop,
            tasks,
            next_probe: 0,
        }
    }

    /// Every client's stream state.
    pub fn streams(&self) -> Vec<StreamInfo> {
        self.shared
            .clients
            .iter()
            .map(|c| c.stream.lock().clone())
            .collect()
    }

    /// Waits until `done` holds for every client's stream, or `timeout`; returns the streams
    /// as they were at the end.
    pub async fn wait_streams(
        &self,
        timeout: Duration,
        done: impl Fn(usize, &StreamInfo) -> bool,
    ) -> Vec<StreamInfo> {
        let deadline = Instant::now() + timeout;
        loop {
            let streams = self.streams();
            if streams.iter().enumerate().all(|(i, s)| done(i, s)) || Instant::now() >= deadline {
                return streams;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Makes every client look for `kind` from now on; returns the probe's id.
    pub fn set_probe(&mut self, kind: ProbeKind) -> u64 {
        self.next_probe += 1;
        *self.shared.probe.write() = Some(Arc::new(Probe {
            id: self.next_probe,
            kind,
        }));
        self.next_probe
    }

    /// Stops looking.
    pub fn clear_probe(&self) {
        *self.shared.probe.write() = None;
    }

    /// When each client ACKed the response carrying probe `id`, if it has.
    pub fn probe_hits(&self, id: u64) -> Vec<Option<Instant>> {
        self.shared
            .clients
            .iter()
            .map(|c| c.hit.lock().filter(|(p, _)| *p == id).map(|(_, at)| at))
            .collect()
    }

    /// Waits until every client has ACKed probe `id`, or `timeout`.
    pub async fn wait_probe(&self, id: u64, timeout: Duration) -> Vec<Option<Instant>> {
        let deadline = Instant::now() + timeout;
        loop {
            let hits = self.probe_hits(id);
            if hits.iter().all(Option::is_some) || Instant::now() >= deadline {
                return hits;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stream failures so far, over all clients, and the most frequent messages with their
    /// counts.
    pub fn errors(&self) -> (u64, Vec<(String, u64)>) {
        let total = self
            .shared
            .clients
            .iter()
            .map(|c| u64::from(c.errors.load(Ordering::Relaxed)))
            .sum();
        let mut kinds: Vec<(String, u64)> = self
            .shared
            .error_kinds
            .lock()
            .iter()
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        kinds.sort_by_key(|k| std::cmp::Reverse(k.1));
        kinds.truncate(4);
        (total, kinds)
    }

    /// Responses and resource bytes received per type so far.
    pub fn traffic(&self) -> [(u64, u64); 4] {
        let t = &self.shared.traffic;
        std::array::from_fn(|i| {
            (
                t.responses[i].load(Ordering::Relaxed),
                t.bytes[i].load(Ordering::Relaxed),
            )
        })
    }

    /// Stops every client and waits (bounded) for the tasks to end.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
    }
}

/// Client `i`: a ports-mode sidecar `client-i` in namespace `nsMM`, with Istio's metadata.
pub fn client_node(i: usize, namespaces: usize) -> Node {
    let ns = format!("ns{:02}", i % namespaces.max(1));
    let workload = format!("client-{i}");
    let text = |s: &str| Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    };
    let labels = Struct {
        fields: [
            ("app".to_owned(), text(&workload)),
            ("version".to_owned(), text("v1")),
        ]
        .into(),
    };
    let outbound = (20_000 + i % 40_000).to_string();
    let fields = [
        ("NAMESPACE", text(&ns)),
        ("WORKLOAD_NAME", text(&workload)),
        ("SERVICE_ACCOUNT", text("bench-client")),
        ("CLUSTER_ID", text("Kubernetes")),
        ("MESH_ID", text("cluster.local")),
        ("MAST_CAPTURE_MODE", text("ports")),
        ("MAST_OUTBOUND_PORT", text(&outbound)),
        (
            "LABELS",
            Value {
                kind: Some(Kind::StructValue(labels)),
            },
        ),
    ];
    Node {
        id: format!("sidecar~127.0.0.1~{workload}.{ns}~{ns}.svc.cluster.local"),
        cluster: format!("{workload}.{ns}"),
        metadata: Some(Struct {
            fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }),
        user_agent_name: "mast-controlplane-bench".into(),
        ..Node::default()
    }
}
