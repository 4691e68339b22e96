//! [`MeshSnapshot`]: the immutable state of the mesh at one version, built from validated
//! resources, with the queries translation needs.
//!
//! CONTRACT (other crates code against these signatures; bodies are being filled in):
//! services come from Kubernetes `Service` + `Endpoints` (and `WorkloadEntry`s a Service
//! selects), `ServiceEntry` (hosts, ports, STATIC endpoints, DNS resolution,
//! `workloadSelector` over `WorkloadEntry`s); Istio configuration is kept per kind.

use std::collections::HashMap;
use std::sync::Arc;

use mast_config::Resource;
use mast_config::networking::{DestinationRule, Gateway, Sidecar, VirtualService};
use mast_core::Hostname;

use crate::proxy::ProxyNode;
use crate::service::{Service, ServicePort};

/// Mesh-wide settings (Istio's MeshConfig, the parts translation needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotOptions {
    /// The root namespace: Sidecars and DestinationRules there apply mesh-wide.
    pub root_namespace: String,
    /// The cluster DNS suffix (`cluster.local`).
    pub domain_suffix: String,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        Self {
            root_namespace: mast_core::DEFAULT_ROOT_NAMESPACE.into(),
            domain_suffix: mast_core::DEFAULT_DOMAIN_SUFFIX.into(),
        }
    }
}

/// One Istio configuration object in the snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Config<T> {
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its spec.
    pub spec: Arc<T>,
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

/// The mesh at one version.
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
}

impl MeshSnapshot {
    /// Builds a snapshot from resources that passed validation.
    pub fn build(_resources: &[Resource], options: SnapshotOptions, version: u64) -> Self {
        Self {
            version,
            options,
            ..Self::default()
        }
    }

    /// Every service, sorted by host.
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.iter().map(AsRef::as_ref)
    }

    /// The service with exactly this (fully qualified) host.
    pub fn service(&self, host: &Hostname) -> Option<&Service> {
        self.by_host.get(host).map(|i| self.services[*i].as_ref())
    }

    /// The services `proxy` may reach: visible by `exportTo` from its namespace and within
    /// its Sidecar's egress hosts (all of them when no Sidecar applies), sorted by host.
    pub fn visible_services(&self, _proxy: &ProxyNode) -> Vec<&Service> {
        Vec::new()
    }

    /// The VirtualServices bound to `gateway` (`"mesh"` for sidecars, `ns/name` for a
    /// gateway) that `proxy` sees (exportTo, Sidecar egress), in Istio's order (oldest first;
    /// here: by namespace then name).
    pub fn virtual_services(&self, _proxy: &ProxyNode, _gateway: &str) -> Vec<&Config<VirtualService>> {
        Vec::new()
    }

    /// The DestinationRule for `host` as seen from namespace `proxy_ns`: the client
    /// namespace's, else the service namespace's, else the root namespace's (exportTo
    /// respected; the most specific host wins within a namespace).
    pub fn destination_rule(&self, _proxy_ns: &str, _host: &Hostname) -> Option<&Config<DestinationRule>> {
        None
    }

    /// The Sidecar that applies to `proxy`: one in its namespace whose workloadSelector
    /// matches its labels, else its namespace's selector-less one, else the root namespace's.
    pub fn sidecar_for(&self, _proxy: &ProxyNode) -> Option<&Config<Sidecar>> {
        None
    }

    /// `outboundTrafficPolicy` for `proxy` (its Sidecar's, else `AllowAny`).
    pub fn outbound_policy(&self, _proxy: &ProxyNode) -> OutboundPolicy {
        OutboundPolicy::AllowAny
    }

    /// The service ports `proxy`'s workload serves: services whose selector matches its
    /// labels in its namespace, or whose endpoints carry its IP.
    pub fn inbound_ports(&self, _proxy: &ProxyNode) -> Vec<InboundPort<'_>> {
        Vec::new()
    }

    /// Every Gateway.
    pub fn gateways(&self) -> &[Config<Gateway>] {
        &self.gateways
    }
}
