//! The service ports a proxy's workload serves, for its inbound listeners: services of its
//! namespace whose selector matches its labels, and services whose endpoints are the
//! proxy's own (see [`MeshSnapshot::inbound_ports`] for the exact rule).

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::{InboundPort, MeshSnapshot, selector_matches};
use crate::proxy::{CaptureMode, ProxyNode};
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

/// The application port behind an endpoint port of the proxy's own workload: in ports
/// capture, an endpoint may name the sidecar's inbound listener (`mastctl up` registers each
/// local workload at its sidecar's listener, so traffic enters through it); the application
/// then listens on the port mapped to that listener in `MAST_INBOUND_PORTS`.
fn app_port(proxy: &ProxyNode, endpoint_port: u16) -> u16 {
    match &proxy.capture {
        CaptureMode::Ports { inbound, .. } => inbound
            .iter()
            .find(|(_, listen)| **listen == endpoint_port)
            .map_or(endpoint_port, |(app, _)| *app),
        CaptureMode::Iptables => endpoint_port,
    }
}

/// In ports capture a sidecar has inbound listeners only for its `MAST_INBOUND_PORTS`
/// application ports. A workload serving a single port (a `mastctl up` LocalWorkload) serves
/// every port of the Services that select it there, whatever their `targetPort`: map a target
/// port it has no listener for to that one port.
fn only_app_port(proxy: &ProxyNode, target_port: u16) -> u16 {
    match &proxy.capture {
        CaptureMode::Ports { inbound, .. }
            if inbound.len() == 1 && !inbound.contains_key(&target_port) =>
        {
            inbound.keys().next().copied().unwrap_or(target_port)
        }
        _ => target_port,
    }
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
            .map(|e| app_port(proxy, e.port))
            .or_else(|| snap.numeric_target_port(&service.hostname, port.port))
            .unwrap_or(port.port);
        let target_port = only_app_port(proxy, target_port);
        out.push(InboundPort {
            service,
            port,
            target_port,
        });
    }
}
