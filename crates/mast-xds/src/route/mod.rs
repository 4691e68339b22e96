//! RDS: the outbound `RouteConfiguration`s of a sidecar, following Istio's
//! `httproute.go` / `route/route.go`.
//!
//! - iptables capture: one table per HTTP service port number the proxy can see, named by the
//!   port (`"80"`), with a virtual host `<host>:<port>` per service on that port (domains: the
//!   host, its short names from the proxy's namespace, its VIPs, each with and without the
//!   port), the virtual hosts of VirtualService hosts no service declares, and a catch-all.
//! - ports capture: one table, [`PORTS_OUTBOUND_ROUTE`], holding the virtual hosts of every
//!   HTTP port, so the explicit outbound listener works as an HTTP proxy for absolute-form
//!   requests (a host without a port maps to its service's only HTTP port, else port 80), plus
//!   `CONNECT` routes for every service port ([`connect`]); unknown hosts go to the dynamic
//!   forward proxy (`ForwardProxyCluster`) under ALLOW_ANY.
//!
//! VirtualServices bound to `mesh` replace the default route of the services they name; their
//! HTTP rules become routes in order (first match wins). Delegate VirtualServices are not
//! supported yet: delegating rules are skipped with a warning. Gateways (`router` nodes) get
//! their tables from [`crate::gateway`], which builds the routes with this module's
//! translation ([`Scope::for_gateway`]). What is emitted, field by field, is listed in
//! `docs/xds-subset.md`.

pub(crate) mod action;
mod connect;
mod hash;
mod matching;
mod policies;
mod respond;
#[cfg(test)]
mod tests_claim;
mod vhost;

use std::collections::{BTreeSet, HashMap};

use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};
use mast_config::networking::VirtualService;
use mast_core::Hostname;
use mast_model::{CaptureMode, Config, MeshSnapshot, NodeType, ProxyNode, Service};

pub use action::{CORS_FILTER, DEFAULT_ROUTE_NAME, FAULT_FILTER};
pub use connect::{CONNECT_ROUTE, CONNECT_UPGRADE, REFUSED_STATUS};
pub use matching::MESH_GATEWAY;
pub use policies::{
    DEFAULT_NUM_RETRIES, DEFAULT_RETRY_ON, HOST_SELECTION_RETRY_MAX_ATTEMPTS,
    PREVIOUS_HOSTS_PREDICATE,
};
pub use vhost::{ALLOW_ANY, BLOCK_ALL};

/// The route table of the ports-capture outbound listener (all HTTP ports in one table).
pub const PORTS_OUTBOUND_ROUTE: &str = "mast_outbound";

/// Envoy's limit on direct-response bodies, raised to Istio's 1 MiB.
pub const MAX_DIRECT_RESPONSE_BODY_BYTES: u32 = 1024 * 1024;

/// Every `RouteConfiguration` for `proxy`, sorted by name.
pub fn routes(snapshot: &MeshSnapshot, proxy: &ProxyNode) -> Vec<RouteConfiguration> {
    if proxy.node_type == NodeType::Router {
        return crate::gateway::routes(snapshot, proxy);
    }
    let scope = Scope::new(snapshot, proxy);
    let ports = scope.http_ports();
    let mut out: Vec<RouteConfiguration> = match proxy.capture {
        CaptureMode::Iptables => ports
            .into_iter()
            .filter_map(|port| {
                let specs = vhost::port_specs(&scope, port);
                // Port 80 exists without a service on it only for VirtualService-only hosts.
                (!specs.is_empty() || scope.serves_port(port))
                    .then(|| table(port.to_string(), vhost::finalize(&scope, specs)))
            })
            .collect(),
        CaptureMode::Ports { .. } => {
            let specs = ports
                .into_iter()
                .flat_map(|port| vhost::port_specs(&scope, port))
                .collect();
            let mut specs = vhost::merge_ports(specs);
            connect::add_to_http(&mut specs);
            specs.extend(connect::l4_specs(&scope));
            vec![table(
                PORTS_OUTBOUND_ROUTE.into(),
                vhost::finalize(&scope, specs),
            )]
        }
    };
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

pub(crate) fn table(name: String, virtual_hosts: Vec<VirtualHost>) -> RouteConfiguration {
    RouteConfiguration {
        name,
        virtual_hosts,
        validate_clusters: Some(BoolValue { value: false }),
        max_direct_response_body_size_bytes: Some(UInt32Value {
            value: MAX_DIRECT_RESPONSE_BODY_BYTES,
        }),
        ..Default::default()
    }
}

/// What route generation for one proxy works from: the services and VirtualServices it sees.
pub(crate) struct Scope<'a> {
    /// The mesh.
    pub snapshot: &'a MeshSnapshot,
    /// The proxy routes are generated for.
    pub proxy: &'a ProxyNode,
    /// Services visible to the proxy, sorted by host.
    pub services: Vec<&'a Service>,
    /// VirtualServices bound to `mesh` that the proxy sees, in Istio's order (delegates,
    /// which have no hosts, left out).
    pub vses: Vec<&'a Config<VirtualService>>,
    /// The hosts of each of `vses`, fully qualified (short names take the VirtualService's
    /// namespace); `*` is left out (it would shadow the catch-all).
    pub vs_hosts: Vec<Vec<Hostname>>,
    /// Indexes into `vses` of the VirtualServices naming each non-wildcard host, ascending.
    vs_by_host: HashMap<Hostname, Vec<usize>>,
    /// Indexes into `vses` of the VirtualServices with at least one wildcard host, ascending.
    vs_wildcard: Vec<usize>,
    /// The gateway names a per-match `gateways` must include for the match to apply:
    /// `mesh` for sidecars, `namespace/name` of the server's Gateway on a gateway proxy.
    pub gateways: Vec<String>,
}

impl<'a> Scope<'a> {
    fn new(snapshot: &'a MeshSnapshot, proxy: &'a ProxyNode) -> Self {
        let vses: Vec<&Config<VirtualService>> = snapshot
            .virtual_services(proxy, MESH_GATEWAY)
            .into_iter()
            .filter(|vs| {
                vs.spec.gateways.is_empty() || vs.spec.gateways.iter().any(|g| g == MESH_GATEWAY)
            })
            .filter(|vs| !vs.spec.hosts.is_empty())
            .collect();
        let suffix = &snapshot.options.domain_suffix;
        let vs_hosts: Vec<Vec<Hostname>> = vses
            .iter()
            .map(|vs| {
                vs.spec
                    .hosts
                    .iter()
                    .filter_map(|h| match Hostname::parse(h) {
                        Ok(host) if host.as_str() == "*" => {
                            tracing::warn!(virtual_service = %vs.name, "host `*` is not allowed for sidecars; ignored");
                            None
                        }
                        Ok(host) => Some(host.resolve(&vs.namespace, suffix)),
                        Err(e) => {
                            tracing::warn!(virtual_service = %vs.name, error = %e, "invalid host ignored");
                            None
                        }
                    })
                    .collect()
            })
            .collect();
        let (vs_by_host, vs_wildcard) = index_vs_hosts(&vs_hosts);
        Self {
            snapshot,
            proxy,
            services: snapshot.visible_services(proxy),
            vses,
            vs_hosts,
            vs_by_host,
            vs_wildcard,
            gateways: vec![MESH_GATEWAY.to_owned()],
        }
    }

    /// The scope of a gateway proxy's server of Gateway `gateway` (`namespace/name`), routing
    /// with `vses` (the VirtualServices bound to it). Hosts are kept as written (Istio does
    /// not qualify gateway VirtualService hosts).
    pub(crate) fn for_gateway(
        snapshot: &'a MeshSnapshot,
        proxy: &'a ProxyNode,
        gateway: &str,
        vses: Vec<&'a Config<VirtualService>>,
    ) -> Self {
        let vs_hosts: Vec<Vec<Hostname>> = vses
            .iter()
            .map(|vs| vs.spec.hosts.iter().map(Hostname::new_unchecked).collect())
            .collect();
        let (vs_by_host, vs_wildcard) = index_vs_hosts(&vs_hosts);
        Self {
            snapshot,
            proxy,
            services: snapshot.visible_services(proxy),
            vses,
            vs_hosts,
            vs_by_host,
            vs_wildcard,
            gateways: vec![gateway.to_owned()],
        }
    }

    /// The visible service with this host, else any service with it (hosts are unique in a
    /// snapshot and visible services are among them, so this is the snapshot's service).
    pub fn lookup(&self, host: &Hostname) -> Option<&'a Service> {
        self.snapshot.service(host)
    }

    /// Indexes into `vses` of the VirtualServices naming `host` exactly (non-wildcard hosts
    /// only), ascending.
    pub fn vses_naming(&self, host: &Hostname) -> &[usize] {
        self.vs_by_host.get(host).map_or(&[], Vec::as_slice)
    }

    /// Indexes into `vses` of the VirtualServices with a wildcard host, ascending.
    pub fn vses_with_wildcards(&self) -> &[usize] {
        &self.vs_wildcard
    }

    /// Indexes into `vses` of the VirtualServices one of whose hosts may overlap `host`
    /// (a superset: callers still check), ascending.
    pub fn vs_candidates(&self, host: &Hostname) -> Vec<usize> {
        if host.is_wildcard() {
            return (0..self.vses.len()).collect();
        }
        let mut out: Vec<usize> = self.vses_naming(host).to_vec();
        out.extend_from_slice(&self.vs_wildcard);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// HTTP port numbers of visible services, plus 80 (VirtualService-only hosts live there).
    fn http_ports(&self) -> BTreeSet<u16> {
        let mut ports: BTreeSet<u16> = self
            .services
            .iter()
            .flat_map(|s| s.ports.iter())
            .filter(|p| p.protocol.is_http())
            .map(|p| p.port)
            .collect();
        ports.insert(80);
        ports
    }

    /// Whether some visible service serves HTTP on `port`.
    fn serves_port(&self, port: u16) -> bool {
        self.services
            .iter()
            .any(|s| s.port(port).is_some_and(|p| p.protocol.is_http()))
    }
}

/// The VirtualServices (indexes) naming each non-wildcard host, and those with a wildcard host.
fn index_vs_hosts(vs_hosts: &[Vec<Hostname>]) -> (HashMap<Hostname, Vec<usize>>, Vec<usize>) {
    let mut by_host: HashMap<Hostname, Vec<usize>> = HashMap::new();
    let mut wildcard = Vec::new();
    for (i, hosts) in vs_hosts.iter().enumerate() {
        for h in hosts {
            if h.is_wildcard() {
                if wildcard.last() != Some(&i) {
                    wildcard.push(i);
                }
            } else {
                let list = by_host.entry(h.clone()).or_default();
                if list.last() != Some(&i) {
                    list.push(i);
                }
            }
        }
    }
    (by_host, wildcard)
}
