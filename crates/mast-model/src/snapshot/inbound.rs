//! The service ports a proxy's workload serves, for its inbound listeners: services of its
//! namespace whose selector matches its labels, and services whose endpoints are the
//! proxy's own (see [`MeshSnapshot::inbound_ports`] for the exact rule).

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::{InboundPort, MeshSnapshot, selector_matches};
use crate::proxy::ProxyNode;
use crate::service::{Endpoint, Protocol, Service};

/// Whether `endpoint` is `proxy`'s workload.
fn is_proxy_endpoint(endpoint: &Endpoint, proxy: &ProxyNode) -> bool {
    if endpoint.address != proxy.ip {
        return false;
    }
    if !endpoint.namespace.is_empty() && endpoint.namespace != proxy.namespace {
        return false;
    }
    let loopback = proxy.ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    !loopback || (!endpoint.workload.is_empty() && endpoint.workload == proxy.workload)
}

/// See [`MeshSnapshot::inbound_ports`].
pub(super) fn inbound_ports<'a>(snap: &'a MeshSnapshot, proxy: &ProxyNode) -> Vec<InboundPort<'a>> {
    let by_ip = snap
        .by_endpoint_ip
        .get(&proxy.ip)
        .map_or(&[][..], Vec::as_slice);
    let by_ip: BTreeSet<usize> = by_ip
        .iter()
        .copied()
        .filter(|i| {
            let s = &snap.services[*i];
            !s.mesh_external
                && s.endpoints
                    .values()
                    .flatten()
                    .any(|e| is_proxy_endpoint(e, proxy))
        })
        .collect();
    let mut out: Vec<InboundPort<'a>> = Vec::new();
    for (i, service) in snap.services.iter().enumerate() {
        let selected = service.namespace == proxy.namespace
            && !service.selector.is_empty()
            && selector_matches(&service.selector, &proxy.labels);
        if selected || by_ip.contains(&i) {
            ports_of(snap, service, proxy, &mut out);
        }
    }
    out.sort_by(|a, b| {
        (a.target_port, &a.service.hostname, a.port.port).cmp(&(
            b.target_port,
            &b.service.hostname,
            b.port.port,
        ))
    });
    out.dedup_by(|b, a| a.target_port == b.target_port && a.service.hostname == b.service.hostname);
    out
}

/// The inbound ports of one service for `proxy` (UDP left out).
fn ports_of<'a>(
    snap: &MeshSnapshot,
    service: &'a Service,
    proxy: &ProxyNode,
    out: &mut Vec<InboundPort<'a>>,
) {
    for port in service.ports.iter().filter(|p| p.protocol != Protocol::Udp) {
        let own = service
            .endpoints_for(port.port)
            .iter()
            .find(|e| is_proxy_endpoint(e, proxy));
        let target_port = own
            .map(|e| e.port)
            .or_else(|| snap.numeric_target_port(&service.hostname, port.port))
            .unwrap_or(port.port);
        out.push(InboundPort {
            service,
            port,
            target_port,
        });
    }
}
