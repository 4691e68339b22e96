//! The analysis context: the resources under analysis and the indexes analyzers share —
//! namespaces (declared, or implied by the workloads living in them), services by host
//! (Kubernetes Services and ServiceEntry hosts), workloads (Pods, the pod templates of
//! Deployments, ReplicaSets, DaemonSets, StatefulSets, Jobs and CronJobs, and Mast's
//! LocalWorkloads), and Gateways.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::PodSpec;
use mast_config::{Body, Resource, ResourceRef};
use mast_core::{DEFAULT_DOMAIN_SUFFIX, Hostname};

/// Namespaces that never hold mesh workloads and are skipped by injection checks.
pub const SYSTEM_NAMESPACES: &[&str] = &[
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "local-path-storage",
    "istio-system",
];

/// A service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The port number.
    pub number: u16,
    /// The port's name (may be empty).
    pub name: String,
    /// The protocol as declared (`TCP`, `HTTP`, …), upper-cased.
    pub protocol: String,
}

/// A service known to the mesh.
#[derive(Debug, Clone)]
pub struct ServiceInfo<'a> {
    /// The fully qualified host (`reviews.default.svc.cluster.local`, or a ServiceEntry host).
    pub host: Hostname,
    /// The namespace of the declaring resource.
    pub namespace: &'a str,
    /// The declaring Service or ServiceEntry.
    pub resource: &'a Resource,
    /// Its ports.
    pub ports: Vec<ServicePort>,
    /// `exportTo` (empty: everywhere).
    pub export_to: Vec<String>,
}

impl ServiceInfo<'_> {
    /// Whether a resource in namespace `from` can see this service, by `exportTo`.
    pub fn visible_from(&self, from: &str) -> bool {
        self.export_to.is_empty()
            || self
                .export_to
                .iter()
                .any(|e| e == "*" || (e == "." && from == self.namespace) || e == from)
    }
}

/// Something that runs pods: a Pod, a workload kind's pod template, or a LocalWorkload
/// (which has no pod spec).
#[derive(Debug, Clone)]
pub struct Workload<'a> {
    /// The declaring resource.
    pub resource: &'a Resource,
    /// The namespace.
    pub namespace: &'a str,
    /// The pods' labels.
    pub labels: &'a BTreeMap<String, String>,
    /// The pods' annotations.
    pub annotations: &'a BTreeMap<String, String>,
    /// The pod spec, when given.
    pub spec: Option<&'a PodSpec>,
}

/// Everything an analyzer can look at.
pub struct Context<'a> {
    /// Every resource, in load order.
    pub resources: &'a [Resource],
    services: Vec<ServiceInfo<'a>>,
    by_host: HashMap<Hostname, Vec<usize>>,
    workloads: Vec<Workload<'a>>,
    namespaces: BTreeSet<String>,
}

impl<'a> Context<'a> {
    /// Builds the indexes.
    pub fn new(resources: &'a [Resource]) -> Self {
        let services = collect_services(resources);
        let mut by_host: HashMap<Hostname, Vec<usize>> = HashMap::new();
        for (i, s) in services.iter().enumerate() {
            by_host.entry(s.host.clone()).or_default().push(i);
        }
        let workloads = collect_workloads(resources);
        let declared = resources
            .iter()
            .filter(|r| r.as_namespace().is_some())
            .map(Resource::name);
        let namespaces = resources
            .iter()
            .map(Resource::namespace)
            .chain(declared)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        Self {
            resources,
            services,
            by_host,
            workloads,
            namespaces,
        }
    }

    /// Resources of one kind (by `kind:`), in load order.
    pub fn of_kind(&self, kind: &'a str) -> impl Iterator<Item = &'a Resource> + 'a {
        self.resources.iter().filter(move |r| r.kind == kind)
    }

    /// Every service.
    pub fn services(&self) -> &[ServiceInfo<'a>] {
        &self.services
    }

    /// Services whose host is exactly `host` (already fully qualified).
    pub fn services_for(&self, host: &Hostname) -> impl Iterator<Item = &ServiceInfo<'a>> {
        self.by_host
            .get(host)
            .into_iter()
            .flatten()
            .map(|i| &self.services[*i])
    }

    /// Services whose host overlaps `host` (wildcards on either side), visible from `from`.
    pub fn services_matching<'s>(
        &'s self,
        host: &'s Hostname,
        from: &'s str,
    ) -> impl Iterator<Item = &'s ServiceInfo<'a>> + 's {
        self.services
            .iter()
            .filter(move |s| s.host.matches(host) && s.visible_from(from))
    }

    /// Every workload (Pods and pod templates).
    pub fn workloads(&self) -> &[Workload<'a>] {
        &self.workloads
    }

    /// Workloads in `namespace` whose labels include all of `selector`.
    pub fn workloads_selected<'s>(
        &'s self,
        namespace: &'s str,
        selector: &'s BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'s Workload<'a>> + 's {
        self.workloads
            .iter()
            .filter(move |w| w.namespace == namespace && selects(selector, w.labels))
    }

    /// Every namespace that resources live in or that is declared.
    pub fn namespace_names(&self) -> impl Iterator<Item = &str> {
        self.namespaces.iter().map(String::as_str)
    }

    /// The declared `Namespace` resource named `name`.
    pub fn namespace(&self, name: &str) -> Option<&'a Resource> {
        self.resources
            .iter()
            .find(|r| r.as_namespace().is_some() && r.name() == name)
    }

    /// Finds a resource by kind, namespace and name.
    pub fn find(&self, kind: &str, namespace: &str, name: &str) -> Option<&'a Resource> {
        self.resources
            .iter()
            .find(|r| r.kind == kind && r.namespace() == namespace && r.name() == name)
    }
}

/// Whether `labels` contain every key/value of `selector` (an empty selector selects all).
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Qualifies `host` as written in a resource of namespace `ns`.
pub fn resolve(host: &str, ns: &str) -> Hostname {
    Hostname::new_unchecked(host).resolve(ns, DEFAULT_DOMAIN_SUFFIX)
}

/// A `ResourceRef` for something no file declares (an implied namespace).
pub fn implied(kind: &str, name: &str) -> ResourceRef {
    ResourceRef {
        kind: kind.to_owned(),
        namespace: String::new(),
        name: name.to_owned(),
    }
}

fn collect_services(resources: &[Resource]) -> Vec<ServiceInfo<'_>> {
    let mut out = Vec::new();
    for r in resources {
        if let Some(svc) = r.as_service() {
            let ports = svc
                .spec
                .as_ref()
                .and_then(|s| s.ports.as_ref())
                .map(|ps| {
                    ps.iter()
                        .map(|p| ServicePort {
                            number: u16::try_from(p.port).unwrap_or(0),
                            name: p.name.clone().unwrap_or_default(),
                            protocol: p
                                .protocol
                                .clone()
                                .unwrap_or_else(|| "TCP".into())
                                .to_ascii_uppercase(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let export_to = r
                .annotations()
                .get("networking.istio.io/exportTo")
                .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
                .unwrap_or_default();
            out.push(ServiceInfo {
                host: resolve(r.name(), r.namespace()),
                namespace: r.namespace(),
                resource: r,
                ports,
                export_to,
            });
        }
        if let Body::ServiceEntry(se) = &r.body {
            out.extend(crate::analyzers::service_entry::services(r, se));
        }
    }
    out
}

fn collect_workloads(resources: &[Resource]) -> Vec<Workload<'_>> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for r in resources {
        let template = match &r.body {
            Body::Pod(p) => {
                out.push(Workload {
                    resource: r,
                    namespace: r.namespace(),
                    labels: r.labels(),
                    annotations: r.annotations(),
                    spec: p.spec.as_ref(),
                });
                continue;
            }
            // A local program or gateway that `mastctl up` runs: selected by its own labels,
            // like a Pod.
            Body::LocalWorkload(_) | Body::LocalGateway(_) => {
                out.push(Workload {
                    resource: r,
                    namespace: r.namespace(),
                    labels: r.labels(),
                    annotations: r.annotations(),
                    spec: None,
                });
                continue;
            }
            Body::Deployment(d) => d.spec.as_ref().map(|s| &s.template),
            Body::ReplicaSet(d) => d.spec.as_ref().and_then(|s| s.template.as_ref()),
            Body::DaemonSet(d) => d.spec.as_ref().map(|s| &s.template),
            Body::StatefulSet(d) => d.spec.as_ref().map(|s| &s.template),
            Body::Job(d) => d.spec.as_ref().map(|s| &s.template),
            Body::CronJob(d) => d
                .spec
                .as_ref()
                .and_then(|s| s.job_template.spec.as_ref())
                .map(|s| &s.template),
            _ => None,
        };
        if let Some(t) = template {
            let meta = t.metadata.as_ref();
            out.push(Workload {
                resource: r,
                namespace: r.namespace(),
                labels: meta.and_then(|m| m.labels.as_ref()).unwrap_or(&EMPTY),
                annotations: meta.and_then(|m| m.annotations.as_ref()).unwrap_or(&EMPTY),
                spec: t.spec.as_ref(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::testing::{codes, only, run};

    const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: shop}\nspec:\n  selector: {app: reviews}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n---\n";

    fn local(name: &str, labels: &str) -> String {
        format!(
            "apiVersion: mast.dev/v1alpha1\nkind: LocalWorkload\nmetadata:\n  name: {name}\n  namespace: shop\n  labels: {labels}\nspec:\n  command: [mastctl, x, echo]\n  port: 8080\n---\n"
        )
    }

    const DR: &str = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: shop}\nspec:\n  host: reviews\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n";

    #[test]
    fn local_workloads_are_selected_by_services() {
        let yaml = format!(
            "{SVC}{}{}{DR}",
            local("reviews-v1", "{app: reviews, version: v1}"),
            local("reviews-v2", "{app: reviews, version: v2}")
        );
        let msgs = run(&yaml);
        assert!(codes(&msgs).is_empty(), "{msgs:?}");
    }

    #[test]
    fn subset_without_local_workload_is_reported() {
        let yaml = format!(
            "{SVC}{}{DR}",
            local("reviews-v1", "{app: reviews, version: v1}")
        );
        let msgs = run(&yaml);
        let found = only(&msgs, "IST0173");
        assert_eq!(found.len(), 1, "{msgs:?}");
        assert!(found[0].text.contains("v2"), "{}", found[0].text);
    }

    #[test]
    fn local_workloads_need_no_injection() {
        // A namespace holding only LocalWorkloads is not "not injected": mastctl up always
        // starts their sidecars. A Pod there still is.
        let msgs = run(&local("w", "{app: w}"));
        assert!(only(&msgs, "IST0102").is_empty(), "{msgs:?}");
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop}\nspec:\n  containers: [{name: c, image: x}]\n";
        let msgs = run(&format!("{}{pod}", local("w", "{app: w}")));
        assert_eq!(only(&msgs, "IST0102").len(), 1, "{msgs:?}");
    }

    #[test]
    fn sidecar_selector_matches_local_workload() {
        let sidecar = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s, namespace: shop}\nspec:\n  workloadSelector:\n    labels: {app: reviews}\n  egress: [{hosts: ['./*']}]\n";
        let msgs = run(&format!(
            "{}{sidecar}",
            local("reviews-v1", "{app: reviews}")
        ));
        assert!(codes(&msgs).is_empty(), "{msgs:?}");
    }
}
