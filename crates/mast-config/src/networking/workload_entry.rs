//! `WorkloadEntry` (networking.istio.io v1alpha3/v1beta1/v1): the spec types, field for field
//! as Istio's `networking/v1alpha3/workload_entry.proto`. The same message describes a
//! `ServiceEntry`'s inline `endpoints`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The spec of a `WorkloadEntry`: a workload outside Kubernetes (a VM, a bare-metal host)
/// or one endpoint of a `ServiceEntry`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEntry {
    /// The address: an IP, a host name (DNS resolution) or `unix:///path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Port name to the port number on this endpoint.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, i64>,
    /// Labels of the workload.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The network the endpoint is in (multi-network meshes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// The locality, `region/zone/subzone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// The load-balancing weight relative to other endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    /// The service account the workload runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}

impl WorkloadEntry {
    /// The address, empty when unset.
    pub fn address(&self) -> &str {
        self.address.as_deref().unwrap_or("")
    }
}
