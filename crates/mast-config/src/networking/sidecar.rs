//! `Sidecar` (networking.istio.io v1alpha3/v1beta1/v1): the spec types, field for field as
//! Istio's `sidecar.proto`. Owns the ingress and egress listeners, the outbound traffic
//! policy, the ingress TLS settings ([`ServerTlsSettings`]) and [`SidecarWorkloadSelector`]
//! (which selects by `labels`, unlike other kinds' `matchLabels`). Connection pools are
//! the `DestinationRule` type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::destination_rule::{ConnectionPoolSettings, PortSelector};
use super::gateway::ServerTlsSettings;

/// The spec of a `Sidecar`: what a workload's proxy listens on and which services it sees.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sidecar {
    /// The workloads of the namespace it applies to; all of them when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<SidecarWorkloadSelector>,
    /// Listeners for inbound traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<IngressListener>,
    /// Listeners for outbound traffic and the services each exposes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<EgressListener>,
    /// Connection pool for every inbound port unless a listener sets its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_connection_pool: Option<ConnectionPoolSettings>,
    /// What to do with outbound traffic to unknown destinations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
}

/// Istio's `networking.v1alpha3.WorkloadSelector`: selects by `labels`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SidecarWorkloadSelector {
    /// Labels a workload must carry, all of them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// An inbound listener (Istio's `IstioIngressListener`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressListener {
    /// The port the listener accepts on. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<SidecarPort>,
    /// IP address to bind to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// How traffic reaches the listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_mode: Option<CaptureMode>,
    /// Where traffic goes: `127.0.0.1:PORT`, `0.0.0.0:PORT`, `[::1]:PORT`, `[::]:PORT`
    /// or `unix:///path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_endpoint: Option<String>,
    /// TLS termination for traffic from outside the mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    /// Connection pool for this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
}

/// An outbound listener (Istio's `IstioEgressListener`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressListener {
    /// The port; unset makes this the catch-all listener (allowed once, last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<SidecarPort>,
    /// IP address or `unix://` socket to bind to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// How traffic reaches the listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_mode: Option<CaptureMode>,
    /// Services exposed, as `namespace/dnsName` (`./*`, `istio-system/*`, `*/foo.com`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// Istio's `SidecarPort`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SidecarPort {
    /// Port number; 0 on egress means a Unix domain socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<i64>,
    /// Protocol (`HTTP`, `HTTP2`, `GRPC`, `TCP`, `TLS`, `HTTPS`, …); sniffed when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port name (a DNS label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Deprecated and ignored by sidecars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<i64>,
}

impl SidecarPort {
    /// The port number, 0 when unset.
    pub fn number(&self) -> i64 {
        self.number.unwrap_or(0)
    }

    /// The protocol, empty when unset.
    pub fn protocol(&self) -> &str {
        self.protocol.as_deref().unwrap_or("")
    }
}

/// How traffic is captured into a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaptureMode {
    /// The environment's default.
    #[default]
    Default,
    /// Redirected by iptables.
    Iptables,
    /// Not captured: the application addresses the listener directly.
    None,
}

/// The outbound traffic policy.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutboundTrafficPolicy {
    /// `REGISTRY_ONLY` (the proto's zero value, so the mode when a policy omits it) or `ALLOW_ANY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<OutboundTrafficMode>,
    /// Where `ALLOW_ANY` traffic to unknown destinations is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_proxy: Option<EgressProxy>,
}

/// Outbound traffic modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundTrafficMode {
    /// Only services in the registry are reachable.
    #[default]
    RegistryOnly,
    /// Unknown destinations pass through.
    AllowAny,
}

/// The egress proxy destination (Istio's `Destination`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressProxy {
    /// Service host (an FQDN). Required.
    #[serde(default)]
    pub host: String,
    /// Subset of the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// Port of the service. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}
