//! Authorization and request authentication on a sidecar's inbound chains (Istio's
//! `pilot/pkg/security/authz/builder` and `authn`): AuthorizationPolicy → Envoy RBAC filters
//! (`envoy.filters.http.rbac` on HTTP chains, `envoy.filters.network.rbac` on TCP chains), and
//! RequestAuthentication → `envoy.filters.http.jwt_authn`.
//!
//! The listener generator calls [`inbound_http_filters`] and [`inbound_network_filters`] for
//! each inbound chain and puts what they return before the router / `tcp_proxy`.
//!
//! Submodules: [`selection`] (which policies apply to a proxy), `model` (a rule consolidated
//! into principals and permissions), `principals` / `permissions` / `matchers` (the Envoy
//! matchers), `rbac` (one action's named policies), [`http`] / [`network`] (the filters), [`jwt`]
//! (`jwt_authn` and the JWKS keys mastd must fetch).
//!
//! Dry-run policies (annotation `istio.io/dry-run: "true"`, ALLOW and DENY) become their
//! action's filter's `shadow_rules`: evaluated and counted, never deciding.
//!
//! Deliberate differences from Istio, all because Mast targets upstream Envoy and has no
//! istiod-only inputs:
//! - Request principals and claims are read from `jwt_authn`'s own dynamic metadata
//!   (`envoy.filters.http.jwt_authn` / `payload`), as current Istio does, and no
//!   `istio_authn` filter is emitted.
//! - Trust domain aliases are not applied to `principals` (one trust domain).
//! - Root namespace DENY policies share the DENY filter (Istio's separate
//!   `istio.authorization.deny.root` instance only matters for per-route overrides).
//! - CUSTOM policies fail closed (see `rbac`).

pub mod http;
pub mod jwt;
mod matchers;
mod model;
pub mod network;
mod pack;
mod permissions;
mod principals;
mod rbac;
pub mod selection;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_json;
#[cfg(test)]
mod tests_jwt;

use envoy_types::pb::envoy::config::listener::v3::Filter;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;
use mast_model::{MeshSnapshot, ProxyNode};

pub use rbac::Rules;

/// The HTTP filters (CUSTOM's fail-closed DENY, JWT authentication, then RBAC: AUDIT, DENY,
/// ALLOW) for an inbound HTTP chain of `proxy` serving `app_port`, in the order they run;
/// empty when no policy applies. Port-specific rules (`ports`, `destination.port`) are
/// evaluated by Envoy, so the result does not depend on `app_port`.
pub fn inbound_http_filters(
    snapshot: &MeshSnapshot,
    proxy: &ProxyNode,
    app_port: u16,
) -> Vec<HttpFilter> {
    let sel = selection::authorization_policies(snapshot, proxy);
    if !sel.custom.is_empty() {
        rbac::warn_custom(&sel.custom);
    }
    let mut out = http::custom_filters(&sel);
    out.extend(jwt::filter(snapshot, proxy));
    out.extend(http::filters(&sel, pinned_port(proxy, app_port)));
    out
}

/// In ports capture each inbound listener serves one workload port on a port of its own, so
/// port conditions are resolved at generation time (see [`rbac::Rules::pin_destination_port`]);
/// with iptables capture the connection's original destination port is the workload port.
fn pinned_port(proxy: &ProxyNode, app_port: u16) -> Option<u16> {
    matches!(proxy.capture, mast_model::CaptureMode::Ports { .. }).then_some(app_port)
}

/// The network RBAC filters for an inbound TCP chain of `proxy` serving `app_port`, in the
/// order they run (before `tcp_proxy`); empty when no policy applies.
pub fn inbound_network_filters(
    snapshot: &MeshSnapshot,
    proxy: &ProxyNode,
    app_port: u16,
) -> Vec<Filter> {
    let sel = selection::authorization_policies(snapshot, proxy);
    network::filters(&sel, pinned_port(proxy, app_port))
}
