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
    pub fn select(&self, req: &RequestHead<'_>) -> Option<&Route> {
        self.virtual_host(req.authority)?
            .routes
            .iter()
            .find(|r| r.matcher.matches(req))
    }

    /// The virtual host serving `authority` (for logs and stats), if any.
    pub fn virtual_host(&self, authority: &str) -> Option<&VirtualHost> {
        self.vhosts.get(self.index.find(authority)?)
    }

    /// The largest direct-response body this table allows (Envoy's 4 KiB when unset).
    pub fn max_direct_response_body_size(&self) -> usize {
        self.max_direct_response_body_size
    }
}

/// A virtual host of a table.
#[derive(Debug)]
pub struct VirtualHost {
    name: String,
    routes: Vec<Route>,
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
