//! The Kubernetes Gateway API (`gateway.networking.k8s.io`): the spec types of
//! `GatewayClass`, `Gateway`, `HTTPRoute`, `GRPCRoute`, `TCPRoute`, `TLSRoute` and
//! `ReferenceGrant`, field for field as the v1 standard channel (plus the experimental CORS
//! filter, HTTPRoute retries and frontend TLS validation, which Istio also reads).
//!
//! Owns the types only; their rules are in [`crate::validate`] and their conversion into
//! Istio's `Gateway` and `VirtualService` is in mast-model.

mod gateway;
mod grpc_route;
mod http_route;
mod l4;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use gateway::{
    AllowedRoutes, FromNamespaces, FrontendTlsValidation, GatewayAddress, GatewayClassSpec,
    GatewayInfrastructure, GatewaySpec, Listener, ListenerTlsConfig, ParametersReference,
    RouteGroupKind, RouteNamespaces, TlsMode,
};
pub use grpc_route::{
    GrpcBackendRef, GrpcMethodMatch, GrpcMethodMatchType, GrpcRouteFilter, GrpcRouteMatch,
    GrpcRouteRule, GrpcRouteSpec,
};
pub use http_route::{
    FilterType, Fraction, HttpBackendRef, HttpCorsFilter, HttpHeader, HttpHeaderFilter,
    HttpHeaderMatch, HttpPathMatch, HttpPathModifier, HttpQueryParamMatch, HttpRequestMirrorFilter,
    HttpRequestRedirectFilter, HttpRouteFilter, HttpRouteMatch, HttpRouteRetry, HttpRouteRule,
    HttpRouteSpec, HttpRouteTimeouts, HttpUrlRewriteFilter, PathMatchType, PathModifierType,
    ValueMatchType,
};
pub use l4::{
    ReferenceGrantFrom, ReferenceGrantSpec, ReferenceGrantTo, TcpRouteRule, TcpRouteSpec,
    TlsRouteRule, TlsRouteSpec,
};

/// The API group of every Gateway API kind.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// A route's reference to its parent: a `Gateway` (and one of its listeners) or, for GAMMA
/// mesh routing, a `Service`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParentReference {
    /// API group of the parent; defaults to `gateway.networking.k8s.io` (`""` is core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind of the parent; defaults to `Gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace of the parent; defaults to the route's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name of the parent.
    #[serde(default)]
    pub name: String,
    /// A listener name of the Gateway (or a port name of the Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// A listener port of the Gateway (or a port of the Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
}

impl ParentReference {
    /// The group, defaulted.
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or(GROUP)
    }

    /// The kind, defaulted.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("Gateway")
    }

    /// Whether the parent is a Gateway API `Gateway`.
    pub fn is_gateway(&self) -> bool {
        self.group() == GROUP && self.kind() == "Gateway"
    }

    /// Whether the parent is a core `Service` (GAMMA).
    pub fn is_service(&self) -> bool {
        self.group().is_empty() && self.kind() == "Service"
    }
}

/// A reference to a backend object (a `Service` by default) with a port.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendObjectReference {
    /// API group; `""` (the default) is the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind; defaults to `Service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the backend.
    #[serde(default)]
    pub name: String,
    /// Namespace; defaults to the route's (another needs a ReferenceGrant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The destination port; required when the backend is a Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
}

impl BackendObjectReference {
    /// The group, defaulted (`""`).
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or("")
    }

    /// The kind, defaulted (`Service`).
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("Service")
    }
}

/// A backend of an L4 route (`TCPRoute`, `TLSRoute`): an object reference with a weight.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendRef {
    /// API group; `""` (the default) is the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind; defaults to `Service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the backend.
    #[serde(default)]
    pub name: String,
    /// Namespace; defaults to the route's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Relative share of the traffic (default 1; 0 sends none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
}

/// A reference to a Secret (or another object holding a certificate).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretObjectReference {
    /// API group; `""` (the default) is the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind; defaults to `Secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the object.
    #[serde(default)]
    pub name: String,
    /// Namespace; defaults to the Gateway's (another needs a ReferenceGrant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl SecretObjectReference {
    /// The group, defaulted (`""`).
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or("")
    }

    /// The kind, defaulted (`Secret`).
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("Secret")
    }
}

/// A reference to an object of the same namespace (`ExtensionRef` filters).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalObjectReference {
    /// API group.
    #[serde(default)]
    pub group: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
    /// Name.
    #[serde(default)]
    pub name: String,
}

/// A Kubernetes label selector (`matchLabels` and `matchExpressions`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Labels that must all be present with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements, all of which must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One set-based requirement of a [`LabelSelector`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    /// The label key.
    #[serde(default)]
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    #[serde(default)]
    pub operator: String,
    /// The values (`In`/`NotIn` need some, `Exists`/`DoesNotExist` none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl LabelSelector {
    /// Whether `labels` satisfy the selector (an empty selector selects everything).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|e| {
                let value = labels.get(&e.key);
                match e.operator.as_str() {
                    "In" => value.is_some_and(|v| e.values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !e.values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }
}
