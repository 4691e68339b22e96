//! One consistent read of everything the API answers from: the traffic view, the mesh
//! snapshot, the connected proxies, the workload inventory and the graph built from them.

use std::collections::BTreeMap;
use std::sync::Arc;

use mast_model::MeshSnapshot;
use mast_xds_server::ProxyStatus;

use crate::Dashboard;
use crate::graph::{self, Edge, Graph, Health, Node, WorkloadInfo};
use crate::scrape::Traffic;

/// The inputs and the graph, read once per request.
pub struct View {
    /// The traffic view.
    pub traffic: Arc<Traffic>,
    /// The mesh snapshot.
    pub snapshot: Arc<MeshSnapshot>,
    /// The connected proxies.
    pub status: Vec<ProxyStatus>,
    /// Every workload, by (namespace, name).
    pub workloads: BTreeMap<(String, String), WorkloadInfo>,
    /// The graph.
    pub graph: Graph,
}

impl View {
    /// Reads the dashboard's sources now.
    pub fn of(d: &Dashboard) -> Self {
        let snapshot = d.sources().snapshots.borrow().clone();
        Self::from_parts(d.telemetry().current(), snapshot, d.sources().xds.status())
    }

    /// Builds the view from its inputs.
    pub fn from_parts(
        traffic: Arc<Traffic>,
        snapshot: Arc<MeshSnapshot>,
        status: Vec<ProxyStatus>,
    ) -> Self {
        let workloads = graph::inventory(&snapshot, &status);
        let graph = graph::build(&traffic, &snapshot, &workloads);
        Self {
            traffic,
            snapshot,
            status,
            workloads,
            graph,
        }
    }

    /// The node `id`, if the graph has it.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.graph.nodes.iter().find(|n| n.id == id)
    }

    /// The edges into node `id`.
    pub fn inbound(&self, id: &str) -> Vec<Edge> {
        self.graph
            .edges
            .iter()
            .filter(|e| e.target == id)
            .cloned()
            .collect()
    }

    /// The edges out of node `id`.
    pub fn outbound(&self, id: &str) -> Vec<Edge> {
        self.graph
            .edges
            .iter()
            .filter(|e| e.source == id)
            .cloned()
            .collect()
    }

    /// Inbound requests per second, their error rate and the health of node `id`.
    pub fn rates(&self, id: &str) -> (f64, f64, Health) {
        let inbound: Vec<&Edge> = self
            .graph
            .edges
            .iter()
            .filter(|e| e.target == id && e.protocol != "tcp")
            .collect();
        // Folds from +0.0 (an empty f64 sum is -0.0, which JSON would show).
        let rps = inbound.iter().fold(0.0, |sum, e| sum + e.rps);
        let errors = inbound
            .iter()
            .fold(0.0, |sum, e| sum + e.rps * e.error_rate);
        let error_rate = if rps > 0.0 { errors / rps } else { 0.0 };
        let health = self.node(id).map_or(Health::Idle, |n| n.health);
        (rps, error_rate, health)
    }
}
