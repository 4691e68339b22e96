//! `ServiceEntry` (networking.istio.io v1alpha3/v1beta1/v1): the spec types, field for field
//! as Istio's `networking/v1alpha3/service_entry.proto` — hosts, ports, location, resolution
//! and endpoints (inline `WorkloadEntry` specs or a workload selector).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::workload_entry::WorkloadEntry;

/// The spec of a `ServiceEntry`: adds a service (usually outside the mesh) to Istio's
/// service registry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceEntry {
    /// Host names of the service; a wildcard prefix is allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Virtual IPs or CIDR blocks of the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// The service's ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// Inside or outside the mesh; `MESH_EXTERNAL` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// How endpoints are found; `NONE` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// Endpoints given inline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<WorkloadEntry>,
    /// Selects pods and `WorkloadEntry`s as endpoints (instead of `endpoints`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
    /// Namespaces the service is visible to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// Subject alternative names to verify in the server's certificate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
}

impl ServiceEntry {
    /// The location, with Istio's default (`MESH_EXTERNAL`) when unset.
    pub fn location(&self) -> Location {
        self.location.unwrap_or_default()
    }

    /// The resolution, with Istio's default (`NONE`) when unset.
    pub fn resolution(&self) -> Resolution {
        self.resolution.unwrap_or_default()
    }
}

/// A port of a `ServiceEntry`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    /// The port number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<i64>,
    /// The protocol (HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP, TLS, …); sniffed when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The port's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The port on the endpoints; `number` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<i64>,
}

/// Selects workloads by their labels.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    /// Labels the workloads must all carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Whether a service is part of the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Location {
    /// Outside the mesh (external APIs).
    #[default]
    MeshExternal,
    /// Part of the mesh (VMs added to it, say).
    MeshInternal,
}

/// How the proxy resolves the endpoints of a `ServiceEntry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Resolution {
    /// Connections are already resolved; forward to the original destination.
    #[default]
    None,
    /// Use the IP (or Unix socket) addresses of the endpoints.
    Static,
    /// Resolve the hosts (or endpoint names) with DNS; balance over all results.
    Dns,
    /// Resolve with DNS; use the first address for new connections.
    DnsRoundRobin,
    /// Resolve the Host header or SNI of each request (wildcard hosts, `MESH_EXTERNAL`).
    DynamicDns,
}

impl Resolution {
    /// The name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::None => "NONE",
            Resolution::Static => "STATIC",
            Resolution::Dns => "DNS",
            Resolution::DnsRoundRobin => "DNS_ROUND_ROBIN",
            Resolution::DynamicDns => "DYNAMIC_DNS",
        }
    }
}
