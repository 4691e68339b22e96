//! `/api/services`: every service of the mesh snapshot with its ports, endpoints, workloads,
//! inbound rate, error rate and health (from the graph), the VirtualServices and
//! DestinationRules that apply to it, and how many configuration messages are about it or
//! them.

use std::collections::BTreeSet;

use mast_model::{MeshSnapshot, Protocol, Service};
use serde::Serialize;

use super::config::MessageJson;
use super::view::View;
use crate::graph::Health;
use crate::graph::edges::service_id;

/// One service port.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortJson {
    /// The port number.
    pub port: u16,
    /// Its name.
    pub name: String,
    /// Istio's protocol name (`HTTP`, `HTTP2`, `GRPC`, `TCP`, …).
    pub protocol: &'static str,
}

/// A configuration resource that applies to a service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigRef {
    /// `VirtualService` or `DestinationRule`.
    pub kind: &'static str,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// One entry of `/api/services`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceJson {
    /// The service's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its host name.
    pub host: String,
    /// Its ports.
    pub ports: Vec<PortJson>,
    /// How many endpoint addresses it has.
    pub endpoints: usize,
    /// Its workloads (`namespace/name`).
    pub workloads: Vec<String>,
    /// Inbound requests per second.
    pub rps: f64,
    /// Inbound error rate (0..1).
    pub error_rate: f64,
    /// Its health.
    pub health: Health,
    /// The VirtualServices and DestinationRules that apply.
    pub config: Vec<ConfigRef>,
    /// How many configuration messages are about it or its configuration.
    pub messages: usize,
}

/// Istio's name for a protocol.
pub fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Http => "HTTP",
        Protocol::Http2 => "HTTP2",
        Protocol::Grpc => "GRPC",
        Protocol::GrpcWeb => "GRPC-Web",
        Protocol::Https => "HTTPS",
        Protocol::Tcp => "TCP",
        Protocol::Tls => "TLS",
        Protocol::Udp => "UDP",
        Protocol::Mongo => "Mongo",
        Protocol::Mysql => "MySQL",
        Protocol::Redis => "Redis",
        Protocol::Unsupported => "UnsupportedProtocol",
    }
}

/// The VirtualServices (by host) and DestinationRules that apply to `svc`.
pub fn config_of(snapshot: &MeshSnapshot, svc: &Service) -> Vec<ConfigRef> {
    let mut out = BTreeSet::new();
    for vs in snapshot.all_virtual_services() {
        let applies = vs.spec.hosts.iter().any(|h| {
            snapshot
                .service_for_vs_host(vs, h)
                .is_some_and(|s| s.hostname == svc.hostname)
        });
        if applies {
            out.insert(ConfigRef {
                kind: "VirtualService",
                namespace: vs.namespace.clone(),
                name: vs.name.clone(),
            });
        }
    }
    for dr in snapshot.all_destination_rules() {
        if snapshot
            .service_for_dr(dr)
            .is_some_and(|s| s.hostname == svc.hostname)
        {
            out.insert(ConfigRef {
                kind: "DestinationRule",
                namespace: dr.namespace.clone(),
                name: dr.name.clone(),
            });
        }
    }
    out.into_iter().collect()
}

/// The `/api/services` body.
pub fn services(view: &View, messages: &[MessageJson]) -> Vec<ServiceJson> {
    view.snapshot
        .services()
        .map(|svc| service(view, svc, messages))
        .collect()
}

fn service(view: &View, svc: &Service, messages: &[MessageJson]) -> ServiceJson {
    let host = svc.hostname.to_string();
    let (rps, error_rate, health) = view.rates(&service_id(&host));
    let eps = svc.endpoints.values().flatten();
    // Endpoints of the port that has most (every port lists the same instances); distinct by
    // address and port, as a local mesh runs every workload on 127.0.0.1.
    let endpoints = svc
        .endpoints
        .values()
        .map(|port| {
            port.iter()
                .map(|e| (e.address.as_str(), e.port))
                .collect::<BTreeSet<_>>()
                .len()
        })
        .max()
        .unwrap_or(0);
    let workloads: BTreeSet<String> = eps
        .filter(|e| !e.workload.is_empty())
        .map(|e| format!("{}/{}", e.namespace, e.workload))
        .collect();
    let config = config_of(&view.snapshot, svc);
    let mut about: BTreeSet<String> = config
        .iter()
        .map(|c| format!("{} {}/{}", c.kind, c.namespace, c.name))
        .collect();
    about.insert(format!("Service {}/{}", svc.namespace, svc.name));
    ServiceJson {
        name: svc.name.clone(),
        namespace: svc.namespace.clone(),
        host,
        ports: svc
            .ports
            .iter()
            .map(|p| PortJson {
                port: p.port,
                name: p.name.clone(),
                protocol: protocol_name(p.protocol),
            })
            .collect(),
        endpoints,
        workloads: workloads.into_iter().collect(),
        rps,
        error_rate,
        health,
        config,
        messages: messages
            .iter()
            .filter(|m| m.resource.as_ref().is_some_and(|r| about.contains(r)))
            .count(),
    }
}
