//! Outbound listeners: `virtualOutbound` on 15001 (iptables capture), one listener per
//! visible service port behind it (`bind_to_port: false`, reached through original
//! destination), and the ports-mode `mast_outbound` HTTP proxy.
//!
//! Listeners are keyed by (address, port) as in Istio: HTTP ports share `0.0.0.0_<port>` (the
//! RDS route `"<port>"` tells hosts apart); TCP/TLS ports listen on the service VIP
//! (`<vip>_<port>`), or on `0.0.0.0_<port>` when the service has none, where the chains of
//! several services merge (distinct SNI or subnets; identical matches keep the first).
//! When an HTTP and a TCP port meet on the same wildcard address, HTTP wins (Istio would
//! sniff the protocol; Mast does not) and a warning is logged.

use std::collections::BTreeMap;
use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use mast_model::{OutboundPolicy, Protocol, Resolution, Service, ServicePort};

use super::chain::{self, ChainOpts, Cidr, push_unique};
use super::filters::{self, HcmSpec, LOCALHOST, RouteSource, Telemetry, WILDCARD};
use super::l4::{self, PortCtx};
use super::{Inputs, MAST_OUTBOUND, RESERVED_PORTS};
use crate::names;

/// Name of the `virtualOutbound` chain that drops traffic addressed to 15001 itself.
pub const OUTBOUND_BLACKHOLE_CHAIN: &str = "virtualOutbound-blackhole";
/// Name of the `virtualOutbound` default chain.
pub const OUTBOUND_CATCH_ALL_CHAIN: &str = "virtualOutbound-catchall-tcp";

/// The cluster unknown destinations go to under `policy`.
fn catch_all_cluster(policy: OutboundPolicy) -> &'static str {
    match policy {
        OutboundPolicy::AllowAny => names::PASSTHROUGH_CLUSTER,
        OutboundPolicy::RegistryOnly => names::BLACKHOLE_CLUSTER,
    }
}

/// `tcp_proxy` to `PassthroughCluster` (ALLOW_ANY) or `BlackHoleCluster` (REGISTRY_ONLY).
pub fn catch_all_filters(policy: OutboundPolicy, telemetry: &Telemetry) -> Vec<Filter> {
    let cluster = catch_all_cluster(policy);
    vec![filters::tcp_proxy(cluster, cluster, telemetry)]
}

/// `virtualOutbound`: 0.0.0.0:15001, `use_original_dst`, the `original_dst` listener filter,
/// a chain dropping traffic sent to 15001 itself, and the catch-all as default chain.
pub fn virtual_outbound(policy: OutboundPolicy, telemetry: &Telemetry) -> Listener {
    let port = names::OUTBOUND_CAPTURE_PORT;
    let blackhole = FilterChain {
        name: OUTBOUND_BLACKHOLE_CHAIN.into(),
        filter_chain_match: Some(FilterChainMatch {
            destination_port: Some(UInt32Value {
                value: u32::from(port),
            }),
            ..Default::default()
        }),
        filters: vec![filters::tcp_proxy(
            names::BLACKHOLE_CLUSTER,
            names::BLACKHOLE_CLUSTER,
            telemetry,
        )],
        ..Default::default()
    };
    Listener {
        name: names::VIRTUAL_OUTBOUND.into(),
        address: Some(filters::socket_address(WILDCARD, port)),
        use_original_dst: filters::bool_value(true),
        listener_filters: vec![filters::original_dst()],
        traffic_direction: TrafficDirection::Outbound as i32,
        filter_chains: vec![blackhole],
        default_filter_chain: Some(FilterChain {
            name: OUTBOUND_CATCH_ALL_CHAIN.into(),
            filters: catch_all_filters(policy, telemetry),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The ports-mode outbound listener: `mast_outbound` on 127.0.0.1:`port`, an HTTP proxy
/// (absolute-form URLs, `CONNECT`) routed by RDS route `mast_outbound`.
pub fn explicit_outbound(port: u16, telemetry: &Telemetry) -> Listener {
    let hcm = filters::hcm_filter(
        HcmSpec {
            stat_prefix: format!("outbound_{MAST_OUTBOUND}"),
            routes: RouteSource::Rds(MAST_OUTBOUND.into()),
            outbound: true,
            http2: false,
            http_proxy: true,
        },
        telemetry,
    );
    Listener {
        name: MAST_OUTBOUND.into(),
        address: Some(filters::socket_address(LOCALHOST, port)),
        traffic_direction: TrafficDirection::Outbound as i32,
        filter_chains: vec![FilterChain {
            filters: vec![hcm],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// What one (address, port) listener carries.
enum Entry {
    /// An HTTP connection manager on RDS `"<port>"`.
    Http,
    /// TCP/TLS chains, merged across services.
    Tcp(Vec<ChainOpts>),
}

/// One listener per (address, port) of the visible services' ports, sorted by key.
pub fn service_listeners(inputs: &Inputs<'_>) -> Vec<Listener> {
    let mut entries: BTreeMap<(String, u16), Entry> = BTreeMap::new();
    for service in &inputs.services {
        for port in &service.ports {
            if port.protocol == Protocol::Udp || RESERVED_PORTS.contains(&port.port) {
                if port.protocol != Protocol::Udp {
                    tracing::warn!(host = %service.hostname, port = port.port, "service port is reserved by the sidecar; no listener");
                }
                continue;
            }
            if port.protocol.is_http() {
                add_http(&mut entries, service, port.port);
            } else {
                add_tcp(inputs, &mut entries, service, port);
            }
        }
    }
    entries
        .into_iter()
        .map(|((bind, port), entry)| match entry {
            Entry::Http => http_listener(port, inputs.telemetry),
            Entry::Tcp(chains) => tcp_listener(&bind, port, chains, inputs),
        })
        .collect()
}

fn add_http(entries: &mut BTreeMap<(String, u16), Entry>, service: &Service, port: u16) {
    let key = (WILDCARD.to_owned(), port);
    if let Some(Entry::Tcp(_)) = entries.get(&key) {
        tracing::warn!(host = %service.hostname, port, "HTTP port replaces TCP services on the same wildcard listener");
    }
    entries.insert(key, Entry::Http);
}

fn add_tcp(
    inputs: &Inputs<'_>,
    entries: &mut BTreeMap<(String, u16), Entry>,
    service: &Service,
    port: &ServicePort,
) {
    for (bind, cidr) in binds(inputs, service, port.port) {
        let ctx = PortCtx {
            service,
            port,
            wildcard_bind: bind == WILDCARD,
            cidr,
        };
        let chains = l4::chains(inputs, &ctx);
        let entry = entries
            .entry((bind, port.port))
            .or_insert_with(|| Entry::Tcp(Vec::new()));
        let Entry::Tcp(existing) = entry else {
            tracing::warn!(host = %service.hostname, port = port.port, "TCP port conflicts with an HTTP listener on the same address; skipped");
            continue;
        };
        for chain in chains {
            if !push_unique(existing, chain) {
                tracing::warn!(host = %service.hostname, port = port.port, "filter chain with the same match already on the listener; skipped");
            }
        }
    }
}

/// Where a TCP service port listens: its first address (a VIP, or the wildcard with a prefix
/// match for a CIDR), else the wildcard — except for passthrough services without address,
/// which get a listener per endpoint IP (other than the proxy's own), as Istio does for
/// headless services.
fn binds(inputs: &Inputs<'_>, service: &Service, port: u16) -> Vec<(String, Option<Cidr>)> {
    if let Some(addr) = service.addresses.first() {
        if let Ok(ip) = addr.parse::<IpAddr>() {
            let bind = if ip.is_unspecified() {
                WILDCARD.to_owned()
            } else {
                ip.to_string()
            };
            return vec![(bind, None)];
        }
        if let Some(cidr) = Cidr::parse(addr) {
            return vec![(
                WILDCARD.to_owned(),
                Some(cidr).filter(|c| !c.is_unspecified()),
            )];
        }
        tracing::warn!(host = %service.hostname, address = %addr, "service address is not an IP or CIDR; listening on the wildcard");
    }
    let endpoints = service.endpoints_for(port);
    if service.resolution == Resolution::Passthrough && !endpoints.is_empty() {
        let mut ips: Vec<String> = endpoints
            .iter()
            .filter_map(|e| e.address.parse::<IpAddr>().ok())
            .map(|ip| ip.to_string())
            .filter(|ip| *ip != inputs.proxy.ip)
            .collect();
        ips.sort();
        ips.dedup();
        return ips.into_iter().map(|ip| (ip, None)).collect();
    }
    vec![(WILDCARD.to_owned(), None)]
}

/// `<bind>_<port>`, as Istio names listeners.
fn listener_name(bind: &str, port: u16) -> String {
    format!("{bind}_{port}")
}

fn base_listener(bind: &str, port: u16) -> Listener {
    Listener {
        name: listener_name(bind, port),
        address: Some(filters::socket_address(bind, port)),
        bind_to_port: filters::bool_value(false),
        traffic_direction: TrafficDirection::Outbound as i32,
        ..Default::default()
    }
}

/// `0.0.0.0_<port>`: one chain, an HTTP connection manager on RDS route `"<port>"`.
fn http_listener(port: u16, telemetry: &Telemetry) -> Listener {
    let mut listener = base_listener(WILDCARD, port);
    let hcm = filters::hcm_filter(
        HcmSpec {
            stat_prefix: format!("outbound_{}", listener.name),
            routes: RouteSource::Rds(port.to_string()),
            outbound: true,
            http2: false,
            http_proxy: false,
        },
        telemetry,
    );
    listener.filter_chains = vec![FilterChain {
        filters: vec![hcm],
        ..Default::default()
    }];
    listener
}

/// `<bind>_<port>` with TCP/TLS chains and the catch-all fallback.
fn tcp_listener(bind: &str, port: u16, chains: Vec<ChainOpts>, inputs: &Inputs<'_>) -> Listener {
    let mut listener = base_listener(bind, port);
    let fallback = catch_all_filters(inputs.policy, inputs.telemetry);
    chain::install(&mut listener, chains, fallback);
    listener
}
