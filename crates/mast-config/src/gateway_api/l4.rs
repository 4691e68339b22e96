//! `TCPRoute` and `TLSRoute` (gateway.networking.k8s.io v1alpha2): L4 rules with weighted
//! backends; and `ReferenceGrant` (v1beta1), which lets objects of one namespace refer to
//! objects of another.

use serde::{Deserialize, Serialize};

use super::{BackendRef, ParentReference};

/// The spec of a `TCPRoute`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpRouteSpec {
    /// The Gateways the route attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentReference>,
    /// The rules (exactly one is used).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<TcpRouteRule>,
}

/// One TCP rule.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpRouteRule {
    /// An optional rule name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The weighted backends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<BackendRef>,
}

/// The spec of a `TLSRoute`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsRouteSpec {
    /// The Gateways the route attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentReference>,
    /// The SNI hostnames the route serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// The rules (exactly one is used).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<TlsRouteRule>,
}

/// One TLS rule.
pub type TlsRouteRule = TcpRouteRule;

/// The spec of a `ReferenceGrant`: objects of the `from` kinds and namespaces may refer to
/// objects of the `to` kinds in the grant's own namespace.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReferenceGrantSpec {
    /// Who may refer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<ReferenceGrantFrom>,
    /// What may be referred to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<ReferenceGrantTo>,
}

/// A kind and namespace allowed to refer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReferenceGrantFrom {
    /// The group (`""` for core).
    #[serde(default)]
    pub group: String,
    /// The kind, such as `HTTPRoute`.
    #[serde(default)]
    pub kind: String,
    /// The namespace.
    #[serde(default)]
    pub namespace: String,
}

/// A kind (and optionally a name) that may be referred to.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReferenceGrantTo {
    /// The group (`""` for core).
    #[serde(default)]
    pub group: String,
    /// The kind, such as `Service` or `Secret`.
    #[serde(default)]
    pub kind: String,
    /// The name; absent allows every object of the kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}
