//! Who sees what: which Sidecar applies to a proxy, its outbound traffic policy, the
//! services within `exportTo` and the Sidecar's egress hosts, and the VirtualServices bound
//! to a gateway that a proxy sees — Istio's `SidecarScope` (sidecar.go) and
//! `SelectVirtualServices` (virtualservice.go).
//!
//! Egress hosts are `namespace/host`: `.` is the proxy's namespace, `*` any namespace, `~`
//! none; the host may be `*` or a wildcard (`*.example.com`) and is not qualified (as in
//! Istio). A service in namespace N is imported when a host listed under N covers it, or
//! failing that one listed under `*`. A Sidecar without egress imports `*/*`.

use std::collections::{BTreeSet, HashMap};

use mast_config::networking::sidecar::OutboundTrafficMode;
use mast_config::networking::{Sidecar, VirtualService};
use mast_core::Hostname;

use super::{Config, MeshSnapshot, OutboundPolicy, exported_to, selector_matches};
use crate::proxy::{NodeType, ProxyNode};
use crate::service::Service;

/// The gateway name that binds VirtualServices to sidecars.
pub const MESH_GATEWAY: &str = "mesh";

/// One egress listener of a Sidecar: imported hosts per namespace, and the port that
/// scopes it (none for the catch-all listener or an `HTTP_PROXY` one).
struct Egress {
    hosts: HashMap<String, Vec<Hostname>>,
    port: Option<u16>,
}

impl Egress {
    /// The egress listeners of `sidecar` for a proxy in `config_ns`.
    fn of(sidecar: &Sidecar, config_ns: &str) -> Vec<Egress> {
        if sidecar.egress.is_empty() {
            let hosts = HashMap::from([("*".to_owned(), vec![Hostname::new_unchecked("*")])]);
            return vec![Egress { hosts, port: None }];
        }
        sidecar
            .egress
            .iter()
            .map(|e| {
                let mut hosts: HashMap<String, Vec<Hostname>> = HashMap::new();
                for h in &e.hosts {
                    let Some((ns, name)) = h.split_once('/').filter(|(_, n)| !n.contains('/'))
                    else {
                        continue;
                    };
                    let ns = if ns == "." { config_ns } else { ns };
                    hosts
                        .entry(ns.to_owned())
                        .or_default()
                        .push(Hostname::new_unchecked(name));
                }
                let port = e
                    .port
                    .as_ref()
                    .filter(|p| !p.protocol().eq_ignore_ascii_case("HTTP_PROXY"));
                let port = port
                    .and_then(|p| u16::try_from(p.number()).ok())
                    .filter(|p| *p > 0);
                Egress { hosts, port }
            })
            .collect()
    }

    /// The hosts imported for configs of namespace `ns`: its own list, then `*`'s.
    fn lists<'a>(&'a self, ns: &str) -> impl Iterator<Item = &'a Vec<Hostname>> {
        self.hosts.get(ns).into_iter().chain(self.hosts.get("*"))
    }

    /// Whether the listener imports `service` (Istio's `selectServices`).
    fn imports_service(&self, service: &Service) -> bool {
        if self.port.is_some_and(|p| service.port(p).is_none()) {
            return false;
        }
        self.lists(&service.namespace)
            .any(|hosts| hosts.iter().any(|h| service.hostname.subset_of(h)))
    }

    /// Whether the listener imports `vs`: one of its hosts overlaps an imported host.
    fn imports_vs(&self, snap: &MeshSnapshot, vs: &Config<VirtualService>) -> bool {
        let vs_hosts: Vec<Hostname> = vs
            .spec
            .hosts
            .iter()
            .map(|h| snap.resolve_host(&vs.namespace, h))
            .collect();
        self.lists(&vs.namespace)
            .any(|hosts| hosts.iter().any(|h| vs_hosts.iter().any(|v| v.matches(h))))
    }
}

/// See [`MeshSnapshot::sidecar_for`].
pub(super) fn sidecar_for<'a>(
    snap: &'a MeshSnapshot,
    proxy: &ProxyNode,
) -> Option<&'a Config<Sidecar>> {
    if proxy.node_type != NodeType::Sidecar {
        return None;
    }
    let in_ns = |ns: &str| -> Vec<&'a Config<Sidecar>> {
        snap.sidecars.iter().filter(|c| c.namespace == ns).collect()
    };
    let own = in_ns(&proxy.namespace);
    let selected = own.iter().find(|c| {
        c.spec
            .workload_selector
            .as_ref()
            .is_some_and(|s| selector_matches(&s.labels, &proxy.labels))
    });
    let unselected = |list: &[&'a Config<Sidecar>]| {
        list.iter()
            .find(|c| c.spec.workload_selector.is_none())
            .copied()
    };
    selected
        .copied()
        .or_else(|| unselected(&own))
        .or_else(|| unselected(&in_ns(&snap.options.root_namespace)))
}

/// See [`MeshSnapshot::outbound_policy`].
pub(super) fn outbound_policy(snap: &MeshSnapshot, proxy: &ProxyNode) -> OutboundPolicy {
    let policy = sidecar_for(snap, proxy).and_then(|c| c.spec.outbound_traffic_policy.as_ref());
    match policy.map(|p| p.mode.unwrap_or_default()) {
        Some(OutboundTrafficMode::RegistryOnly) => OutboundPolicy::RegistryOnly,
        Some(OutboundTrafficMode::AllowAny) | None => OutboundPolicy::AllowAny,
    }
}

/// See [`MeshSnapshot::visible_services`].
pub(super) fn visible_services<'a>(snap: &'a MeshSnapshot, proxy: &ProxyNode) -> Vec<&'a Service> {
    let ns = proxy.namespace.as_str();
    let Some(sidecar) = sidecar_for(snap, proxy) else {
        return snap.services().filter(|s| s.visible_from(ns)).collect();
    };
    let listeners = Egress::of(&sidecar.spec, ns);
    let mut chosen: BTreeSet<&Hostname> = snap
        .services()
        .filter(|s| s.visible_from(ns) && listeners.iter().any(|l| l.imports_service(s)))
        .map(|s| &s.hostname)
        .collect();
    let mesh_vs = bound_visible(snap, proxy, MESH_GATEWAY);
    for l in &listeners {
        for vs in mesh_vs.iter().filter(|vs| l.imports_vs(snap, vs)) {
            for host in destination_hosts(&vs.spec) {
                let Some(s) = snap.service_for_vs_host(vs, host) else {
                    continue;
                };
                if s.visible_from(ns) && l.port.is_none_or(|p| s.port(p).is_some()) {
                    chosen.insert(&s.hostname);
                }
            }
        }
    }
    chosen.into_iter().filter_map(|h| snap.service(h)).collect()
}

/// See [`MeshSnapshot::virtual_services`].
pub(super) fn virtual_services<'a>(
    snap: &'a MeshSnapshot,
    proxy: &ProxyNode,
    gateway: &str,
) -> Vec<&'a Config<VirtualService>> {
    let bound = bound_visible(snap, proxy, gateway);
    if gateway != MESH_GATEWAY {
        return bound;
    }
    let Some(sidecar) = sidecar_for(snap, proxy) else {
        return bound;
    };
    let listeners = Egress::of(&sidecar.spec, &proxy.namespace);
    bound
        .into_iter()
        .filter(|vs| listeners.iter().any(|l| l.imports_vs(snap, vs)))
        .collect()
}

/// VirtualServices with hosts, bound to `gateway` and exported to the proxy's namespace.
fn bound_visible<'a>(
    snap: &'a MeshSnapshot,
    proxy: &ProxyNode,
    gateway: &str,
) -> Vec<&'a Config<VirtualService>> {
    snap.virtual_services
        .iter()
        .filter(|vs| !vs.spec.hosts.is_empty())
        .filter(|vs| exported_to(&vs.spec.export_to, &vs.namespace, &proxy.namespace))
        .filter(|vs| bound_to(vs, gateway))
        .collect()
}

/// Whether `vs` binds to `gateway` (empty `gateways` means `mesh`).
fn bound_to(vs: &Config<VirtualService>, gateway: &str) -> bool {
    if vs.spec.gateways.is_empty() {
        return gateway == MESH_GATEWAY;
    }
    vs.spec
        .gateways
        .iter()
        .any(|g| qualify_gateway(&vs.namespace, g) == gateway)
}

/// A gateway reference from a config in `namespace` as `ns/name` (`mesh` unchanged):
/// `name` and `./name` are in `namespace`; the legacy `name.ns.svc.<suffix>` is `ns/name`.
pub(super) fn qualify_gateway(namespace: &str, gateway: &str) -> String {
    if gateway == MESH_GATEWAY {
        return gateway.to_owned();
    }
    match gateway.split_once('/') {
        Some((".", name)) => format!("{namespace}/{name}"),
        Some(_) => gateway.to_owned(),
        None => match gateway.split_once('.') {
            Some((name, rest)) => format!("{}/{name}", rest.split('.').next().unwrap_or(rest)),
            None => format!("{namespace}/{gateway}"),
        },
    }
}

/// Every destination host of a VirtualService as written (routes, mirrors, TCP and TLS).
pub(super) fn destination_hosts(vs: &VirtualService) -> impl Iterator<Item = &str> {
    let http = vs.http.iter().flat_map(|r| {
        let routes = r.route.iter().map(|d| d.destination.host.as_str());
        let mirror = r.mirror.iter().map(|d| d.host.as_str());
        let mirrors = r.mirrors.iter().map(|m| m.destination.host.as_str());
        routes.chain(mirror).chain(mirrors)
    });
    let tcp = vs
        .tcp
        .iter()
        .flat_map(|r| r.route.iter().map(|d| d.destination.host.as_str()));
    let tls = vs
        .tls
        .iter()
        .flat_map(|r| r.route.iter().map(|d| d.destination.host.as_str()));
    http.chain(tcp).chain(tls).filter(|h| !h.is_empty())
}
