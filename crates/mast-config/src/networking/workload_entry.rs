//! `WorkloadEntry` (networking.istio.io v1alpha3/v1beta1/v1): the spec types, field for field
//! as Istio's `networking/v1alpha3/workload_entry.proto`. The same message describes a
//! `ServiceEntry`'s inline `endpoints`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The spec of a `WorkloadEntry`: a workload outside Kubernetes (a VM, a bare-metal host)
/// or one endpoint of a `ServiceEntry`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Not a spec field: `false` when the object has health checks on (the
    /// [`HEALTH_CHECKS_ANNOTATION`] is present) and its `status.conditions` do not say
    /// `Healthy: "True"`. Istio sends such an entry to no proxy; `true` otherwise (and for
    /// a `ServiceEntry`'s inline endpoints).
    #[serde(skip, default = "healthy")]
    pub healthy: bool,
}

/// The annotation that turns health checks on for a `WorkloadEntry` (Istio's
/// `status.WorkloadEntryHealthCheckAnnotation`): with it, the entry serves only while its
/// `status.conditions` hold `{type: Healthy, status: "True"}`.
pub const HEALTH_CHECKS_ANNOTATION: &str = "proxy.istio.io/health-checks-enabled";

fn healthy() -> bool {
    true
}

impl Default for WorkloadEntry {
    fn default() -> Self {
        Self {
            address: None,
            ports: BTreeMap::new(),
            labels: BTreeMap::new(),
            network: None,
            locality: None,
            weight: None,
            service_account: None,
            healthy: true,
        }
    }
}

impl WorkloadEntry {
    /// Whether a `WorkloadEntry` object (the whole document: `metadata`, `status`) is
    /// healthy as Istio reads it: always without the [`HEALTH_CHECKS_ANNOTATION`] (whatever
    /// its value), otherwise only with a `Healthy` condition whose status is `"True"`.
    pub fn object_is_healthy(object: &serde_json::Value) -> bool {
        let checked = object
            .pointer("/metadata/annotations")
            .and_then(serde_json::Value::as_object)
            .is_some_and(|a| a.contains_key(HEALTH_CHECKS_ANNOTATION));
        if !checked {
            return true;
        }
        object
            .pointer("/status/conditions")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c.get("type").and_then(serde_json::Value::as_str) == Some("Healthy"))
            .and_then(|c| c.get("status").and_then(serde_json::Value::as_str))
            == Some("True")
    }

    /// The address, empty when unset.
    pub fn address(&self) -> &str {
        self.address.as_deref().unwrap_or("")
    }
}
