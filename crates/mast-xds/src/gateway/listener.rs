//! LDS for gateway proxies (Istio's `buildGatewayListeners`): one listener per merged port,
//! named `<address>_<port>` and bound to the port (address: the servers' `bind`, else the
//! proxy's IP when it is a loopback address, else `0.0.0.0`), `traffic_direction: OUTBOUND`,
//! `envoy.filters.listener.tls_inspector` on TLS ports. Chains:
//! - plaintext HTTP servers: one chain, an HTTP connection manager on RDS `http.<port>`;
//! - terminating HTTPS servers: one chain per server, `server_names` = its SNI hosts (none
//!   for `*`), a `DownstreamTlsContext` ([`super::tls`]) and an HTTP connection manager on
//!   its `https.…` table with stat prefix the server `name` (else `outbound_<listener>`);
//! - TCP / TLS / PASSTHROUGH / AUTO_PASSTHROUGH servers: [`super::l4`].
//!
//! The HTTP connection managers are the sidecars' with Istio's gateway settings:
//! `use_remote_address: true`, `xff_num_trusted_hops: 0`, `forward_client_cert_details:
//! SANITIZE_SET` with `set_current_client_cert_details` (subject, cert, DNS, URI), HTTP/1
//! options, codec AUTO, `normalize_path`, request ids, websocket upgrades. With tracing on,
//! [`crate::listener::trace`] gives them `tracing` (gateways: SERVER spans); with an access
//! log configured, every HTTP connection manager and `tcp_proxy` gets it
//! ([`crate::listener::access_log`]). Both come in one [`Telemetry`] built per generation.

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
use envoy_types::pb::envoy::config::core::v3::{
    Http1ProtocolOptions, TransportSocket,
};
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, FilterChainMatch, Listener};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::{
    ForwardClientCertDetails, SetCurrentClientCertDetails,
};
use mast_model::snapshot::{GatewayPort, GatewayServer};
use mast_model::{MeshSnapshot, ProxyNode};

use super::{l4, tls};
use crate::listener::filters::{
    self, HCM_FILTER, HcmSpec, RouteSource, Telemetry, WILDCARD, bool_value, network_filter,
};

/// `envoy.transport_sockets.tls`.
pub const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";

/// Every listener of gateway proxy `proxy`, sorted by name (see the module doc).
pub fn listeners(snapshot: &MeshSnapshot, proxy: &ProxyNode) -> Vec<Listener> {
    let merged = super::merged(snapshot, proxy);
    let telemetry = Telemetry::of(snapshot, proxy, crate::Part::Own);
    let mut out: Vec<Listener> = Vec::new();
    for port in &merged.ports {
        let Some(listener) = port_listener(snapshot, proxy, port, &telemetry) else {
            continue;
        };
        if out.iter().any(|l| l.name == listener.name) {
            tracing::warn!(listener = %listener.name, "two gateway ports give the same listener: later one dropped");
            continue;
        }
        out.push(listener);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The listener address: `bind`, else the proxy's IP when loopback, else `0.0.0.0`.
pub fn address(bind: Option<&str>, proxy: &ProxyNode) -> String {
    if let Some(b) = bind.filter(|b| !b.is_empty()) {
        return b.to_owned();
    }
    match proxy.ip.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_loopback() => proxy.ip.clone(),
        _ => WILDCARD.to_owned(),
    }
}

/// The listener of one port; `None` when no server on it yields a chain.
fn port_listener(
    snapshot: &MeshSnapshot,
    proxy: &ProxyNode,
    port: &GatewayPort<'_>,
    telemetry: &Telemetry,
) -> Option<Listener> {
    let address = address(port.bind.as_deref(), proxy);
    if address.starts_with("unix://") {
        tracing::warn!(bind = %address, "gateway servers on Unix sockets are not supported: port skipped");
        return None;
    }
    let name = format!("{address}_{}", port.port);
    let stat_prefix = format!("outbound_{name}");
    let chains = if port.tls {
        tls_port_chains(snapshot, proxy, port, &stat_prefix, telemetry)
    } else if port.protocol.is_http() {
        let route = port.servers.first()?.route_name.clone()?;
        let hcm = gateway_hcm(stat_prefix, route, telemetry);
        vec![FilterChain {
            filters: vec![network_filter(HCM_FILTER, hcm)],
            ..Default::default()
        }]
    } else {
        port.servers
            .iter()
            .filter_map(|s| l4::tcp_chain(snapshot, proxy, s, telemetry))
            .take(1)
            .collect()
    };
    if chains.is_empty() {
        tracing::warn!(listener = %name, "gateway port has no usable server: no listener");
        return None;
    }
    let mut listener = Listener {
        name,
        address: Some(filters::socket_address(&address, port.port)),
        traffic_direction: TrafficDirection::Outbound as i32,
        filter_chains: chains,
        ..Default::default()
    };
    if port.tls {
        listener.listener_filters.push(filters::tls_inspector());
    }
    Some(listener)
}

/// The chains of a TLS port: one per server (several for PASSTHROUGH / AUTO_PASSTHROUGH),
/// a chain whose match repeats an earlier one's dropped (Envoy refuses equal matches).
fn tls_port_chains(
    snapshot: &MeshSnapshot,
    proxy: &ProxyNode,
    port: &GatewayPort<'_>,
    stat_prefix: &str,
    telemetry: &Telemetry,
) -> Vec<FilterChain> {
    let mut out: Vec<FilterChain> = Vec::new();
    for server in &port.servers {
        let chains = if server.is_https_terminating() {
            https_chain(snapshot, proxy, server, stat_prefix, telemetry)
                .into_iter()
                .collect()
        } else {
            l4::tls_server_chains(snapshot, proxy, server, telemetry)
        };
        for chain in chains {
            if out
                .iter()
                .any(|c| c.filter_chain_match == chain.filter_chain_match)
            {
                tracing::warn!(gateway = %server.gateway_name, "gateway filter chain repeats an earlier match: dropped");
                continue;
            }
            out.push(chain);
        }
    }
    out
}

/// The chain of a TLS-terminating HTTPS server; `None` (logged) when its TLS cannot be built.
fn https_chain(
    snapshot: &MeshSnapshot,
    proxy: &ProxyNode,
    server: &GatewayServer<'_>,
    stat_prefix: &str,
    telemetry: &Telemetry,
) -> Option<FilterChain> {
    let route = server.route_name.clone()?;
    let context = match tls::downstream_context(snapshot, proxy, server) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(gateway = %server.gateway_name, port = server.number, error = %e,
                "gateway server skipped");
            return None;
        }
    };
    let stat_prefix = server
        .server
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| stat_prefix.to_owned());
    Some(FilterChain {
        filter_chain_match: sni_match(&server.sni_hosts),
        transport_socket: Some(tls_socket(context)),
        filters: vec![network_filter(
            HCM_FILTER,
            gateway_hcm(stat_prefix, route, telemetry),
        )],
        ..Default::default()
    })
}

/// A chain match on these SNI names; `None` (any connection) when they hold `*` or nothing.
pub fn sni_match(hosts: &[String]) -> Option<FilterChainMatch> {
    if hosts.is_empty() || hosts.iter().any(|h| h == "*") {
        return None;
    }
    Some(FilterChainMatch {
        server_names: hosts.to_vec(),
        ..Default::default()
    })
}

/// `envoy.transport_sockets.tls` carrying a downstream context.
pub fn tls_socket<T: prost::Name + prost::Message>(context: T) -> TransportSocket {
    TransportSocket {
        name: TLS_TRANSPORT_SOCKET.into(),
        config_type: Some(ConfigType::TypedConfig(envoy_types::util::pack_any(
            context,
        ))),
    }
}

/// The HTTP connection manager of a gateway server on RDS `route`, with `telemetry`.
pub fn gateway_hcm(
    stat_prefix: String,
    route: String,
    telemetry: &Telemetry,
) -> HttpConnectionManager {
    let spec = HcmSpec {
        stat_prefix,
        routes: RouteSource::Rds(route),
        outbound: true,
        http2: false,
        http_proxy: false,
    };
    let mut hcm = filters::http_connection_manager(spec, telemetry);
    hcm.use_remote_address = bool_value(true);
    hcm.xff_num_trusted_hops = 0;
    hcm.forward_client_cert_details = ForwardClientCertDetails::SanitizeSet as i32;
    hcm.set_current_client_cert_details = Some(SetCurrentClientCertDetails {
        subject: bool_value(true),
        cert: true,
        dns: true,
        uri: true,
        ..Default::default()
    });
    hcm.http_protocol_options = Some(Http1ProtocolOptions::default());
    hcm
}

/// A socket address (tests).
#[cfg(test)]
pub(crate) fn socket(
    l: &Listener,
) -> Option<&envoy_types::pb::envoy::config::core::v3::SocketAddress> {
    use envoy_types::pb::envoy::config::core::v3::address::Address as Kind;
    match l.address.as_ref()?.address.as_ref()? {
        Kind::SocketAddress(s) => Some(s),
        _ => None,
    }
}
