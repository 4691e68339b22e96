//! `GRPCRoute` (gateway.networking.k8s.io v1): gRPC rules matching service/method and
//! headers. Its filters and backends share the HTTPRoute types; validation allows only the
//! filter types GRPCRoute defines.

use serde::{Deserialize, Serialize};

use super::{HttpBackendRef, HttpHeaderMatch, HttpRouteFilter, ParentReference, ValueMatchType};

/// A GRPCRoute filter (`RequestHeaderModifier`, `ResponseHeaderModifier`, `RequestMirror`,
/// `ExtensionRef`).
pub type GrpcRouteFilter = HttpRouteFilter;

/// A GRPCRoute backend.
pub type GrpcBackendRef = HttpBackendRef;

/// How a gRPC method is matched.
pub type GrpcMethodMatchType = ValueMatchType;

/// The spec of a `GRPCRoute`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcRouteSpec {
    /// The Gateways (or Services) the route attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentReference>,
    /// The hostnames the route serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// The rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<GrpcRouteRule>,
}

/// One gRPC rule.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcRouteRule {
    /// An optional rule name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The matches (none: every request).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<GrpcRouteMatch>,
    /// Filters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<GrpcRouteFilter>,
    /// The weighted backends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<GrpcBackendRef>,
    /// Session persistence (experimental; accepted, not acted on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_persistence: Option<serde_json::Value>,
}

/// Conditions a gRPC request must all meet.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcRouteMatch {
    /// The service and method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<GrpcMethodMatch>,
    /// Header conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HttpHeaderMatch>,
}

/// A gRPC service and/or method condition.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcMethodMatch {
    /// `Exact` (the default) or `RegularExpression`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub r#type: Option<ValueMatchType>,
    /// The fully qualified service, such as `foo.bar.Service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The method, such as `Get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}
