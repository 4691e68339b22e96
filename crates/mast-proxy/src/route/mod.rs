//! Route tables (RDS and the inbound inline table): conversion from
//! `envoy.config.route.v3.RouteConfiguration`, virtual-host and route selection, and the
//! per-route decisions the HTTP connection manager asks for (destination pick, hash key,
//! rewrites, header mutations, retries, faults, CORS, redirects, direct responses), all with
//! Envoy's semantics. Pure code: no I/O, no async. Everything is compiled once at conversion
//! (regexes, header names and values, percentages); matching allocates nothing in the common
//! case.
//!
//! Submodules: [`convert`] walks the proto and refuses what is not implemented; `vhost`
//! indexes domains; `matcher` compiles `RouteMatch`; `action`, `rewrite`, `hash`, `retry`,
//! `redirect`, `fault`, `cors`, `headers` hold the per-route parts.

mod action;
pub mod convert;
mod cors;
mod destination;
mod fault;
mod hash;
mod headers;
mod matcher;
mod proto;
mod redirect;
mod retry;
mod rewrite;
mod vhost;

#[cfg(test)]
mod tests;

pub use action::{Destination, Forward, Mirror};
pub use cors::{Cors, Preflight};
pub use fault::{Abort, Fault};
pub use headers::HeaderMutation;
pub use redirect::{DirectResponse, Redirect};
pub use retry::{RetryPolicy, UpstreamFailure};

use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;

use crate::error::ConfigError;
use matcher::RouteMatcher;
use rewrite::PathRewrite;
use vhost::DomainIndex;

/// A converted, validated route table.
#[derive(Debug)]
pub struct RouteTable {
    name: String,
    vhosts: Vec<VirtualHost>,
    index: DomainIndex,
    max_direct_response_body_size: usize,
    /// `ignore_port_in_host_matching`: virtual hosts are matched on the host without its port.
    ignore_port_in_host_matching: bool,
}

impl RouteTable {
    /// Converts and validates (regexes compiled, header names/values parsed, percentages normalised).
    pub fn from_proto(rc: &RouteConfiguration) -> Result<RouteTable, ConfigError> {
        convert::table(rc)
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Envoy's virtual-host selection (exact domain, then longest suffix wildcard "*.x", then longest
    /// prefix wildcard "x*", then "*"; case-insensitive; the authority is matched as received,
    /// with its port when it has one, since mastd lists both forms), then the first route whose
    /// match holds. None → the HCM answers 404 (NR).
    /// A virtual host with `require_tls` answers non-TLS requests with its SSL redirect.
    pub fn select(&self, req: &RequestHead<'_>) -> Option<&Route> {
        let vh = self.virtual_host(req.authority)?;
        if let Some(redirect) = &vh.ssl_redirect
            && vh.require_tls.redirects(req.headers)
        {
            return Some(redirect);
        }
        vh.routes.iter().find(|r| r.matcher.matches(req))
    }

    /// The virtual host serving `authority` (for logs and stats), if any.
    pub fn virtual_host(&self, authority: &str) -> Option<&VirtualHost> {
        let host = if self.ignore_port_in_host_matching {
            without_port(authority)
        } else {
            authority
        };
        self.vhosts.get(self.index.find(host)?)
    }

    /// The largest direct-response body this table allows (Envoy's 4 KiB when unset).
    pub fn max_direct_response_body_size(&self) -> usize {
        self.max_direct_response_body_size
    }
}

/// `host[:port]` without a numeric port (IPv6 literals keep their brackets), as Envoy's
/// `HeaderUtility::getPortStart`.
fn without_port(authority: &str) -> &str {
    let start = match authority.rfind(':') {
        Some(i) if authority.starts_with('[') && !authority[..i].ends_with(']') => None,
        other => other,
    };
    match start {
        Some(i)
            if i + 1 < authority.len()
                && authority[i + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            &authority[..i]
        }
        _ => authority,
    }
}

/// A virtual host of a table.
#[derive(Debug)]
pub struct VirtualHost {
    name: String,
    routes: Vec<Route>,
    require_tls: RequireTls,
    /// The route answering requests `require_tls` redirects (301 to https).
    ssl_redirect: Option<Route>,
}

/// A virtual host's `require_tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequireTls {
    /// No requirement.
    None,
    /// External requests (no `x-envoy-internal: true`) must use TLS.
    ExternalOnly,
    /// Every request must use TLS.
    All,
}

impl RequireTls {
    /// Envoy's rule: the request's `x-forwarded-proto` (which the connection manager sets
    /// from the connection unless a trusted hop set it) is not `https` and, for
    /// EXTERNAL_ONLY, the request is not internal. Without `x-forwarded-proto` no redirect.
    fn redirects(self, headers: &http::HeaderMap) -> bool {
        if self == Self::None {
            return false;
        }
        let Some(proto) = headers.get("x-forwarded-proto") else {
            return false;
        };
        if proto.as_bytes() == b"https" {
            return false;
        }
        self == Self::All
            || headers
                .get("x-envoy-internal")
                .is_none_or(|v| v.as_bytes() != b"true")
    }
}

impl VirtualHost {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its routes, in order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

/// What routing looks at. `path` is the path with the query as received (after the HCM's
/// normalisation); the route matches the path part, query parameters the query part.
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    /// The method.
    pub method: &'a http::Method,
    /// "http" or "https".
    pub scheme: &'a str,
    /// host[:port] (for CONNECT: host:port).
    pub authority: &'a str,
    /// "/a/b?x=1"; "" for CONNECT.
    pub path: &'a str,
    /// The request headers.
    pub headers: &'a http::HeaderMap,
}

/// A route: its match (private), action and per-route filters.
#[derive(Debug)]
pub struct Route {
    /// The route's name.
    pub name: String,
    /// What to do with a matching request.
    pub action: Action,
    /// request_headers_to_add / _to_remove (apply after the destination's, Envoy's order).
    pub request_headers: HeaderMutation,
    /// response_headers_to_add / _to_remove (apply after the destination's).
    pub response_headers: HeaderMutation,
    /// typed_per_filter_config["envoy.filters.http.fault"].
    pub fault: Option<Fault>,
    /// typed_per_filter_config["envoy.filters.http.cors"].
    pub cors: Option<Cors>,
    /// decorator.operation.
    pub decorator: Option<String>,
    /// stat_prefix.
    pub stat_prefix: Option<String>,
    matcher: RouteMatcher,
    rewrite: Option<PathRewrite>,
}

impl Route {
    /// The path to send upstream after prefix_rewrite / regex_rewrite (None: unchanged).
    pub fn rewritten_path(&self, path: &str) -> Option<String> {
        self.rewrite.as_ref()?.apply(&self.matcher.path, path)
    }
}

/// A route's action.
// Forwarding is the common case: kept inline (no pointer chase per request); a table holds
// few routes, so the size of the rarer variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Action {
    /// Forward upstream.
    Forward(Forward),
    /// Answer with a redirect.
    Redirect(Redirect),
    /// Answer directly.
    Direct(DirectResponse),
}
