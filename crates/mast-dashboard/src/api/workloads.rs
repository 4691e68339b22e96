//! `/api/workloads` and `/api/workloads/{namespace}/{name}`: every workload with its labels,
//! proxies (kind, version, admin address, per-type sync status, last NACK), health and
//! inbound rates; the detail adds the names of the listeners, clusters and routes last sent
//! to its proxy and its inbound and outbound edges.

use std::collections::BTreeMap;

use mast_xds_server::{ProxyStatus, short_type_name};
use serde::Serialize;

use super::view::View;
use crate::graph::edges::workload_id;
use crate::graph::inventory::kind_from_version;
use crate::graph::{Edge, Health, WorkloadInfo};

/// One proxy of a workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyJson {
    /// Its node id.
    pub node_id: String,
    /// `mast-proxy` or `envoy`.
    pub proxy: &'static str,
    /// The version it reports.
    pub version: String,
    /// Its admin address (`host:port`).
    pub admin_address: String,
    /// Sync status per type (`CDS`: `SYNCED`, …).
    pub sync: BTreeMap<String, String>,
    /// The last rejected update (`LDS: <error>`), if any.
    pub last_nack: Option<String>,
}

/// One entry of `/api/workloads`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadJson {
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The `app` label.
    pub app: Option<String>,
    /// The `version` label.
    pub version: Option<String>,
    /// Its service account.
    pub service_account: String,
    /// Its connected proxies.
    pub proxies: Vec<ProxyJson>,
    /// Its health.
    pub health: Health,
    /// Inbound requests per second.
    pub rps: f64,
    /// Inbound error rate (0..1).
    pub error_rate: f64,
}

/// Names of what was last sent to the workload's proxy.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyConfigJson {
    /// Listener names.
    pub listeners: Vec<String>,
    /// Cluster names.
    pub clusters: Vec<String>,
    /// Route configuration names.
    pub routes: Vec<String>,
}

/// The `/api/workloads/{namespace}/{name}` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadDetailJson {
    /// The list entry.
    #[serde(flatten)]
    pub workload: WorkloadJson,
    /// What its proxy was sent.
    pub config: ProxyConfigJson,
    /// Edges into it.
    pub inbound: Vec<Edge>,
    /// Edges out of it.
    pub outbound: Vec<Edge>,
}

fn proxy(status: &ProxyStatus, view: &View) -> ProxyJson {
    let kind = view
        .traffic
        .proxies
        .iter()
        .find(|p| p.node_id == status.node_id)
        .and_then(|p| p.kind)
        .unwrap_or_else(|| kind_from_version(status));
    let last_nack = status
        .types
        .iter()
        .filter_map(|(t, s)| s.last_nack.as_ref().map(|n| (short_type_name(t), n)))
        .max_by_key(|(_, n)| n.at)
        .map(|(t, n)| format!("{t}: {}", n.error));
    ProxyJson {
        node_id: status.node_id.clone(),
        proxy: kind.as_str(),
        version: status.proxy.proxy_version.clone(),
        admin_address: status.proxy.admin_address.clone(),
        sync: status
            .types
            .iter()
            .map(|(t, s)| (short_type_name(t).to_owned(), s.status.to_string()))
            .collect(),
        last_nack,
    }
}

fn workload(view: &View, w: &WorkloadInfo) -> WorkloadJson {
    let (rps, error_rate, health) = view.rates(&workload_id(&w.namespace, &w.name));
    WorkloadJson {
        name: w.name.clone(),
        namespace: w.namespace.clone(),
        labels: w.labels.clone(),
        app: w.app().map(str::to_owned),
        version: w.version().map(str::to_owned),
        service_account: w.service_account.clone(),
        proxies: w.proxies.iter().map(|p| proxy(p, view)).collect(),
        health,
        rps,
        error_rate,
    }
}

/// The `/api/workloads` body.
pub fn workloads(view: &View) -> Vec<WorkloadJson> {
    view.workloads.values().map(|w| workload(view, w)).collect()
}

/// The detail of one workload; `dump` gives the names of what was last generated for a node
/// id, per type URL.
pub fn detail(
    view: &View,
    namespace: &str,
    name: &str,
    dump: impl Fn(&str) -> Option<BTreeMap<String, Vec<String>>>,
) -> Option<WorkloadDetailJson> {
    let w = view
        .workloads
        .get(&(namespace.to_owned(), name.to_owned()))?;
    let mut config = ProxyConfigJson::default();
    if let Some(resources) = w.proxies.last().and_then(|p| dump(&p.node_id)) {
        for (type_url, names) in resources {
            match short_type_name(&type_url) {
                "LDS" => config.listeners = names,
                "CDS" => config.clusters = names,
                "RDS" => config.routes = names,
                _ => {}
            }
        }
    }
    let id = workload_id(namespace, name);
    Some(WorkloadDetailJson {
        workload: workload(view, w),
        config,
        inbound: view.inbound(&id),
        outbound: view.outbound(&id),
    })
}
