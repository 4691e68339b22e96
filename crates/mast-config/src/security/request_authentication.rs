//! `RequestAuthentication` (security.istio.io v1beta1/v1): the spec types, field for field
//! as Istio's API: which JWTs a workload accepts, where to find them and what to do with
//! their claims.

use serde::{Deserialize, Serialize};

use crate::types::Duration;
use crate::types::{PolicyTargetReference, WorkloadSelector};

/// The spec of a `RequestAuthentication`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestAuthentication {
    /// The workloads the policy applies to; unset means every workload of the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// The resource the policy attaches to (instead of a selector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// The resources the policy attaches to (instead of a selector).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// The JWTs accepted; a request carrying an invalid token is rejected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jwt_rules: Vec<JwtRule>,
}

/// How to find and validate one kind of JWT.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtRule {
    /// The `iss` the token must carry.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer: String,
    /// Accepted `aud` values; empty accepts the service name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// URL of the key set (http or https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// The key set inline, as JSON text; wins over `jwksUri` when both are set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    /// Headers carrying the token; default `Authorization: Bearer <token>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_headers: Vec<JwtHeader>,
    /// Query parameters carrying the token; default `access_token`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_params: Vec<String>,
    /// Header to which the verified payload is written, base64-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_payload_to_header: Option<String>,
    /// Whether to keep the token in the request forwarded upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_original_token: Option<bool>,
    /// Claims copied into request headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    /// Cookies carrying the token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_cookies: Vec<String>,
    /// How long to wait when fetching the key set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

/// A header that carries a token.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtHeader {
    /// The header name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// A prefix before the token, such as `"Bearer "`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// A claim copied into a request header.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimToHeader {
    /// The header to write.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub header: String,
    /// The claim to copy (nested claims separated by `.`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub claim: String,
}
