//! A `ServiceEntry` as mesh [`Service`]s, one per host (short hosts qualified with the
//! entry's namespace): ports with protocols, addresses, `exportTo`, location, resolution,
//! and endpoints from `spec.endpoints`, or from the `WorkloadEntry`s and Pods of its
//! namespace that `workloadSelector` matches. A DNS entry without endpoints resolves its
//! own host: one endpoint per port whose address is the host (not for wildcard hosts).
//!
//! Resolution: `STATIC` → static, `DNS` and `DNS_ROUND_ROBIN` → DNS, `NONE` and
//! `DYNAMIC_DNS` → passthrough (Mast has no per-request DNS cluster).

use std::collections::BTreeMap;

use mast_config::Resource;
use mast_config::networking::ServiceEntry;
use mast_config::networking::service_entry::{Location, Resolution as SeResolution};

use super::build::{Declared, EndpointSet, Inputs, port_number, workload_endpoint};
use super::{SnapshotOptions, TargetPort};
use crate::service::{Endpoint, Protocol, Resolution, Service, ServicePort};

/// A port of the entry with the port its endpoints listen on by default.
struct EntryPort {
    service_port: ServicePort,
    target: u16,
    declared_target: Option<u16>,
}

/// Declares one service per host of a `ServiceEntry`.
pub(super) fn services(
    r: &Resource,
    se: &ServiceEntry,
    inputs: &Inputs<'_>,
    options: &SnapshotOptions,
) -> Vec<Declared> {
    let ns = r.namespace();
    let ports = entry_ports(se);
    let resolution = resolution(se);
    let shared = endpoints(r, se, &ports, inputs);
    se.hosts
        .iter()
        .map(|h| {
            let hostname =
                mast_core::Hostname::new_unchecked(h.as_str()).resolve(ns, &options.domain_suffix);
            let endpoints =
                if shared.is_empty() && resolution == Resolution::Dns && !hostname.is_wildcard() {
                    dns_self_endpoints(hostname.as_str(), ns, &ports)
                } else {
                    shared.clone()
                };
            let service = Service {
                hostname,
                namespace: ns.to_owned(),
                name: r.name().to_owned(),
                ports: ports.iter().map(|p| p.service_port.clone()).collect(),
                addresses: se.addresses.clone(),
                export_to: se.export_to.clone(),
                mesh_external: se.location() == Location::MeshExternal,
                resolution,
                selector: se
                    .workload_selector
                    .as_ref()
                    .map(|s| s.labels.clone())
                    .unwrap_or_default(),
                endpoints,
            };
            let target_ports = ports
                .iter()
                .filter_map(|p| Some((p.service_port.port, TargetPort::Number(p.declared_target?))))
                .collect();
            Declared {
                service,
                target_ports,
            }
        })
        .collect()
}

/// The entry's ports (ports without a valid number are left out).
fn entry_ports(se: &ServiceEntry) -> Vec<EntryPort> {
    se.ports
        .iter()
        .filter_map(|p| {
            let number = port_number(p.number?)?;
            let declared_target = p.target_port.and_then(port_number);
            Some(EntryPort {
                service_port: ServicePort {
                    name: p.name.clone().unwrap_or_default(),
                    port: number,
                    protocol: Protocol::parse(p.protocol.as_deref().unwrap_or("")),
                },
                target: declared_target.unwrap_or(number),
                declared_target,
            })
        })
        .collect()
}

/// How the proxy finds the entry's endpoints.
fn resolution(se: &ServiceEntry) -> Resolution {
    match se.resolution() {
        SeResolution::Static => Resolution::Static,
        SeResolution::Dns | SeResolution::DnsRoundRobin => Resolution::Dns,
        SeResolution::None | SeResolution::DynamicDns => Resolution::Passthrough,
    }
}

/// Endpoints from `spec.endpoints`, else from the workloads `workloadSelector` matches.
fn endpoints(
    r: &Resource,
    se: &ServiceEntry,
    ports: &[EntryPort],
    inputs: &Inputs<'_>,
) -> BTreeMap<u16, Vec<Endpoint>> {
    let ns = r.namespace();
    let mut set = EndpointSet::default();
    let named = |we_ports: &BTreeMap<String, i64>, p: &EntryPort| {
        we_ports
            .get(&p.service_port.name)
            .and_then(|n| port_number(*n))
            .unwrap_or(p.target)
    };
    if !se.endpoints.is_empty() {
        for ep in &se.endpoints {
            for p in ports {
                set.add(
                    p.service_port.port,
                    workload_endpoint(ep, ns, "", named(&ep.ports, p)),
                );
            }
        }
    } else if let Some(selector) = &se.workload_selector {
        for we in inputs.workloads_selected(ns, &selector.labels) {
            for p in ports {
                set.add(p.service_port.port, we.endpoint(named(&we.spec.ports, p)));
            }
        }
        for pod in inputs.pods_selected(ns, &selector.labels) {
            for p in ports {
                set.add(p.service_port.port, pod.endpoint(p.target));
            }
        }
    }
    set.into_map()
}

/// One endpoint per port whose address is the host itself (DNS resolution, no endpoints).
fn dns_self_endpoints(host: &str, ns: &str, ports: &[EntryPort]) -> BTreeMap<u16, Vec<Endpoint>> {
    let mut set = EndpointSet::default();
    for p in ports {
        set.add(
            p.service_port.port,
            Some(Endpoint {
                address: host.to_owned(),
                port: p.target,
                labels: BTreeMap::new(),
                namespace: ns.to_owned(),
                workload: String::new(),
                service_account: String::new(),
                weight: 1,
                healthy: true,
            }),
        );
    }
    set.into_map()
}
