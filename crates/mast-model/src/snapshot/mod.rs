//! [`MeshSnapshot`]: the immutable state of the mesh at one version, built from validated
//! resources, with the queries translation needs.
//!
//! Owns the snapshot type and its read API. The work is split by concern:
//! - [`build`] turns resources into services ([`kube`]: Kubernetes `Service` with
//!   `Endpoints`, selected Pods and `WorkloadEntry`s; [`service_entry`]: `ServiceEntry`) and
//!   keeps the Istio configuration per kind, sorted by namespace then name;
//! - [`scope`]: `exportTo`, which Sidecar applies, Sidecar egress scoping, VirtualServices
//!   per gateway;
//! - [`destination`]: Istio's DestinationRule index and lookup order;
//! - [`inbound`]: the service ports a proxy's workload serves;
//! - [`peer_authn`]: PeerAuthentication modes, endpoint identities and sidecars;
//! - [`access_log`]: the proxies' access log settings and Istio's default formats;
//! - [`gateway`]: the Gateways selecting a gateway proxy, merged per port, and the TLS
//!   Secrets `credentialName` names.
//!
//! Semantics follow Istio's `pilot/pkg/model` (push_context.go, sidecar.go,
//! destination_rule.go); every simplification is written down on the method it affects.

pub mod access_log;
mod build;
mod destination;
pub mod gateway;
mod inbound;
mod kube;
mod peer_authn;
mod scope;
mod service_entry;

#[cfg(test)]
mod tests_build;
#[cfg(test)]
mod tests_dest;
#[cfg(test)]
mod tests_gateway;
#[cfg(test)]
mod tests_query;

use std::collections::HashMap;
use std::sync::Arc;

use mast_config::Resource;
use mast_config::networking::destination_rule::Subset;
use mast_config::networking::{DestinationRule, Gateway, Sidecar, VirtualService};
use mast_config::security::{AuthorizationPolicy, PeerAuthentication, RequestAuthentication};
use mast_core::Hostname;

use crate::proxy::ProxyNode;
use crate::service::{Service, ServicePort};

pub use access_log::{AccessLogEncoding, AccessLogOptions};
pub(crate) use destination::DrIndex;
pub use gateway::{GatewayPort, GatewayServer, MergedGateway, Skipped, TlsSecret};
pub use peer_authn::{TLS_MODE_ISTIO, TLS_MODE_LABEL};

/// Mesh-wide settings (Istio's MeshConfig, the parts translation needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotOptions {
    /// The root namespace: Sidecars and DestinationRules there apply mesh-wide.
    pub root_namespace: String,
    /// The cluster DNS suffix (`cluster.local`).
    pub domain_suffix: String,
    /// JWKS documents fetched by mastd for RequestAuthentication `jwksUri`s: URI → JSON.
    /// Translation inlines them (Istio's istiod does the same); a URI missing here has not
    /// been fetched (yet).
    pub jwks: Arc<std::collections::BTreeMap<String, String>>,
    /// Tracing (Istio's `meshConfig.defaultConfig.tracing` and `pilot.traceSampling`): where
    /// proxies send spans and how many requests start a trace. `None`: no tracing configured.
    pub tracing: Option<TracingOptions>,
    /// Envoy access logging (Istio's `meshConfig.accessLogFile`, `accessLogEncoding`,
    /// `accessLogFormat`). `None`: off, Istio's default profile.
    pub access_log: Option<AccessLogOptions>,
}

/// Where the proxies export spans, and the sampling rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracingOptions {
    /// Share of requests that start a sampled trace, in basis points (10000 = 100 %,
    /// 100 = Istio's default 1 %).
    pub sampling_bp: u32,
    /// The collector.
    pub collector: TraceCollector,
}

/// A span collector the proxies reach through a cluster of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceCollector {
    /// Zipkin v2 JSON (`POST <path>`, normally `/api/v2/spans`): Jaeger, Zipkin, mastd.
    Zipkin {
        /// `host:port` (an IP or a DNS name).
        address: String,
        /// The HTTP path spans are posted to.
        path: String,
    },
    /// OTLP over HTTP (`POST <path>`, normally `/v1/traces`, protobuf body).
    Otlp {
        /// `host:port` (an IP or a DNS name).
        address: String,
        /// The HTTP path spans are posted to.
        path: String,
    },
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        Self {
            root_namespace: mast_core::DEFAULT_ROOT_NAMESPACE.into(),
            domain_suffix: mast_core::DEFAULT_DOMAIN_SUFFIX.into(),
            jwks: Arc::default(),
            tracing: None,
            access_log: None,
        }
    }
}

/// One Istio configuration object in the snapshot.
#[derive(Debug, Clone)]
pub struct Config<T> {
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its spec.
    pub spec: Arc<T>,
}

/// Equal names and specs; specs shared with the previous snapshot (the same `Arc`, as for
/// every file that did not change) compare without walking them, which keeps
/// [`crate::diff`] cheap at thousands of resources.
impl<T: PartialEq> PartialEq for Config<T> {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.namespace == other.namespace
            && (Arc::ptr_eq(&self.spec, &other.spec) || self.spec == other.spec)
    }
}

/// Outbound traffic to hosts the mesh does not know (Istio's `outboundTrafficPolicy.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundPolicy {
    /// Pass unknown destinations through (`PassthroughCluster`).
    AllowAny,
    /// Refuse them (`BlackHoleCluster`).
    RegistryOnly,
}

/// A service port this proxy's workload serves (for inbound listeners).
#[derive(Debug, Clone, PartialEq)]
pub struct InboundPort<'a> {
    /// The service.
    pub service: &'a Service,
    /// The service port.
    pub port: &'a ServicePort,
    /// The port the application listens on.
    pub target_port: u16,
}

/// A service port's `targetPort` as declared (Kubernetes `Service`, `ServiceEntry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TargetPort {
    /// A port number.
    Number(u16),
    /// A container port name, resolved per pod.
    Name(String),
}

/// The mesh at one version.
///
/// Services are unique by host. When two resources declare the same host, a Kubernetes
/// `Service` wins over a `ServiceEntry`, and between two `ServiceEntry`s the first by
/// namespace then name wins (Istio keeps the oldest; a snapshot has no creation times).
#[derive(Debug, Clone, Default)]
pub struct MeshSnapshot {
    /// Monotonic version, set by whoever builds snapshots.
    pub version: u64,
    /// Mesh-wide settings.
    pub options: SnapshotOptions,
    pub(crate) services: Vec<Arc<Service>>,
    pub(crate) by_host: HashMap<Hostname, usize>,
    pub(crate) virtual_services: Vec<Config<VirtualService>>,
    pub(crate) destination_rules: Vec<Config<DestinationRule>>,
    pub(crate) gateways: Vec<Config<Gateway>>,
    pub(crate) sidecars: Vec<Config<Sidecar>>,
    pub(crate) peer_authentications: Vec<Config<PeerAuthentication>>,
    pub(crate) authorization_policies: Vec<Config<AuthorizationPolicy>>,
    /// AuthorizationPolicies annotated `istio.io/dry-run: "true"`, as (namespace, name).
    pub(crate) dry_run_policies: std::collections::BTreeSet<(String, String)>,
    pub(crate) request_authentications: Vec<Config<RequestAuthentication>>,
    /// `targetPort` per (host, service port), when one was declared.
    pub(crate) target_ports: HashMap<(Hostname, u16), TargetPort>,
    /// Indexes of `services` by endpoint address.
    pub(crate) by_endpoint_ip: HashMap<String, Vec<usize>>,
    /// DestinationRules merged and indexed as Istio does.
    pub(crate) dr_index: DrIndex,
    /// Whether some VirtualService matches on `sourceLabels`.
    pub(crate) source_labels_used: bool,
    /// TLS material of Kubernetes Secrets, by (namespace, name).
    pub(crate) secrets: std::collections::BTreeMap<(String, String), TlsSecret>,
}

impl MeshSnapshot {
    /// Builds a snapshot from resources that passed validation.
    ///
    /// Kinds that do not describe services or traffic configuration (Deployments,
    /// policies, …) are ignored; Pods, `Endpoints` and `WorkloadEntry`s only feed endpoints.
    pub fn build(resources: &[Resource], options: SnapshotOptions, version: u64) -> Self {
        build::build(resources, options, version)
    }

    /// Every service, sorted by host.
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.iter().map(AsRef::as_ref)
    }

    /// Whether some VirtualService matches clients by their labels (`sourceLabels`), so
    /// that what a proxy sees may depend on its labels.
    pub fn uses_source_labels(&self) -> bool {
        self.source_labels_used
    }

    /// The services that have an endpoint at `address`.
    pub fn services_with_endpoint_at(&self, address: &str) -> impl Iterator<Item = &Service> {
        self.by_endpoint_ip
            .get(address)
            .into_iter()
            .flatten()
            .filter_map(|i| self.services.get(*i).map(AsRef::as_ref))
    }

    /// The service with exactly this (fully qualified) host.
    pub fn service(&self, host: &Hostname) -> Option<&Service> {
        self.by_host.get(host).map(|i| self.services[*i].as_ref())
    }

    /// The services whose host falls under `pattern` (`*.example.com` covers
    /// `a.example.com` and `*.b.example.com`; a plain host covers only itself), by host.
    pub fn services_matching(&self, pattern: &Hostname) -> Vec<&Service> {
        if !pattern.is_wildcard() {
            return self.service(pattern).into_iter().collect();
        }
        self.services()
            .filter(|s| s.hostname.subset_of(pattern))
            .collect()
    }

    /// Qualifies a host written in a configuration of `namespace` as Istio does
    /// (`reviews` → `reviews.<namespace>.svc.<domain suffix>`; FQDNs and wildcards unchanged).
    pub fn resolve_host(&self, namespace: &str, host: &str) -> Hostname {
        Hostname::new_unchecked(host).resolve(namespace, &self.options.domain_suffix)
    }

    /// The service a host of a VirtualService (its `hosts` or a destination) names: short
    /// names are qualified with the VirtualService's namespace, not the client's.
    pub fn service_for_vs_host(&self, vs: &Config<VirtualService>, host: &str) -> Option<&Service> {
        self.service(&self.resolve_host(&vs.namespace, host))
    }

    /// The service a DestinationRule's `host` names (qualified with the rule's namespace).
    pub fn service_for_dr(&self, dr: &Config<DestinationRule>) -> Option<&Service> {
        self.service(&self.resolve_host(&dr.namespace, &dr.spec.host))
    }

    /// The numeric `targetPort` declared for a service port (Kubernetes `targetPort` when a
    /// number, `ServiceEntry` `targetPort`); `None` when unset or a named port.
    pub fn numeric_target_port(&self, host: &Hostname, port: u16) -> Option<u16> {
        match self.target_ports.get(&(host.clone(), port)) {
            Some(TargetPort::Number(n)) => Some(*n),
            _ => None,
        }
    }

    /// The services `proxy` may reach: visible by `exportTo` from its namespace and within
    /// its Sidecar's egress hosts (all of them when no Sidecar applies), sorted by host.
    ///
    /// As Istio does, a Sidecar also imports the services its imported VirtualServices
    /// route to (when visible from the proxy's namespace). An egress listener with a port
    /// imports only services that have that port; the service is returned whole (its other
    /// ports are not trimmed). Gateways (`router`) are not scoped by Sidecars.
    pub fn visible_services(&self, proxy: &ProxyNode) -> Vec<&Service> {
        scope::visible_services(self, proxy)
    }

    /// The VirtualServices bound to `gateway` (`"mesh"` for sidecars, `ns/name` for a
    /// gateway) that `proxy` sees (exportTo, Sidecar egress), in Istio's order (oldest first;
    /// here: by namespace then name).
    ///
    /// Binding uses the top-level `gateways` (empty means `mesh`; `name`, `./name` and the
    /// legacy `name.ns.svc.<suffix>` are resolved to `ns/name`); per-match `gateways` are
    /// left to translation. Delegate VirtualServices (no `hosts`) are never returned: find
    /// them with [`MeshSnapshot::virtual_service`]. For a sidecar asking for `mesh`, a
    /// VirtualService is kept when one of its hosts (qualified with its namespace) matches an
    /// egress host imported from its own namespace or from `*/` (Istio's
    /// `SelectVirtualServices`).
    pub fn virtual_services(
        &self,
        proxy: &ProxyNode,
        gateway: &str,
    ) -> Vec<&Config<VirtualService>> {
        scope::virtual_services(self, proxy, gateway)
    }

    /// The VirtualService `namespace/name` (delegates are looked up this way).
    pub fn virtual_service(&self, namespace: &str, name: &str) -> Option<&Config<VirtualService>> {
        self.virtual_services
            .iter()
            .find(|c| c.namespace == namespace && c.name == name)
    }

    /// Every VirtualService, by namespace then name.
    pub fn all_virtual_services(&self) -> &[Config<VirtualService>] {
        &self.virtual_services
    }

    /// The DestinationRule for `host` as seen from namespace `proxy_ns`: the client
    /// namespace's, else the service namespace's, else the root namespace's (exportTo
    /// respected; the most specific host wins within a namespace).
    ///
    /// Rules for the same host in one namespace with the same `exportTo` are merged as Istio
    /// merges them: subsets appended (a repeated subset name is dropped), the first
    /// top-level traffic policy kept; the result carries the first rule's name and its
    /// `host` qualified with its namespace. Rules with a `workloadSelector` are ignored
    /// here (this lookup has no workload labels): use [`MeshSnapshot::destination_rule_for`].
    pub fn destination_rule(
        &self,
        proxy_ns: &str,
        host: &Hostname,
    ) -> Option<&Config<DestinationRule>> {
        destination::lookup(self, proxy_ns, None, host)
    }

    /// [`MeshSnapshot::destination_rule`] for a given proxy, honouring `workloadSelector`:
    /// in the proxy's namespace a rule whose selector matches its labels beats one without a
    /// selector. As in Istio, when the proxy's namespace has rules for the host but none
    /// applies to this workload, no rule applies (the lookup does not fall through).
    pub fn destination_rule_for(
        &self,
        proxy: &ProxyNode,
        host: &Hostname,
    ) -> Option<&Config<DestinationRule>> {
        destination::lookup(self, &proxy.namespace, Some(&proxy.labels), host)
    }

    /// The subsets of the DestinationRule for `host` seen from `proxy_ns` (empty when none).
    pub fn subsets(&self, proxy_ns: &str, host: &Hostname) -> &[Subset] {
        self.destination_rule(proxy_ns, host)
            .map_or(&[], |dr| dr.spec.subsets.as_slice())
    }

    /// Every DestinationRule as written, by namespace then name.
    pub fn all_destination_rules(&self) -> &[Config<DestinationRule>] {
        &self.destination_rules
    }

    /// The Sidecar that applies to `proxy`: one in its namespace whose workloadSelector
    /// matches its labels, else its namespace's selector-less one, else the root namespace's.
    ///
    /// Ties go to the first by name. Gateways (`router` proxies) get none, as in Istio.
    pub fn sidecar_for(&self, proxy: &ProxyNode) -> Option<&Config<Sidecar>> {
        scope::sidecar_for(self, proxy)
    }

    /// Every Sidecar, by namespace then name.
    pub fn sidecars(&self) -> &[Config<Sidecar>] {
        &self.sidecars
    }

    /// Every PeerAuthentication, sorted by namespace then name.
    pub fn peer_authentications(&self) -> &[Config<PeerAuthentication>] {
        &self.peer_authentications
    }

    /// The effective mutual TLS mode (`STRICT`, `PERMISSIVE` or `DISABLE`, never `UNSET`) of
    /// `proxy`'s workload on `port`, the port the workload listens on (the target port), from
    /// its PeerAuthentications: workload level (selector) over namespace level over mesh level
    /// (root namespace); `UNSET` inherits; no policy means `PERMISSIVE`. See [`peer_authn`].
    pub fn mtls_mode(
        &self,
        proxy: &ProxyNode,
        port: u16,
    ) -> mast_config::security::peer_authentication::MtlsMode {
        peer_authn::mtls_mode(self, &proxy.namespace, &proxy.labels, port)
    }

    /// The identities of a service's endpoints, as SPIFFE URIs
    /// (`spiffe://cluster.local/ns/<ns>/sa/<sa>`; an empty service account is `default`),
    /// sorted and deduplicated: the SANs a client checks. Endpoints of unknown namespace are
    /// left out.
    pub fn service_accounts(service: &Service) -> Vec<String> {
        peer_authn::service_accounts(service)
    }

    /// Whether an endpoint's workload runs a sidecar (label `security.istio.io/tlsMode: istio`),
    /// so that it accepts Istio mutual TLS.
    pub fn endpoint_has_sidecar(endpoint: &crate::service::Endpoint) -> bool {
        peer_authn::has_sidecar(endpoint)
    }

    /// Whether clients should send Istio mutual TLS to `endpoint` (Istio's `mtlsChecker`): it
    /// runs a sidecar and its PeerAuthentication does not `DISABLE` mTLS on its port.
    pub fn endpoint_accepts_mtls(&self, endpoint: &crate::service::Endpoint) -> bool {
        use mast_config::security::peer_authentication::MtlsMode;
        peer_authn::has_sidecar(endpoint)
            && peer_authn::mtls_mode(self, &endpoint.namespace, &endpoint.labels, endpoint.port)
                != MtlsMode::Disable
    }

    /// Every AuthorizationPolicy, sorted by namespace then name.
    pub fn authorization_policies(&self) -> &[Config<AuthorizationPolicy>] {
        &self.authorization_policies
    }

    /// Whether an AuthorizationPolicy is annotated `istio.io/dry-run: "true"`: it is evaluated
    /// and logged (RBAC shadow rules) but never decides.
    pub fn is_dry_run(&self, policy: &Config<AuthorizationPolicy>) -> bool {
        self.dry_run_policies
            .contains(&(policy.namespace.clone(), policy.name.clone()))
    }

    /// Every RequestAuthentication, sorted by namespace then name.
    pub fn request_authentications(&self) -> &[Config<RequestAuthentication>] {
        &self.request_authentications
    }

    /// `outboundTrafficPolicy` for `proxy` (its Sidecar's, else `AllowAny`).
    ///
    /// A Sidecar policy that omits `mode` means `REGISTRY_ONLY` (the proto's zero value).
    pub fn outbound_policy(&self, proxy: &ProxyNode) -> OutboundPolicy {
        scope::outbound_policy(self, proxy)
    }

    /// The service ports `proxy`'s workload serves: services whose selector matches its
    /// labels in its namespace, or whose endpoints carry its IP.
    ///
    /// An endpoint is the proxy's when its address is the proxy's IP, its namespace (when
    /// known) is the proxy's and, for loopback addresses (ports capture mode, where every
    /// workload shares 127.0.0.1), its workload name is the proxy's. `MESH_EXTERNAL`
    /// services never match by endpoint. The target port is the port of the proxy's own
    /// endpoint, else the numeric `targetPort`, else the service port. UDP ports are left
    /// out. Sorted by target port, host and port; one entry per (target port, service).
    ///
    /// This depends on endpoints, which [`crate::diff`] treats as an EDS-only change: a
    /// proxy whose own endpoint appears or moves should be re-sent listeners by its caller.
    pub fn inbound_ports(&self, proxy: &ProxyNode) -> Vec<InboundPort<'_>> {
        inbound::inbound_ports(self, proxy)
    }

    /// A gateway reference written in a config of `namespace` as `ns/name`, the form
    /// [`MeshSnapshot::virtual_services`] takes (`mesh` unchanged; `name` and `./name` are in
    /// `namespace`; the legacy `name.ns.svc.<suffix>` is `ns/name`).
    pub fn qualify_gateway(namespace: &str, gateway: &str) -> String {
        scope::qualify_gateway(namespace, gateway)
    }

    /// Every Gateway.
    pub fn gateways(&self) -> &[Config<Gateway>] {
        &self.gateways
    }

    /// The Gateways whose selector picks `proxy` (a `router`; sidecars get none), by
    /// namespace then name. See [`gateway`].
    pub fn gateways_for(&self, proxy: &ProxyNode) -> Vec<&Config<Gateway>> {
        gateway::gateways_for(self, proxy)
    }

    /// The servers of the Gateways selecting `proxy`, merged per listener port as Istio's
    /// `MergeGateways` (see [`gateway`]).
    pub fn merged_gateway(&self, proxy: &ProxyNode) -> MergedGateway<'_> {
        gateway::merge(self, proxy)
    }

    /// The certificate and key (with the CA bundle, from the Secret itself or from
    /// `<name>-cacert`) of the Kubernetes Secret `namespace/name`; `None` when it does not
    /// exist or holds no certificate.
    pub fn tls_secret(&self, namespace: &str, name: &str) -> Option<&TlsSecret> {
        self.secrets
            .get(&(namespace.to_owned(), name.to_owned()))
            .filter(|s| s.has_certificate())
    }

    /// The CA bundle of the Secret `namespace/name` (its `ca.crt`/`cacert`; a Secret
    /// `<name>-cacert` when the Secret itself has none).
    pub fn secret_ca(&self, namespace: &str, name: &str) -> Option<&str> {
        self.secrets
            .get(&(namespace.to_owned(), name.to_owned()))
            .and_then(|s| s.ca_cert.as_deref())
    }
}

/// Whether every label of `selector` is in `labels` (an empty selector matches everything).
pub(crate) fn selector_matches(
    selector: &std::collections::BTreeMap<String, String>,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Istio's `exportTo` visibility of a config in `owner_ns` from `client_ns`: empty means
/// everywhere, `*` everywhere, `.` the owner's namespace, `~` nowhere, else the names listed.
pub(crate) fn exported_to(export_to: &[String], owner_ns: &str, client_ns: &str) -> bool {
    if export_to.is_empty() || export_to.iter().any(|e| e == "*") {
        return true;
    }
    if export_to.iter().any(|e| e == "~") {
        return false;
    }
    export_to
        .iter()
        .any(|e| e == client_ns || (e == "." && client_ns == owner_ns))
}
