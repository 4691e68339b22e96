//! A Kubernetes `Service` as a mesh [`Service`]: host `<name>.<ns>.svc.<suffix>`, ports
//! with protocols, the ClusterIP, `networking.istio.io/exportTo`, and endpoints from the
//! same-named `Endpoints` object, from the Pods its selector matches and from the
//! `WorkloadEntry`s its selector matches (in that order; an address+port seen before is
//! not repeated).
//!
//! `type: ExternalName` becomes a DNS service whose one endpoint per port is the external
//! name (Istio models it as an alias; Mast resolves it like a DNS ServiceEntry).

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use mast_config::Resource;
use mast_core::Hostname;

use super::build::{Declared, EndpointSet, Inputs, PodRef};
use super::{SnapshotOptions, TargetPort};
use crate::service::{Endpoint, Protocol, Resolution, Service, ServicePort};

/// The annotation that sets a Kubernetes Service's `exportTo`.
pub const EXPORT_TO_ANNOTATION: &str = "networking.istio.io/exportTo";

/// One port of a Kubernetes Service, as endpoints need it.
struct KubePort<'a> {
    name: &'a str,
    port: u16,
    target: Option<&'a IntOrString>,
    service_port: ServicePort,
}

impl KubePort<'_> {
    /// The `targetPort` as declared, for the snapshot's index.
    fn declared_target(&self) -> Option<(u16, TargetPort)> {
        let t = match self.target? {
            IntOrString::Int(n) => TargetPort::Number(u16::try_from(*n).ok().filter(|p| *p > 0)?),
            IntOrString::String(s) => TargetPort::Name(s.clone()),
        };
        Some((self.port, t))
    }

    /// The numeric target port, else the service port (named ports need a pod).
    fn numeric_target(&self) -> u16 {
        match self.target {
            Some(IntOrString::Int(n)) => u16::try_from(*n)
                .ok()
                .filter(|p| *p > 0)
                .unwrap_or(self.port),
            _ => self.port,
        }
    }

    /// The target port on `pod`: numeric, or the named container port; `None` when the
    /// pod has no port by that name (Kubernetes leaves such a pod out).
    fn target_on(&self, pod: &PodRef<'_>) -> Option<u16> {
        match self.target {
            Some(IntOrString::String(name)) => pod.named_port(name),
            _ => Some(self.numeric_target()),
        }
    }
}

/// Declares the mesh service for a Kubernetes `Service`.
pub(super) fn service(
    r: &Resource,
    svc: &core::Service,
    inputs: &Inputs<'_>,
    options: &SnapshotOptions,
) -> Declared {
    let (name, ns) = (r.name(), r.namespace());
    let default_spec = core::ServiceSpec::default();
    let spec = svc.spec.as_ref().unwrap_or(&default_spec);
    let kube_ports = kube_ports(spec);
    let selector = spec.selector.clone().unwrap_or_default();
    let external_name = (spec.type_.as_deref() == Some("ExternalName"))
        .then(|| spec.external_name.clone().unwrap_or_default())
        .filter(|n| !n.is_empty());
    let endpoints = match &external_name {
        Some(ext) => external_endpoints(ext, ns, &kube_ports),
        None => endpoints(ns, name, &selector, &kube_ports, inputs),
    };
    let service = Service {
        hostname: Hostname::new_unchecked(format!("{name}.{ns}.svc.{}", options.domain_suffix)),
        namespace: ns.to_owned(),
        name: name.to_owned(),
        ports: kube_ports.iter().map(|p| p.service_port.clone()).collect(),
        addresses: cluster_ips(spec),
        export_to: export_to(r),
        mesh_external: false,
        resolution: if external_name.is_some() {
            Resolution::Dns
        } else {
            Resolution::Static
        },
        selector,
        endpoints,
    };
    Declared {
        service,
        target_ports: kube_ports
            .iter()
            .filter_map(KubePort::declared_target)
            .collect(),
    }
}

/// The ports of a Service spec (ports without a valid number are left out).
fn kube_ports(spec: &core::ServiceSpec) -> Vec<KubePort<'_>> {
    spec.ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let name = p.name.as_deref().unwrap_or("");
            let port = u16::try_from(p.port).ok().filter(|n| *n > 0)?;
            Some(KubePort {
                name,
                port,
                target: p.target_port.as_ref(),
                service_port: ServicePort {
                    name: name.to_owned(),
                    port,
                    protocol: Protocol::from_port(
                        name,
                        p.app_protocol.as_deref(),
                        p.protocol.as_deref(),
                    ),
                },
            })
        })
        .collect()
}

/// The ClusterIPs, leaving out headless (`None`) and empty ones.
fn cluster_ips(spec: &core::ServiceSpec) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let all = spec
        .cluster_ip
        .iter()
        .chain(spec.cluster_ips.iter().flatten());
    for ip in all {
        let ip = ip.trim();
        if !ip.is_empty() && !ip.eq_ignore_ascii_case("none") && !out.iter().any(|o| o == ip) {
            out.push(ip.to_owned());
        }
    }
    out
}

/// `exportTo` from the `networking.istio.io/exportTo` annotation (comma-separated).
fn export_to(r: &Resource) -> Vec<String> {
    r.annotations()
        .get(EXPORT_TO_ANNOTATION)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// One endpoint per port at the external name (ExternalName services).
fn external_endpoints(
    ext: &str,
    ns: &str,
    ports: &[KubePort<'_>],
) -> std::collections::BTreeMap<u16, Vec<Endpoint>> {
    let mut set = EndpointSet::default();
    for p in ports {
        set.add(
            p.port,
            Some(Endpoint {
                address: ext.to_owned(),
                port: p.port,
                labels: Default::default(),
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

/// Endpoints from the `Endpoints` object, then selected Pods, then selected WorkloadEntries.
fn endpoints(
    ns: &str,
    name: &str,
    selector: &std::collections::BTreeMap<String, String>,
    ports: &[KubePort<'_>],
    inputs: &Inputs<'_>,
) -> std::collections::BTreeMap<u16, Vec<Endpoint>> {
    let mut set = EndpointSet::default();
    if let Some(eps) = inputs.endpoints.get(&(ns, name)) {
        from_endpoints_object(eps, ns, ports, inputs, &mut set);
    }
    for pod in inputs.pods_selected(ns, selector) {
        for p in ports {
            if let Some(target) = p.target_on(&pod) {
                set.add(p.port, pod.endpoint(target));
            }
        }
    }
    for we in inputs.workloads_selected(ns, selector) {
        for p in ports {
            let named = we
                .spec
                .ports
                .get(p.name)
                .and_then(|n| super::build::port_number(*n));
            set.add(
                p.port,
                we.endpoint(named.unwrap_or_else(|| p.numeric_target())),
            );
        }
    }
    set.into_map()
}

/// Each subset's ready addresses × its ports, matched to service ports by name (or when
/// both sides have a single port).
fn from_endpoints_object(
    eps: &core::Endpoints,
    ns: &str,
    ports: &[KubePort<'_>],
    inputs: &Inputs<'_>,
    set: &mut EndpointSet,
) {
    for subset in eps.subsets.iter().flatten() {
        let subset_ports = subset.ports.as_deref().unwrap_or(&[]);
        for sp in subset_ports {
            let Some(target) = u16::try_from(sp.port).ok().filter(|p| *p > 0) else {
                continue;
            };
            let sp_name = sp.name.as_deref().unwrap_or("");
            let single = ports.len() == 1 && subset_ports.len() == 1;
            let Some(svc_port) = ports
                .iter()
                .find(|p| single || (!p.name.is_empty() && p.name == sp_name))
            else {
                continue;
            };
            for addr in subset.addresses.iter().flatten() {
                set.add(
                    svc_port.port,
                    Some(address_endpoint(addr, ns, target, inputs)),
                );
            }
        }
    }
}

/// An endpoint for one `Endpoints` address, with the pod's labels when its `targetRef`
/// names a Pod the snapshot has.
fn address_endpoint(
    addr: &core::EndpointAddress,
    ns: &str,
    port: u16,
    inputs: &Inputs<'_>,
) -> Endpoint {
    let pod_ref = addr
        .target_ref
        .as_ref()
        .filter(|t| t.kind.as_deref() == Some("Pod"));
    let pod_name = pod_ref.and_then(|t| t.name.as_deref()).unwrap_or("");
    let pod_ns = pod_ref
        .and_then(|t| t.namespace.as_deref())
        .filter(|n| !n.is_empty())
        .unwrap_or(ns);
    let pod = inputs.pods_by_name.get(&(pod_ns, pod_name));
    Endpoint {
        address: addr.ip.clone(),
        port,
        labels: pod.map(|p| p.labels.clone()).unwrap_or_default(),
        namespace: pod_ns.to_owned(),
        workload: pod_name.to_owned(),
        service_account: pod
            .map(|p| p.service_account().to_owned())
            .unwrap_or_default(),
        weight: 1,
        healthy: true,
    }
}
