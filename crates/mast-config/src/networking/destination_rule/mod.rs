//! `DestinationRule` (networking.istio.io v1alpha3/v1beta1/v1): the spec types, field for
//! field as Istio's `destination_rule.proto`. Owns the rule, its subsets, traffic policies,
//! client TLS settings and [`WorkloadSelector`] (`matchLabels`), which other kinds reuse.
//! Load balancing lives in [`load_balancer`], connection pools and outlier detection in
//! [`connection_pool`]; both are re-exported here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::types::{PortSelector, WorkloadSelector};

pub mod connection_pool;
pub mod load_balancer;

pub use connection_pool::{
    ConnectionPoolSettings, H2UpgradePolicy, HttpSettings, OutlierDetection, TcpKeepalive,
    TcpSettings,
};
pub use load_balancer::{
    ConsistentHashLb, CookieAttribute, HttpCookie, LoadBalancerSettings, LocalityDistribute,
    LocalityFailover, LocalityLbSetting, Maglev, RingHash, SimpleLb, WarmupConfiguration,
};

/// The spec of a `DestinationRule`: policies applied to traffic for `host` after routing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationRule {
    /// The service the rule applies to (short name, FQDN or wildcard). Required.
    #[serde(default)]
    pub host: String,
    /// Policies for every port and subset unless overridden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
    /// Named sets of endpoints (versions) with their own policies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<Subset>,
    /// Namespaces the rule is visible to (`.`, `*` or names); empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// Restricts the rule to the workloads of its namespace with these labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
}

/// A named subset of a service's endpoints, selected by labels.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subset {
    /// The subset's name, used by routes (`destination.subset`). Required, a DNS label.
    #[serde(default)]
    pub name: String,
    /// Endpoint labels that select the subset.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Overrides of the rule-level policy for this subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
}

/// Traffic policy for a destination: load balancing, connection pool, outlier detection,
/// TLS, per-port overrides, tunnelling, PROXY protocol and retry budget.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficPolicy {
    /// Load balancer algorithm and locality settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection and request limits per upstream host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Ejection of unhealthy hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS towards the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
    /// Policies for single ports; they replace (not merge with) the settings above.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_level_settings: Vec<PortTrafficPolicy>,
    /// Tunnelling of TCP over HTTP CONNECT or POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelSettings>,
    /// Sending a PROXY protocol header upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Limit on concurrent retries relative to active requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<RetryBudget>,
}

/// A traffic policy for one port of the destination.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortTrafficPolicy {
    /// The port the policy applies to. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
    /// Load balancer algorithm and locality settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection and request limits per upstream host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Ejection of unhealthy hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS towards the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
}

/// Tunnelling of the downstream TCP connection to `targetHost:targetPort`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TunnelSettings {
    /// `CONNECT` (default) or `POST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The FQDN or IP address the connection is tunnelled to. Required.
    #[serde(default)]
    pub target_host: String,
    /// The port the connection is tunnelled to. Required.
    #[serde(default)]
    pub target_port: i64,
}

/// Upstream PROXY protocol settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyProtocol {
    /// The PROXY protocol version; `V1` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<ProxyProtocolVersion>,
}

/// PROXY protocol versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProxyProtocolVersion {
    /// Human-readable header.
    #[default]
    V1,
    /// Binary header.
    V2,
}

/// A limit on concurrent retries as a share of active requests.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryBudget {
    /// Percentage (0–100) of active plus pending requests that may be retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// Retries always allowed regardless of the percentage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_retry_concurrency: Option<i64>,
}

/// TLS settings for connections to the upstream (Istio's `ClientTLSSettings`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientTlsSettings {
    /// How TLS is used; `DISABLE` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<TlsMode>,
    /// Path of the client certificate (required for `MUTUAL` without `credentialName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    /// Path of the client private key (required for `MUTUAL` without `credentialName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// Path of the CA bundle that verifies the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    /// Secret (or `configmap://`) holding the client certificates and CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    /// Names the server certificate's SAN must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// SNI sent in the handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Skip verifying the server certificate's CA signature and SAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// Path of a certificate revocation list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_crl: Option<String>,
}

impl ClientTlsSettings {
    /// The mode, `DISABLE` when unset.
    pub fn mode(&self) -> TlsMode {
        self.mode.unwrap_or_default()
    }
}

/// Client TLS modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TlsMode {
    /// Plain text.
    #[default]
    Disable,
    /// Originate TLS.
    Simple,
    /// Originate mutual TLS with the given client certificate.
    Mutual,
    /// Mutual TLS with Istio's workload certificates.
    IstioMutual,
}

impl TlsMode {
    /// The name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "DISABLE",
            TlsMode::Simple => "SIMPLE",
            TlsMode::Mutual => "MUTUAL",
            TlsMode::IstioMutual => "ISTIO_MUTUAL",
        }
    }
}
