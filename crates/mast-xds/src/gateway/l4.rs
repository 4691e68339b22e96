//! The non-HTTP chains of gateway servers (Istio's `createGatewayTCPFilterChainOpts`):
//! - TCP without TLS: the first `tcp` rule (of the VirtualServices bound to the Gateway whose
//!   hosts meet the server's) matching the server port and Gateway → `tcp_proxy`;
//! - TLS terminated (SIMPLE, MUTUAL, ISTIO_MUTUAL on a TLS/TCP server): the same, behind a
//!   `DownstreamTlsContext`, matched on the server's SNI hosts;
//! - PASSTHROUGH: one chain per `tls` match whose `sniHosts` name the connection, a
//!   `tcp_proxy` to the rule's destinations (a later repeat of an SNI host is skipped);
//! - AUTO_PASSTHROUGH: one chain on the server's SNI hosts with
//!   `envoy.filters.network.sni_cluster` (the cluster is the SNI,
//!   `outbound_.<port>_.<subset>_.<host>`, see [`super::cluster`]) and a `tcp_proxy`
//!   (to `BlackHoleCluster` unless the SNI names a cluster).
//!
//! Destinations and weights use the sidecar's `tcp_proxy` translation
//! (`crate::listener::l4::route_filters`).

use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, FilterChainMatch};
use envoy_types::pb::envoy::extensions::filters::network::sni_cluster::v3::SniCluster;
use mast_config::networking::VirtualService;
use mast_config::networking::gateway::ServerTlsMode;
use mast_config::networking::virtual_service::RouteDestination;
use mast_core::Hostname;
use mast_model::snapshot::GatewayServer;
use mast_model::snapshot::gateway::intersect_hosts;
use mast_model::{Config, MeshSnapshot, ProxyNode};

use super::listener::{sni_match, tls_socket};
use super::tls;
use crate::listener::Inputs;
use crate::listener::filters::{self, Telemetry, network_filter};

/// `envoy.filters.network.sni_cluster`.
pub const SNI_CLUSTER_FILTER: &str = "envoy.filters.network.sni_cluster";

/// The VirtualServices bound to `server`'s Gateway whose hosts meet the server's.
pub(crate) fn bound_vses<'a>(
    snapshot: &'a MeshSnapshot,
    proxy: &ProxyNode,
    server: &GatewayServer<'_>,
) -> Vec<&'a Config<VirtualService>> {
    snapshot
        .virtual_services(proxy, &server.gateway_name)
        .into_iter()
        .filter(|vs| {
            let vs_hosts: Vec<Hostname> =
                vs.spec.hosts.iter().map(Hostname::new_unchecked).collect();
            !intersect_hosts(&server.hosts_for_namespace(&vs.namespace), &vs_hosts).is_empty()
        })
        .collect()
}

/// Whether an L4 match (its `gateways` and `port`) holds for `server` (Istio's
/// `l4SingleMatch`; `gateways` are relative to the VirtualService's namespace).
fn l4_match(
    gateways: &[String],
    port: Option<i64>,
    server: &GatewayServer<'_>,
    vs_ns: &str,
) -> bool {
    let gw = gateways.is_empty()
        || gateways
            .iter()
            .any(|g| MeshSnapshot::qualify_gateway(vs_ns, g) == server.gateway_name);
    gw && port.is_none_or(|p| p == 0 || p == i64::from(server.number))
}

/// The `tcp_proxy` of a rule's destinations.
fn route_filters(
    snapshot: &MeshSnapshot,
    proxy: &ProxyNode,
    routes: &[RouteDestination],
    server: &GatewayServer<'_>,
    vs: &Config<VirtualService>,
    telemetry: &Telemetry,
) -> Option<Vec<Filter>> {
    let inputs = Inputs::new(
        proxy,
        snapshot.visible_services(proxy),
        Vec::new(),
        Vec::new(),
        snapshot.outbound_policy(proxy),
        &snapshot.options.domain_suffix,
    )
    .with_snapshot(snapshot)
    .with_telemetry(telemetry);
    crate::listener::l4::route_filters(&inputs, routes, server.number, vs)
}

/// The filters of the first `tcp` rule that applies to `server`.
fn tcp_route_filters(
    snapshot: &MeshSnapshot,
    proxy: &ProxyNode,
    server: &GatewayServer<'_>,
    telemetry: &Telemetry,
) -> Option<Vec<Filter>> {
    for vs in bound_vses(snapshot, proxy, server) {
        for rule in &vs.spec.tcp {
            let applies = rule.r#match.is_empty()
                || rule
                    .r#match
                    .iter()
                    .any(|m| l4_match(&m.gateways, m.port, server, &vs.namespace));
            if applies && !rule.route.is_empty() {
                return route_filters(snapshot, proxy, &rule.route, server, vs, telemetry);
            }
        }
    }
    tracing::warn!(gateway = %server.gateway_name, port = server.number,
        "no VirtualService tcp route for the gateway server: no chain");
    None
}

/// The chain of a plaintext TCP server.
pub fn tcp_chain(
    snapshot: &MeshSnapshot,
    proxy: &ProxyNode,
    server: &GatewayServer<'_>,
    telemetry: &Telemetry,
) -> Option<FilterChain> {
    Some(FilterChain {
        filters: tcp_route_filters(snapshot, proxy, server, telemetry)?,
        ..Default::default()
    })
}

/// The chains of a non-HTTPS TLS server (terminated, PASSTHROUGH or AUTO_PASSTHROUGH).
pub fn tls_server_chains(
    snapshot: &MeshSnapshot,
    proxy: &ProxyNode,
    server: &GatewayServer<'_>,
    telemetry: &Telemetry,
) -> Vec<FilterChain> {
    match server.tls_mode() {
        Some(ServerTlsMode::Passthrough) => passthrough_chains(snapshot, proxy, server, telemetry),
        Some(ServerTlsMode::AutoPassthrough) => vec![auto_passthrough_chain(server, telemetry)],
        Some(_) => terminated_chain(snapshot, proxy, server, telemetry)
            .into_iter()
            .collect(),
        None => tcp_chain(snapshot, proxy, server, telemetry)
            .into_iter()
            .collect(),
    }
}

/// TLS terminated, then `tcp` routes.
fn terminated_chain(
    snapshot: &MeshSnapshot,
    proxy: &ProxyNode,
    server: &GatewayServer<'_>,
    telemetry: &Telemetry,
) -> Option<FilterChain> {
    let context = match tls::downstream_context(snapshot, proxy, server) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(gateway = %server.gateway_name, port = server.number, error = %e,
                "gateway server skipped");
            return None;
        }
    };
    Some(FilterChain {
        filter_chain_match: sni_match(&server.sni_hosts),
        transport_socket: Some(tls_socket(context)),
        filters: tcp_route_filters(snapshot, proxy, server, telemetry)?,
        ..Default::default()
    })
}

/// One chain per applicable `tls` match of the bound VirtualServices, on its SNI hosts.
fn passthrough_chains(
    snapshot: &MeshSnapshot,
    proxy: &ProxyNode,
    server: &GatewayServer<'_>,
    telemetry: &Telemetry,
) -> Vec<FilterChain> {
    let mut out: Vec<FilterChain> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for vs in bound_vses(snapshot, proxy, server) {
        for rule in vs.spec.tls.iter().filter(|r| !r.route.is_empty()) {
            for m in &rule.r#match {
                if !l4_match(&m.gateways, m.port, server, &vs.namespace) {
                    continue;
                }
                if m.sni_hosts.iter().any(|h| seen.contains(h)) {
                    tracing::warn!(virtual_service = %format!("{}/{}", vs.namespace, vs.name),
                        gateway = %server.gateway_name, "duplicate SNI host on the gateway port: tls match skipped");
                    continue;
                }
                let Some(filters) =
                    route_filters(snapshot, proxy, &rule.route, server, vs, telemetry)
                else {
                    continue;
                };
                seen.extend(m.sni_hosts.iter().cloned());
                out.push(FilterChain {
                    filter_chain_match: Some(FilterChainMatch {
                        server_names: m.sni_hosts.clone(),
                        ..Default::default()
                    }),
                    filters,
                    ..Default::default()
                });
            }
        }
    }
    out
}

/// `sni_cluster` then `tcp_proxy`, on the server's SNI hosts.
fn auto_passthrough_chain(server: &GatewayServer<'_>, telemetry: &Telemetry) -> FilterChain {
    let blackhole = crate::names::BLACKHOLE_CLUSTER;
    FilterChain {
        filter_chain_match: sni_match(&server.sni_hosts),
        filters: vec![
            network_filter(SNI_CLUSTER_FILTER, SniCluster {}),
            filters::tcp_proxy(blackhole, blackhole, telemetry),
        ],
        ..Default::default()
    }
}
