//! Inbound listeners: `virtualInbound` on 15006 (iptables capture), with chains per port the
//! workload serves, matched by destination port, and a fallback to
//! `InboundPassthroughCluster`; and the ports-mode `mast_inbound_<app port>` listeners on
//! 127.0.0.1.
//!
//! Each port gets the chains of its PeerAuthentication mode ([`mtls`]): mutual TLS, plaintext or
//! both, matched by `transport_protocol` (and ALPN); a listener with a TLS chain gets the TLS
//! inspector. A chain carries an HTTP connection manager with an inline route to
//! `inbound|<port>||` for HTTP ports, a `tcp_proxy` to it otherwise, with the authorization
//! filters of [`crate::authz`] before the router / `tcp_proxy`. The port in both names is the
//! port the application listens on (the service's target port), as Istio names inbound clusters.

pub mod mtls;

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use mast_model::Protocol;

use super::filters::{self, HcmSpec, LOCALHOST, RouteSource, WILDCARD};
use super::{Inputs, MAST_INBOUND_PREFIX, RESERVED_PORTS};
use crate::names;

/// Name of the `virtualInbound` chain that drops traffic addressed to 15006 itself.
pub const INBOUND_BLACKHOLE_CHAIN: &str = "virtualInbound-blackhole";

/// The application ports the workload serves and their protocols; when several services
/// target one port, the first one's protocol wins. Reserved sidecar ports are left out.
fn app_ports(inputs: &Inputs<'_>) -> BTreeMap<u16, Protocol> {
    let mut out = BTreeMap::new();
    for ip in &inputs.inbound {
        if RESERVED_PORTS.contains(&ip.target_port) {
            tracing::warn!(port = ip.target_port, host = %ip.service.hostname, "application port is reserved by the sidecar; no inbound chain");
            continue;
        }
        if ip.port.protocol == Protocol::Udp {
            continue;
        }
        out.entry(ip.target_port).or_insert(ip.port.protocol);
    }
    out
}

/// The network filters that hand a connection to the application on `app_port`, with the
/// authorization filters first.
fn app_filters(
    inputs: &Inputs<'_>,
    app_port: u16,
    protocol: Protocol,
    stat_prefix: String,
) -> Vec<Filter> {
    let cluster = names::inbound_cluster(app_port);
    let (snapshot, proxy) = (inputs.snapshot, inputs.proxy);
    if protocol.is_http() {
        let spec = HcmSpec {
            stat_prefix,
            routes: RouteSource::Inline(Box::new(filters::inbound_route_config(
                app_port, &cluster,
            ))),
            outbound: false,
            http2: protocol.is_http2(),
            http_proxy: false,
        };
        let mut hcm = filters::http_connection_manager(spec, inputs.telemetry);
        let authz = crate::authz::inbound_http_filters(snapshot, proxy, app_port);
        let router = hcm.http_filters.len().saturating_sub(1);
        hcm.http_filters.splice(router..router, authz);
        vec![filters::network_filter(filters::HCM_FILTER, hcm)]
    } else {
        let mut out = crate::authz::inbound_network_filters(snapshot, proxy, app_port);
        out.push(filters::tcp_proxy(&cluster, &cluster, inputs.telemetry));
        out
    }
}

/// The chains of one application port, for its mTLS mode; `destination_port` set in
/// `virtualInbound` (`None` on a ports-mode listener, which serves one port).
fn port_chains(
    inputs: &Inputs<'_>,
    app_port: u16,
    protocol: Protocol,
    name: &str,
    destination_port: Option<u16>,
) -> Vec<FilterChain> {
    let mode = inputs.snapshot.mtls_mode(inputs.proxy, app_port);
    let http = protocol.is_http();
    let stat_prefix = if destination_port.is_some() {
        format!("inbound_{name}")
    } else {
        format!("inbound_{app_port}")
    };
    let filters = app_filters(inputs, app_port, protocol, stat_prefix);
    let blackhole = names::BLACKHOLE_CLUSTER;
    mtls::chain_kinds(mode, http, destination_port.is_some())
        .into_iter()
        .map(|kind| FilterChain {
            name: name.to_owned(),
            filter_chain_match: Some(FilterChainMatch {
                destination_port: destination_port.map(|p| UInt32Value {
                    value: u32::from(p),
                }),
                transport_protocol: kind.transport.into(),
                application_protocols: if kind.istio_alpn {
                    mtls::ISTIO_MTLS_ALPNS
                        .iter()
                        .map(|s| (*s).to_owned())
                        .collect()
                } else {
                    Vec::new()
                },
                ..Default::default()
            }),
            filters: if kind.refuse {
                vec![filters::tcp_proxy(blackhole, blackhole, inputs.telemetry)]
            } else {
                filters.clone()
            },
            transport_socket: kind
                .mtls
                .then(|| mtls::transport_socket(http, mast_core::DEFAULT_TRUST_DOMAIN)),
            ..Default::default()
        })
        .collect()
}

fn port_match(port: u16) -> Option<FilterChainMatch> {
    Some(FilterChainMatch {
        destination_port: Some(UInt32Value {
            value: u32::from(port),
        }),
        ..Default::default()
    })
}

/// Whether some chain matches TLS (the listener then needs the TLS inspector).
fn has_tls_chain(chains: &[FilterChain]) -> bool {
    chains.iter().any(|c| {
        c.filter_chain_match
            .as_ref()
            .is_some_and(|m| m.transport_protocol == mtls::TLS_TRANSPORT)
    })
}

/// `virtualInbound`: 0.0.0.0:15006 with `original_dst` (and `tls_inspector` when a port has a
/// TLS chain), a blackhole chain for 15006 itself, the chains of each application port (all
/// named `0.0.0.0_<port>`, as Istio names them), and `InboundPassthroughCluster` as the default
/// chain.
pub fn virtual_inbound(inputs: &Inputs<'_>) -> Listener {
    let port = names::INBOUND_CAPTURE_PORT;
    let mut chains = vec![FilterChain {
        name: INBOUND_BLACKHOLE_CHAIN.into(),
        filter_chain_match: port_match(port),
        filters: vec![filters::tcp_proxy(
            names::BLACKHOLE_CLUSTER,
            names::BLACKHOLE_CLUSTER,
            inputs.telemetry,
        )],
        ..Default::default()
    }];
    for (app_port, protocol) in app_ports(inputs) {
        let name = format!("{WILDCARD}_{app_port}");
        chains.extend(port_chains(
            inputs,
            app_port,
            protocol,
            &name,
            Some(app_port),
        ));
    }
    let mut listener_filters = vec![filters::original_dst()];
    if has_tls_chain(&chains) {
        listener_filters.push(filters::tls_inspector());
    }
    let passthrough = names::INBOUND_PASSTHROUGH_CLUSTER;
    Listener {
        name: names::VIRTUAL_INBOUND.into(),
        address: Some(filters::socket_address(WILDCARD, port)),
        listener_filters,
        traffic_direction: TrafficDirection::Inbound as i32,
        filter_chains: chains,
        default_filter_chain: Some(FilterChain {
            name: names::VIRTUAL_INBOUND.into(),
            filters: vec![filters::tcp_proxy(
                passthrough,
                passthrough,
                inputs.telemetry,
            )],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The ports-mode inbound listeners: `mast_inbound_<app port>` on 127.0.0.1:<listener port>
/// for each entry of `inbound`; the protocol is the served service port's (TCP when no
/// service targets the port), each with the chains of its mTLS mode (no default chain: a
/// connection no chain matches is closed). An entry on the outbound listener's port is skipped.
pub fn explicit_inbound(
    inputs: &Inputs<'_>,
    outbound_port: u16,
    inbound: &BTreeMap<u16, u16>,
) -> Vec<Listener> {
    let protocols = app_ports(inputs);
    let mut out = Vec::with_capacity(inbound.len());
    for (&app_port, &listen_port) in inbound {
        if listen_port == outbound_port {
            tracing::warn!(
                app_port,
                listen_port,
                "inbound listener port is the outbound listener's; skipped"
            );
            continue;
        }
        let protocol = protocols.get(&app_port).copied().unwrap_or(Protocol::Tcp);
        let name = format!("{MAST_INBOUND_PREFIX}{app_port}");
        let chains = port_chains(inputs, app_port, protocol, "", None);
        let listener_filters = if has_tls_chain(&chains) {
            vec![filters::tls_inspector()]
        } else {
            Vec::new()
        };
        out.push(Listener {
            address: Some(filters::socket_address(LOCALHOST, listen_port)),
            traffic_direction: TrafficDirection::Inbound as i32,
            listener_filters,
            filter_chains: chains,
            name,
            ..Default::default()
        });
    }
    out
}
