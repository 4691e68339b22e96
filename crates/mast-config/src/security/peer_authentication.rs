//! `PeerAuthentication` (security.istio.io v1beta1/v1): the spec types, field for field as
//! Istio's API: which mutual TLS mode a workload's inbound connections must use, for the
//! whole workload and per workload port.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::types::WorkloadSelector;

/// The spec of a `PeerAuthentication`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerAuthentication {
    /// The workloads the policy applies to; unset means every workload of the namespace
    /// (or of the mesh, in the root namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// Mutual TLS settings for the workload; unset inherits from the namespace or mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MutualTls>,
    /// Per-port settings, keyed by the workload's port number written as a string
    /// (`"8080"`); only allowed with a selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_level_mtls: Option<BTreeMap<String, MutualTls>>,
}

/// Mutual TLS settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MutualTls {
    /// The mode; unset means [`MtlsMode::Unset`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<MtlsMode>,
}

/// How inbound connections must be secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MtlsMode {
    /// Inherit from the parent policy; `PERMISSIVE` if there is none.
    #[default]
    Unset,
    /// Plain text only: connections are not tunnelled through mTLS.
    Disable,
    /// Plain text or mTLS are both accepted.
    Permissive,
    /// mTLS with a client certificate is required.
    Strict,
}

impl MtlsMode {
    /// The mode as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            MtlsMode::Unset => "UNSET",
            MtlsMode::Disable => "DISABLE",
            MtlsMode::Permissive => "PERMISSIVE",
            MtlsMode::Strict => "STRICT",
        }
    }
}

impl std::fmt::Display for MtlsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl MutualTls {
    /// The mode, [`MtlsMode::Unset`] when not written.
    pub fn mode(&self) -> MtlsMode {
        self.mode.unwrap_or_default()
    }
}
