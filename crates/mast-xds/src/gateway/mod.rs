//! Gateway proxies (`router` nodes): the listeners, route tables and extra clusters istiod
//! gives an ingress or egress gateway for the Istio `Gateway`s selecting it, following
//! Istio's `pilot/pkg/networking/core/gateway.go`. The servers come merged per port from
//! [`MeshSnapshot::merged_gateway`] (mast-model), which also maps each server port to the
//! listener port (the `targetPort` of the gateway's Service).
//!
//! - [`listener`]: one listener per port, `<address>_<port>`, `traffic_direction: OUTBOUND`;
//!   HTTP servers → one chain with an HTTP connection manager on RDS `http.<port>`;
//!   terminating HTTPS servers → one chain per server (SNI `server_names`) with a
//!   `DownstreamTlsContext` ([`tls`]) and RDS `https.<port>.<port name>.<gateway>.<ns>`;
//!   TCP, TLS, PASSTHROUGH and AUTO_PASSTHROUGH servers → `tcp_proxy` chains ([`l4`]).
//! - [`route`]: the route tables: one virtual host per VirtualService host intersecting the
//!   server's hosts, routes from the sidecar route translation (`crate::route`), a 404
//!   `blackhole:<port>` virtual host when nothing matches, `require_tls: ALL` for
//!   `httpsRedirect`.
//! - [`cluster`]: the SNI-named clusters (`outbound_.<port>_.<subset>_.<host>`) of
//!   AUTO_PASSTHROUGH servers, and their endpoints.
//!
//! Certificates: file paths become `filename` data sources; `credentialName` is read from the
//! Kubernetes Secret in the gateway's namespace and inlined (Istio serves it over SDS); a
//! server whose Secret is missing is left out (logged), the others keep working.
//! What is emitted, field by field, is in `docs/xds-subset.md` ("Gateways").

pub mod cluster;
pub mod l4;
pub mod listener;
pub mod route;
pub mod tls;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_egress;
#[cfg(test)]
mod tests_envoy;
#[cfg(test)]
mod tests_l4;
#[cfg(test)]
mod tests_tls;

use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use mast_model::snapshot::MergedGateway;
use mast_model::{MeshSnapshot, ProxyNode};

pub use listener::listeners;
pub use route::routes;

/// The merged servers of `proxy`, the skipped ones logged.
pub(crate) fn merged<'a>(snapshot: &'a MeshSnapshot, proxy: &ProxyNode) -> MergedGateway<'a> {
    let merged = snapshot.merged_gateway(proxy);
    for s in &merged.skipped {
        tracing::warn!(proxy = %proxy.id, gateway = %s.gateway, port = s.port,
            "gateway server skipped: {}", s.reason);
    }
    merged
}

/// Listeners and route tables together (tests and tools).
pub fn listeners_and_routes(
    snapshot: &MeshSnapshot,
    proxy: &ProxyNode,
) -> (Vec<Listener>, Vec<RouteConfiguration>) {
    (listeners(snapshot, proxy), routes(snapshot, proxy))
}
