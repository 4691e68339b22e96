//! The workloads the dashboard knows: every connected proxy's workload and every workload
//! behind a service's endpoints, with labels, service account, proxies and services.

use std::collections::{BTreeMap, BTreeSet};

use mast_model::MeshSnapshot;
use mast_xds_server::ProxyStatus;

use crate::scrape::{ProxyKind, Traffic};

/// One workload.
#[derive(Debug, Clone, Default)]
pub struct WorkloadInfo {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its labels (the proxy's node metadata first, else the endpoints').
    pub labels: BTreeMap<String, String>,
    /// Its service account (empty when unknown).
    pub service_account: String,
    /// Its connected proxies.
    pub proxies: Vec<ProxyStatus>,
    /// The hosts of the services it is an endpoint of.
    pub services: BTreeSet<String>,
}

impl WorkloadInfo {
    /// The `app` label.
    pub fn app(&self) -> Option<&str> {
        self.labels.get("app").map(String::as_str)
    }

    /// The `version` label.
    pub fn version(&self) -> Option<&str> {
        self.labels.get("version").map(String::as_str)
    }

    /// What its proxy is: from its metrics when scraped, else from its reported version
    /// (mast-proxy reports Mast's version, Envoy its own).
    pub fn proxy_kind(&self, traffic: &Traffic) -> Option<ProxyKind> {
        traffic
            .proxy_kind(&self.namespace, &self.name)
            .or_else(|| self.proxies.first().map(kind_from_version))
    }

    /// Takes `labels` and `service_account` where still unknown (the first source wins).
    fn fill(&mut self, labels: &BTreeMap<String, String>, service_account: &str) {
        if self.labels.is_empty() {
            self.labels.clone_from(labels);
        }
        if self.service_account.is_empty() {
            service_account.clone_into(&mut self.service_account);
        }
    }
}

/// mast-proxy reports Mast's own version as its user agent version; anything else is Envoy.
pub fn kind_from_version(status: &ProxyStatus) -> ProxyKind {
    if status.proxy.proxy_version == mast_core::VERSION {
        ProxyKind::MastProxy
    } else {
        ProxyKind::Envoy
    }
}

/// Every workload, by (namespace, name).
pub fn inventory(
    snapshot: &MeshSnapshot,
    status: &[ProxyStatus],
) -> BTreeMap<(String, String), WorkloadInfo> {
    let mut out: BTreeMap<(String, String), WorkloadInfo> = BTreeMap::new();
    for s in status {
        let p = &s.proxy;
        if p.workload.is_empty() {
            continue;
        }
        let w = entry(&mut out, &p.namespace, &p.workload);
        w.fill(&p.labels, &p.service_account);
        w.proxies.push(s.clone());
    }
    for svc in snapshot.services() {
        for ep in svc.endpoints.values().flatten() {
            if ep.workload.is_empty() {
                continue;
            }
            let w = entry(&mut out, &ep.namespace, &ep.workload);
            w.fill(&ep.labels, &ep.service_account);
            w.services.insert(svc.hostname.to_string());
        }
    }
    out
}

fn entry<'a>(
    map: &'a mut BTreeMap<(String, String), WorkloadInfo>,
    namespace: &str,
    name: &str,
) -> &'a mut WorkloadInfo {
    map.entry((namespace.to_owned(), name.to_owned()))
        .or_insert_with(|| WorkloadInfo {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            ..WorkloadInfo::default()
        })
}
