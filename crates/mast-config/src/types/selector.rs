//! Istio's shared selector messages (`istio.type.v1beta1`): [`WorkloadSelector`], which
//! DestinationRules and the three policy kinds use to pick workloads by labels,
//! [`PolicyTargetReference`], which policies use to attach to a Service or Gateway, and
//! [`PortSelector`], a port by number in routes and traffic policies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Selects the workloads (pods, VMs) a policy applies to by their labels.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    /// Labels a workload must all carry to be selected.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

/// Names the resource a policy attaches to (a Service, a ServiceEntry, a Gateway API
/// `Gateway` or `GatewayClass`), in place of a workload selector.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyTargetReference {
    /// API group of the target; empty (or absent) for the Kubernetes core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind of the target, such as `Service` or `Gateway`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Name of the target.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Namespace of the target; must be empty (cross-namespace references are not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl PolicyTargetReference {
    /// The API group with the core group spelt `""`.
    pub fn group(&self) -> &str {
        match self.group.as_deref() {
            None | Some("core") => "",
            Some(g) => g,
        }
    }
}

/// Istio's `PortSelector`: a port by number.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSelector {
    /// The port number (1–65535, checked by validation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<i64>,
}
