//! Assembling a [`MeshSnapshot`] from resources: sorting the inputs by kind, declaring
//! services (Kubernetes `Service` first, then `ServiceEntry`, so a Kubernetes Service owns
//! its host), indexing them, and keeping the Istio configuration per kind.
//!
//! Also owns the endpoint helpers both service sources share: an endpoint from a Pod or a
//! `WorkloadEntry`, and a per-port set that drops repeated address+port pairs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use mast_config::Resource;
use mast_config::networking::{ServiceEntry, WorkloadEntry};
use mast_core::Hostname;

use super::{Config, DrIndex, MeshSnapshot, SnapshotOptions, TargetPort, kube, service_entry};
use crate::service::{Endpoint, Service};

/// Istio's annotation that makes an AuthorizationPolicy log only.
const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";

/// A Pod with the metadata the loader defaulted.
#[derive(Clone, Copy)]
pub(super) struct PodRef<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub pod: &'a core::Pod,
}

impl PodRef<'_> {
    /// The pod's IP, when it has one and is not finished.
    pub fn ip(&self) -> Option<&str> {
        let status = self.pod.status.as_ref()?;
        let done = matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
        let ip = status.pod_ip.as_deref().filter(|ip| !ip.is_empty())?;
        (!done && self.pod.metadata.deletion_timestamp.is_none()).then_some(ip)
    }

    /// The service account the pod runs as (empty when unset).
    pub fn service_account(&self) -> &str {
        let spec = self.pod.spec.as_ref();
        spec.and_then(|s| {
            s.service_account_name
                .as_deref()
                .or(s.service_account.as_deref())
        })
        .unwrap_or("")
    }

    /// The number of the container port called `name`.
    pub fn named_port(&self, name: &str) -> Option<u16> {
        let spec = self.pod.spec.as_ref()?;
        spec.containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.container_port).ok())
    }

    /// An endpoint for this pod on `port`, when the pod has an IP.
    pub fn endpoint(&self, port: u16) -> Option<Endpoint> {
        Some(Endpoint {
            address: self.ip()?.to_owned(),
            port,
            labels: self.labels.clone(),
            namespace: self.namespace.to_owned(),
            workload: self.name.to_owned(),
            service_account: self.service_account().to_owned(),
            weight: 1,
            healthy: true,
        })
    }
}

/// A `WorkloadEntry` with its name and namespace.
#[derive(Clone, Copy)]
pub(super) struct WorkloadRef<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub spec: &'a WorkloadEntry,
}

impl WorkloadRef<'_> {
    /// An endpoint for this workload on `port`, when it has an address.
    pub fn endpoint(&self, port: u16) -> Option<Endpoint> {
        workload_endpoint(self.spec, self.namespace, self.name, port)
    }
}

/// An endpoint from a `WorkloadEntry` spec (a standalone one or a `ServiceEntry` endpoint).
pub(super) fn workload_endpoint(
    we: &WorkloadEntry,
    namespace: &str,
    name: &str,
    port: u16,
) -> Option<Endpoint> {
    let address = we.address();
    if address.is_empty() {
        return None;
    }
    Some(Endpoint {
        address: address.to_owned(),
        port,
        labels: we.labels.clone(),
        namespace: namespace.to_owned(),
        workload: name.to_owned(),
        service_account: we.service_account.clone().unwrap_or_default(),
        weight: we
            .weight
            .and_then(|w| u32::try_from(w).ok())
            .filter(|w| *w > 0)
            .unwrap_or(1),
        healthy: we.healthy,
    })
}

/// A port number from a resource field, when it is a valid port.
pub(super) fn port_number(n: i64) -> Option<u16> {
    u16::try_from(n).ok().filter(|p| *p > 0)
}

/// Endpoints per service port, without repeated address+port pairs (the first one wins).
#[derive(Default)]
pub(super) struct EndpointSet {
    seen: HashSet<(u16, String, u16)>,
    by_port: BTreeMap<u16, Vec<Endpoint>>,
}

impl EndpointSet {
    /// Adds `endpoint` behind service port `service_port` unless already there.
    pub fn add(&mut self, service_port: u16, endpoint: Option<Endpoint>) {
        let Some(ep) = endpoint else { return };
        if self
            .seen
            .insert((service_port, ep.address.clone(), ep.port))
        {
            self.by_port.entry(service_port).or_default().push(ep);
        }
    }

    /// The endpoints per service port.
    pub fn into_map(self) -> BTreeMap<u16, Vec<Endpoint>> {
        self.by_port
    }
}

/// A service as one resource declares it, with its ports' `targetPort`s.
pub(super) struct Declared {
    pub service: Service,
    pub target_ports: Vec<(u16, TargetPort)>,
}

/// The resources that feed services, sorted and indexed.
#[derive(Default)]
pub(super) struct Inputs<'a> {
    pub services: Vec<(&'a Resource, &'a core::Service)>,
    pub service_entries: Vec<(&'a Resource, &'a ServiceEntry)>,
    pub endpoints: HashMap<(&'a str, &'a str), &'a core::Endpoints>,
    pub pods: HashMap<&'a str, Vec<PodRef<'a>>>,
    pub pods_by_name: HashMap<(&'a str, &'a str), PodRef<'a>>,
    pub workload_entries: HashMap<&'a str, Vec<WorkloadRef<'a>>>,
}

impl<'a> Inputs<'a> {
    fn collect(resources: &'a [Resource]) -> Self {
        let mut sorted: Vec<&Resource> = resources.iter().collect();
        sorted.sort_by(|a, b| (a.namespace(), a.name()).cmp(&(b.namespace(), b.name())));
        let mut inputs = Inputs::default();
        for r in sorted {
            let (ns, name) = (r.namespace(), r.name());
            if let Some(s) = r.as_service() {
                inputs.services.push((r, s));
            } else if let Some(se) = r.as_service_entry() {
                inputs.service_entries.push((r, se));
            } else if let Some(e) = r.as_endpoints() {
                inputs.endpoints.entry((ns, name)).or_insert(e);
            } else if let Some(pod) = r.as_pod() {
                let p = PodRef {
                    name,
                    namespace: ns,
                    labels: r.labels(),
                    pod,
                };
                if inputs.pods_by_name.insert((ns, name), p).is_none() {
                    inputs.pods.entry(ns).or_default().push(p);
                }
            } else if let Some(spec) = r.as_workload_entry() {
                let w = WorkloadRef {
                    name,
                    namespace: ns,
                    spec,
                };
                inputs.workload_entries.entry(ns).or_default().push(w);
            }
        }
        inputs
    }

    /// Pods of `namespace` whose labels `selector` matches (none for an empty selector).
    pub fn pods_selected(
        &self,
        namespace: &str,
        selector: &BTreeMap<String, String>,
    ) -> Vec<PodRef<'a>> {
        if selector.is_empty() {
            return Vec::new();
        }
        let pods = self.pods.get(namespace).map_or(&[][..], Vec::as_slice);
        pods.iter()
            .filter(|p| super::selector_matches(selector, p.labels))
            .copied()
            .collect()
    }

    /// `WorkloadEntry`s of `namespace` whose labels `selector` matches (none for an empty
    /// selector).
    pub fn workloads_selected(
        &self,
        namespace: &str,
        selector: &BTreeMap<String, String>,
    ) -> Vec<WorkloadRef<'a>> {
        if selector.is_empty() {
            return Vec::new();
        }
        let wes = self
            .workload_entries
            .get(namespace)
            .map_or(&[][..], Vec::as_slice);
        wes.iter()
            .filter(|w| super::selector_matches(selector, &w.spec.labels))
            .copied()
            .collect()
    }
}

/// Builds the snapshot (see [`MeshSnapshot::build`]).
pub(super) fn build(
    resources: &[Resource],
    options: SnapshotOptions,
    version: u64,
) -> MeshSnapshot {
    let mut snapshot = MeshSnapshot {
        version,
        ..MeshSnapshot::default()
    };
    for (i, d) in declare_services(resources, &options)
        .into_iter()
        .enumerate()
    {
        let host = d.service.hostname.clone();
        for (port, target) in d.target_ports {
            snapshot.target_ports.insert((host.clone(), port), target);
        }
        let ips: HashSet<&str> = d
            .service
            .endpoints
            .values()
            .flatten()
            .map(|e| e.address.as_str())
            .collect();
        for ip in ips {
            let indexes = snapshot.by_endpoint_ip.entry(ip.to_owned()).or_default();
            indexes.push(i);
        }
        snapshot.by_host.insert(host, i);
        snapshot.services.push(Arc::new(d.service));
    }
    snapshot.virtual_services = configs(resources, Resource::as_virtual_service);
    snapshot.destination_rules = configs(resources, Resource::as_destination_rule);
    snapshot.gateways = configs(resources, Resource::as_gateway);
    // Gateway API resources join as the Istio Gateways and VirtualServices they convert to.
    crate::gateway_api::merge_into(
        resources,
        &options.domain_suffix,
        &mut snapshot.gateways,
        &mut snapshot.virtual_services,
    );
    snapshot.sidecars = configs(resources, Resource::as_sidecar);
    snapshot.peer_authentications = configs(resources, Resource::as_peer_authentication);
    snapshot.authorization_policies = configs(resources, Resource::as_authorization_policy);
    snapshot.dry_run_policies = resources
        .iter()
        .filter(|r| r.as_authorization_policy().is_some())
        .filter(|r| {
            r.annotations()
                .get(DRY_RUN_ANNOTATION)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        })
        .map(|r| (r.namespace().to_owned(), r.name().to_owned()))
        .collect();
    snapshot.request_authentications = configs(resources, Resource::as_request_authentication);
    snapshot.secrets = super::gateway::secrets(resources);
    snapshot.dr_index = DrIndex::build(&snapshot.destination_rules, &options);
    snapshot.source_labels_used = snapshot
        .virtual_services
        .iter()
        .any(|vs| matches_source_labels(&vs.spec));
    snapshot.options = options;
    snapshot
}

/// Whether some match of `vs` selects clients by their labels.
fn matches_source_labels(vs: &mast_config::networking::VirtualService) -> bool {
    vs.http
        .iter()
        .flat_map(|h| &h.r#match)
        .any(|m| !m.source_labels.is_empty())
        || vs
            .tcp
            .iter()
            .flat_map(|t| &t.r#match)
            .any(|m| !m.source_labels.is_empty())
        || vs
            .tls
            .iter()
            .flat_map(|t| &t.r#match)
            .any(|m| !m.source_labels.is_empty())
}

/// Every service, one per host, sorted by host: Kubernetes Services are declared first so
/// they own their hosts; then ServiceEntries by namespace and name, the first one winning.
fn declare_services(resources: &[Resource], options: &SnapshotOptions) -> Vec<Declared> {
    let inputs = Inputs::collect(resources);
    let kube_services = inputs
        .services
        .iter()
        .map(|(r, s)| kube::service(r, s, &inputs, options));
    let entries = inputs
        .service_entries
        .iter()
        .flat_map(|(r, se)| service_entry::services(r, se, &inputs, options));
    let mut taken: HashSet<Hostname> = HashSet::new();
    let mut declared: Vec<Declared> = kube_services
        .chain(entries)
        .filter(|d| taken.insert(d.service.hostname.clone()))
        .collect();
    declared.sort_by(|a, b| a.service.hostname.cmp(&b.service.hostname));
    declared
}

/// The resources of one kind as [`Config`]s, by namespace then name (the first of two
/// resources with the same namespace and name is kept).
fn configs<T: Clone>(
    resources: &[Resource],
    body: impl Fn(&Resource) -> Option<&T>,
) -> Vec<Config<T>> {
    let mut out: Vec<Config<T>> = resources
        .iter()
        .filter_map(|r| {
            body(r).map(|spec| Config {
                name: r.name().to_owned(),
                namespace: r.namespace().to_owned(),
                spec: Arc::new(spec.clone()),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out.dedup_by(|b, a| a.namespace == b.namespace && a.name == b.name);
    out
}
