//! The service graph: nodes (workloads, services, apps) and edges with rates, errors,
//! latency and mTLS state, computed from Istio's standard metrics (or the Envoy stats
//! standing in for them). Pure: a [`Traffic`] view, the mesh snapshot and the workload
//! inventory in, a [`Graph`] out (the `/api/graph` body).
//!
//! Kiali's versioned app graph: client workload → service → server workloads; workloads with
//! `app` and `version` labels sit in one app node per app (`parent`); services with
//! endpoints are shown without traffic; clients nothing is known about are one `unknown`
//! node. See [`edges`] for which series make which edges.

pub mod edges;
pub mod inventory;
pub mod quantile;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use mast_model::MeshSnapshot;
use serde::Serialize;

use crate::scrape::traffic::{UNKNOWN, known};
use crate::scrape::{ProxyKind, Traffic};
use edges::{Acc, EdgeSet, UNKNOWN_ID, app_id, service_id, workload_id};
pub use inventory::{WorkloadInfo, inventory};
use quantile::histogram_quantile;

/// The `/api/graph` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Graph {
    /// When the traffic was measured (Unix milliseconds).
    pub timestamp: u64,
    /// The rate window in seconds.
    pub window_seconds: u64,
    /// `proxies` or `prometheus`.
    pub source: &'static str,
    /// Every node, by id.
    pub nodes: Vec<Node>,
    /// Every edge with traffic, by id.
    pub edges: Vec<Edge>,
}

/// What a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum NodeKind {
    /// A workload (its proxy's node, or an endpoint's).
    Workload,
    /// A service host.
    Service,
    /// The box around an app's versioned workloads.
    App,
    /// Clients (or destinations) nothing is known about.
    Unknown,
}

/// How a node is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Health {
    /// No traffic.
    Idle,
    /// Inbound error rate below 1 %.
    Healthy,
    /// Inbound error rate of 1 % or more on some edge.
    Degraded,
    /// Inbound error rate of 20 % or more on some edge.
    Failing,
}

/// One node.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// `workload:<ns>/<name>`, `service:<host>`, `app:<ns>/<app>` or `unknown`.
    pub id: String,
    /// What it stands for.
    pub kind: NodeKind,
    /// The workload, service or app name.
    pub name: String,
    /// Its namespace (empty for `unknown`).
    pub namespace: String,
    /// The `app` label.
    pub app: Option<String>,
    /// The `version` label.
    pub version: Option<String>,
    /// The app node it belongs to.
    pub parent: Option<String>,
    /// How it is doing.
    pub health: Health,
    /// Its proxy (workloads only).
    pub proxy: Option<ProxyKind>,
    /// Inbound requests per second.
    pub rps: f64,
}

impl Node {
    /// An idle node without labels, parent or proxy.
    fn new(id: String, kind: NodeKind, name: String, namespace: String) -> Self {
        Self {
            id,
            kind,
            name,
            namespace,
            app: None,
            version: None,
            parent: None,
            health: Health::Idle,
            proxy: None,
            rps: 0.0,
        }
    }
}

/// One edge.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Edge {
    /// `<source>-><target>:<protocol>`.
    pub id: String,
    /// The source node id.
    pub source: String,
    /// The target node id.
    pub target: String,
    /// `http`, `grpc` or `tcp`.
    pub protocol: &'static str,
    /// Requests per second.
    pub rps: f64,
    /// The share of requests that failed (5xx or a response flag), 0..1.
    pub error_rate: f64,
    /// Median latency (ms).
    pub p50_ms: Option<f64>,
    /// 99th percentile latency (ms).
    pub p99_ms: Option<f64>,
    /// `mutual_tls`, `none` or `unknown`.
    pub mtls: &'static str,
    /// Requests per second by response code.
    pub response_codes: BTreeMap<String, f64>,
    /// Bytes per second (TCP).
    pub bytes_per_second: Option<f64>,
}

/// Builds the graph.
pub fn build(
    traffic: &Traffic,
    snapshot: &MeshSnapshot,
    workloads: &BTreeMap<(String, String), WorkloadInfo>,
) -> Graph {
    let set = EdgeSet::build(traffic, snapshot);
    let edges: Vec<Edge> = set
        .edges
        .iter()
        .map(|((from, to, protocol), acc)| edge(from, to, protocol.as_str(), acc))
        .filter(|e| e.rps > 0.0 || e.bytes_per_second.is_some_and(|b| b > 0.0))
        .collect();
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    for w in workloads.values() {
        let n = workload_node(&w.namespace, &w.name, &w.labels, w.proxy_kind(traffic));
        nodes.insert(n.id.clone(), n);
    }
    for svc in snapshot.services() {
        if svc.endpoints.values().any(|e| !e.is_empty()) {
            let n = service_node(&svc.hostname.to_string(), snapshot);
            nodes.insert(n.id.clone(), n);
        }
    }
    for e in &edges {
        for id in [&e.source, &e.target] {
            if !nodes.contains_key(id) {
                let n = node_for(id, &set, snapshot, traffic);
                nodes.insert(id.clone(), n);
            }
        }
    }
    finish_nodes(&mut nodes, &edges);
    Graph {
        timestamp: traffic.timestamp,
        window_seconds: traffic.window_seconds,
        source: traffic.source.as_str(),
        nodes: nodes.into_values().collect(),
        edges,
    }
}

fn edge(from: &str, to: &str, protocol: &'static str, acc: &Acc) -> Edge {
    let buckets: Vec<(f64, f64)> = acc
        .buckets
        .iter()
        .map(|(le, v)| (f64::from_bits(*le), *v))
        .collect();
    let tcp = protocol == "tcp";
    Edge {
        id: format!("{from}->{to}:{protocol}"),
        source: from.to_owned(),
        target: to.to_owned(),
        protocol,
        rps: acc.rps,
        error_rate: if acc.rps > 0.0 {
            (acc.errors / acc.rps).clamp(0.0, 1.0)
        } else {
            0.0
        },
        p50_ms: histogram_quantile(0.5, &buckets),
        p99_ms: histogram_quantile(0.99, &buckets),
        mtls: mtls(&acc.mtls),
        response_codes: acc
            .codes
            .iter()
            .filter(|(_, v)| **v > 0.0)
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
        bytes_per_second: tcp.then_some(acc.bytes),
    }
}

/// `mutual_tls` when all the traffic whose policy is known was mutual TLS, `none` when some
/// of it was plaintext, `unknown` when no side knew.
fn mtls(by_policy: &BTreeMap<String, f64>) -> &'static str {
    let seen = |p: &str| by_policy.get(p).is_some_and(|v| *v > 0.0);
    if seen("none") {
        "none"
    } else if seen("mutual_tls") {
        "mutual_tls"
    } else {
        UNKNOWN
    }
}

fn workload_node(
    namespace: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
    proxy: Option<ProxyKind>,
) -> Node {
    let app = labels.get("app").cloned();
    let version = labels.get("version").cloned();
    let parent = match (&app, &version) {
        (Some(a), Some(_)) => Some(app_id(namespace, a)),
        _ => None,
    };
    let id = workload_id(namespace, name);
    Node {
        app,
        version,
        parent,
        proxy,
        ..Node::new(
            id,
            NodeKind::Workload,
            name.to_owned(),
            namespace.to_owned(),
        )
    }
}

fn service_node(host: &str, snapshot: &MeshSnapshot) -> Node {
    let h = mast_core::Hostname::new_unchecked(host);
    let (name, namespace) = match snapshot.service(&h) {
        Some(s) => (s.name.clone(), s.namespace.clone()),
        None => {
            let mut parts = host.split('.');
            let name = parts.next().unwrap_or(host).to_owned();
            (name, parts.next().unwrap_or("").to_owned())
        }
    };
    Node::new(service_id(host), NodeKind::Service, name, namespace)
}

/// A node only traffic mentions: an unknown peer, a service without endpoints, or a
/// workload known only by its metrics labels.
fn node_for(id: &str, set: &EdgeSet<'_>, snapshot: &MeshSnapshot, traffic: &Traffic) -> Node {
    if let Some(host) = id.strip_prefix("service:") {
        return service_node(host, snapshot);
    }
    if let Some(p) = set.peers.get(id) {
        let mut labels = BTreeMap::new();
        for (k, v) in [("app", &p.app), ("version", &p.version)] {
            if known(v) {
                labels.insert(k.to_owned(), v.clone());
            }
        }
        let kind = traffic.proxy_kind(&p.namespace, &p.workload);
        return workload_node(&p.namespace, &p.workload, &labels, kind);
    }
    Node::new(
        UNKNOWN_ID.to_owned(),
        NodeKind::Unknown,
        UNKNOWN.to_owned(),
        String::new(),
    )
}

/// Rates, health and the app boxes.
fn finish_nodes(nodes: &mut BTreeMap<String, Node>, edges: &[Edge]) {
    for n in nodes.values_mut() {
        let touching = edges
            .iter()
            .filter(|e| e.source == n.id || e.target == n.id);
        let active = touching
            .clone()
            .any(|e| e.rps > 0.0 || e.bytes_per_second.unwrap_or(0.0) > 0.0);
        let inbound: Vec<&Edge> = edges.iter().filter(|e| e.target == n.id).collect();
        n.rps = inbound
            .iter()
            .filter(|e| e.protocol != "tcp")
            .fold(0.0, |sum, e| sum + e.rps);
        n.health = health(active, &inbound);
    }
    let mut apps: BTreeMap<String, Node> = BTreeMap::new();
    for n in nodes.values() {
        let (Some(parent), Some(app)) = (&n.parent, &n.app) else {
            continue;
        };
        let a = apps.entry(parent.clone()).or_insert_with(|| {
            let (name, namespace) = (app.clone(), n.namespace.clone());
            Node {
                app: Some(app.clone()),
                ..Node::new(parent.clone(), NodeKind::App, name, namespace)
            }
        });
        a.rps += n.rps;
        a.health = a.health.max(n.health);
    }
    nodes.extend(apps);
}

fn health(active: bool, inbound: &[&Edge]) -> Health {
    if !active {
        return Health::Idle;
    }
    let worst = inbound
        .iter()
        .filter(|e| e.rps > 0.0)
        .map(|e| e.error_rate)
        .fold(0.0, f64::max);
    if worst >= 0.2 {
        Health::Failing
    } else if worst >= 0.01 {
        Health::Degraded
    } else {
        Health::Healthy
    }
}
