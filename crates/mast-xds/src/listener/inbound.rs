//! Inbound listeners: `virtualInbound` on 15006 (iptables capture), with one chain per port
//! the workload serves, matched by destination port, and a fallback to
//! `InboundPassthroughCluster`; and the ports-mode `mast_inbound_<app port>` listeners on
//! 127.0.0.1.
//!
//! A chain carries an HTTP connection manager with an inline route to `inbound|<port>||`
//! for HTTP ports, a `tcp_proxy` to it otherwise. The port in both names is the port the
//! application listens on (the service's target port), as Istio names inbound clusters.

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

/// The network filters that hand a connection to the application on `app_port`.
fn app_filters(app_port: u16, protocol: Protocol, stat_prefix: String) -> Vec<Filter> {
    let cluster = names::inbound_cluster(app_port);
    if protocol.is_http() {
        vec![filters::hcm_filter(HcmSpec {
            stat_prefix,
            routes: RouteSource::Inline(Box::new(filters::inbound_route_config(
                app_port, &cluster,
            ))),
            outbound: false,
            http2: protocol.is_http2(),
            http_proxy: false,
        })]
    } else {
        vec![filters::tcp_proxy(&cluster, &cluster)]
    }
}

fn port_match(port: u16) -> Option<FilterChainMatch> {
    Some(FilterChainMatch {
        destination_port: Some(UInt32Value {
            value: u32::from(port),
        }),
        ..Default::default()
    })
}

/// `virtualInbound`: 0.0.0.0:15006 with `original_dst`, a blackhole chain for 15006 itself,
/// one chain per application port (`0.0.0.0_<port>`), and `InboundPassthroughCluster` as
/// the default chain.
pub fn virtual_inbound(inputs: &Inputs<'_>) -> Listener {
    let port = names::INBOUND_CAPTURE_PORT;
    let mut chains = vec![FilterChain {
        name: INBOUND_BLACKHOLE_CHAIN.into(),
        filter_chain_match: port_match(port),
        filters: vec![filters::tcp_proxy(
            names::BLACKHOLE_CLUSTER,
            names::BLACKHOLE_CLUSTER,
        )],
        ..Default::default()
    }];
    for (app_port, protocol) in app_ports(inputs) {
        let name = format!("{WILDCARD}_{app_port}");
        chains.push(FilterChain {
            filter_chain_match: port_match(app_port),
            filters: app_filters(app_port, protocol, format!("inbound_{name}")),
            name,
            ..Default::default()
        });
    }
    let passthrough = names::INBOUND_PASSTHROUGH_CLUSTER;
    Listener {
        name: names::VIRTUAL_INBOUND.into(),
        address: Some(filters::socket_address(WILDCARD, port)),
        listener_filters: vec![filters::original_dst()],
        traffic_direction: TrafficDirection::Inbound as i32,
        filter_chains: chains,
        default_filter_chain: Some(FilterChain {
            name: names::VIRTUAL_INBOUND.into(),
            filters: vec![filters::tcp_proxy(passthrough, passthrough)],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The ports-mode inbound listeners: `mast_inbound_<app port>` on 127.0.0.1:<listener port>
/// for each entry of `inbound`; the protocol is the served service port's (TCP when no
/// service targets the port). An entry on the outbound listener's port is skipped.
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
        out.push(Listener {
            address: Some(filters::socket_address(LOCALHOST, listen_port)),
            traffic_direction: TrafficDirection::Inbound as i32,
            filter_chains: vec![FilterChain {
                filters: app_filters(app_port, protocol, format!("inbound_{app_port}")),
                ..Default::default()
            }],
            name,
            ..Default::default()
        });
    }
    out
}
