//! HTTP route policies of a `VirtualService`: redirects, direct responses, rewrites,
//! retries, fault injection and CORS, field for field as Istio's `virtual_service.proto`.

use serde::{Deserialize, Serialize};

use crate::types::{Duration, Percent, StringMatch};

/// Istio's `HTTPRedirect`: answer with a 3xx pointing elsewhere.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRedirect {
    /// Replace the path (the whole path, or the matched prefix for a prefix match).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uri: String,
    /// Replace the authority (`Host`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub authority: String,
    /// Replace the port (one of `port` and `derivePort`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Derive the port from the protocol or the request (one of `port` and `derivePort`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derive_port: Option<RedirectPortSelection>,
    /// Replace the scheme (`http` or `https`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scheme: String,
    /// The 3xx status; 301 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_code: Option<i64>,
}

/// Istio's `HTTPRedirect.RedirectPortSelection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RedirectPortSelection {
    /// 80 for HTTP, 443 for HTTPS.
    FromProtocolDefault,
    /// The port of the request.
    FromRequestPort,
}

/// Istio's `HTTPDirectResponse`: answer with a fixed status and body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpDirectResponse {
    /// The HTTP status to return (200–599). Required.
    #[serde(default)]
    pub status: i64,
    /// The body to return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<HttpBody>,
}

/// Istio's `HTTPBody`: one of a string or base64-encoded bytes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpBody {
    /// The body as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<String>,
    /// The body as bytes, base64-encoded as protobuf JSON writes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<String>,
}

/// Istio's `HTTPRewrite`: rewrite the path and/or authority before forwarding.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRewrite {
    /// Replace the path, or the matched prefix for a prefix match.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uri: String,
    /// Replace the authority (`Host`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub authority: String,
    /// Rewrite the path with a regex substitution (not with `uri`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_regex_rewrite: Option<RegexRewrite>,
}

/// Istio's `RegexRewrite`: replace what `match` matches with `rewrite`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegexRewrite {
    /// An RE2 regular expression.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub r#match: String,
    /// The replacement, with `\1`-style group references.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rewrite: String,
}

/// Istio's `HTTPRetry`: how failed requests are retried.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRetry {
    /// Number of retries; 0 disables retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i64>,
    /// Timeout of each attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<Duration>,
    /// Comma-separated Envoy retry conditions and HTTP status codes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub retry_on: String,
    /// Whether retries may go to other localities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_remote_localities: Option<bool>,
    /// Whether retries avoid hosts already tried (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_ignore_previous_hosts: Option<bool>,
    /// Base interval of the exponential back-off between retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Duration>,
}

/// Istio's `HTTPFaultInjection`: delays and/or aborts injected into requests.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpFaultInjection {
    /// Delay requests before forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<HttpFaultDelay>,
    /// Answer requests with an error instead of forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<HttpFaultAbort>,
}

/// Istio's `HTTPFaultInjection.Delay`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpFaultDelay {
    /// A fixed delay (one of `fixedDelay` and `exponentialDelay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_delay: Option<Duration>,
    /// An exponential delay (not supported by Istio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exponential_delay: Option<Duration>,
    /// Share of requests delayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
    /// Deprecated integer share of requests delayed (0–100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i64>,
}

/// Istio's `HTTPFaultInjection.Abort`: one of an HTTP status, a gRPC status or an
/// HTTP/2 error.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpFaultAbort {
    /// HTTP status to answer with (200–599).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<i64>,
    /// gRPC status name to answer with, as in `UNAVAILABLE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<String>,
    /// HTTP/2 error (not supported by Istio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_error: Option<String>,
    /// Share of requests aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

/// Istio's `CorsPolicy`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsPolicy {
    /// Origins allowed, as string matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origins: Vec<StringMatch>,
    /// Deprecated: origins allowed, as exact strings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origin: Vec<String>,
    /// Methods allowed (`Access-Control-Allow-Methods`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// Request headers allowed (`Access-Control-Allow-Headers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// Response headers browsers may read (`Access-Control-Expose-Headers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// How long preflight results may be cached (whole seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Duration>,
    /// Whether credentials may be sent (`Access-Control-Allow-Credentials`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    /// What to do with preflight requests whose origin is not allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmatched_preflights: Option<UnmatchedPreflights>,
}

/// Istio's `CorsPolicy.UnmatchedPreflights`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UnmatchedPreflights {
    /// The default: forward them.
    Unspecified,
    /// Forward them to the upstream.
    Forward,
    /// Answer them without forwarding.
    Ignore,
}
