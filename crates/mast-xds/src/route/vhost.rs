//! Virtual hosts of an outbound route table: which VirtualService (if any) owns each service
//! host on a port, the domains a service answers to from the proxy's namespace (Istio's
//! `generateVirtualHostDomains` / `GenerateAltVirtualHosts`), the vhosts of VirtualService hosts
//! no service declares, and the catch-all (`allow_any` / `block_all`; in ports capture with a
//! `CONNECT` route first, and `allow_any` to the dynamic forward proxy).

use std::collections::{BTreeSet, HashMap, HashSet};

use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::{DirectResponseAction, Route, VirtualHost};
use mast_core::Hostname;
use mast_model::{OutboundPolicy, Service};

use super::action::{default_route, passthrough_action, vs_routes};
use super::matching::match_all;
use super::{Scope, connect};
use crate::{forward_proxy, names};

/// The catch-all virtual host when unknown destinations pass through.
pub const ALLOW_ANY: &str = "allow_any";
/// The catch-all virtual host when unknown destinations are refused (502).
pub const BLOCK_ALL: &str = "block_all";

/// One domain of a virtual host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// The domain as Envoy matches it (`reviews`, `reviews:9080`, `10.0.0.1`).
    pub name: String,
    /// Whether it carries the port suffix.
    pub with_port: bool,
    /// Whether it is a short name derived from the host (dropped when it equals a real host).
    pub alt: bool,
}

/// A virtual host before its domains are made unique across the route table.
#[derive(Debug, Clone)]
pub struct VhostSpec {
    /// `<host>:<port>`.
    pub name: String,
    /// The host it serves.
    pub host: String,
    /// The listener/service port.
    pub port: u16,
    /// The port its port-less domains belong to when all ports share one table (ports
    /// capture): the service's only HTTP port, else 80; `None` for hosts no service declares
    /// (decided when tables merge).
    pub default_port: Option<u16>,
    /// Whether a service declares the host.
    pub is_service: bool,
    /// Candidate domains.
    pub domains: Vec<Domain>,
    /// Its routes.
    pub routes: Vec<Route>,
}

/// The virtual hosts of every service and VirtualService host on `port`.
pub fn port_specs(scope: &Scope<'_>, port: u16) -> Vec<VhostSpec> {
    let services: Vec<&Service> = scope
        .services
        .iter()
        .copied()
        .filter(|s| serves_http(s, port))
        .collect();
    let mut routes = routes_on_port(scope, &services, port);
    let owner: Vec<Option<usize>> = services
        .iter()
        .map(|s| claim(scope, &routes, &s.hostname))
        .collect();
    let mut claimed: Vec<Vec<&Service>> = vec![Vec::new(); scope.vses.len()];
    for (svc, o) in services.iter().zip(&owner) {
        if let Some(i) = o {
            claimed[*i].push(svc);
        }
    }
    let mut specs = Vec::with_capacity(services.len());
    for (i, slot) in routes.iter_mut().enumerate() {
        if let Some(vs_routes) = slot.take() {
            let claimed = std::mem::take(&mut claimed[i]);
            vs_specs(scope, i, vs_routes, claimed, port, &mut specs);
        }
    }
    for (svc, _) in services.iter().zip(&owner).filter(|(_, o)| o.is_none()) {
        specs.push(service_spec(
            scope,
            svc,
            port,
            vec![default_route(scope, svc, port)],
        ));
    }
    specs
}

/// The virtual hosts of VirtualService `i` (index into `scope.vses`) on `port`: its hosts no
/// service declares, then the services it `claimed`, all with its routes. Nothing on a port
/// other than 80 when it claims no service there.
fn vs_specs<'s>(
    scope: &Scope<'s>,
    i: usize,
    mut vs_routes: Vec<Route>,
    claimed: Vec<&'s Service>,
    port: u16,
    specs: &mut Vec<VhostSpec>,
) {
    if claimed.is_empty() && port != 80 {
        return;
    }
    let hosts: Vec<&Hostname> = scope.vs_hosts[i]
        .iter()
        .filter(|h| scope.lookup(h).is_none() && !matches_any(scope, h))
        .collect();
    // Every spec gets the routes; the last one takes them without a copy.
    let uses = hosts.len() + claimed.len();
    let mut given = 0;
    let mut next = || {
        given += 1;
        if given == uses {
            std::mem::take(&mut vs_routes)
        } else {
            vs_routes.clone()
        }
    };
    for host in hosts {
        specs.push(host_spec(host, port, next()));
    }
    for svc in claimed {
        specs.push(service_spec(scope, svc, port, next()));
    }
}

/// The routes of each VirtualService (by index into `scope.vses`) on this port; `None` when it
/// has none. On a port other than 80 only VirtualServices that may name one of `services` are
/// translated: the others could claim nothing, and their hosts get virtual hosts on 80 only.
fn routes_on_port(scope: &Scope<'_>, services: &[&Service], port: u16) -> Vec<Option<Vec<Route>>> {
    let mut needed = vec![port == 80; scope.vses.len()];
    if port != 80 {
        for svc in services {
            if svc.hostname.is_wildcard() {
                needed.fill(true);
                break;
            }
            for i in scope.vses_naming(&svc.hostname) {
                needed[*i] = true;
            }
        }
        for i in scope.vses_with_wildcards() {
            needed[*i] = true;
        }
    }
    scope
        .vses
        .iter()
        .zip(needed)
        .map(|(vs, needed)| {
            needed
                .then(|| vs_routes(scope, vs, port))
                .filter(|r| !r.is_empty())
        })
        .collect()
}

fn serves_http(svc: &Service, port: u16) -> bool {
    svc.port(port).is_some_and(|p| p.protocol.is_http())
}

/// Whether a wildcard VirtualService host covers some visible service.
fn matches_any(scope: &Scope<'_>, host: &Hostname) -> bool {
    host.is_wildcard() && scope.services.iter().any(|s| s.hostname.subset_of(host))
}

/// Which VirtualService (index into `scope.vses`) owns the service `host` on this port: the
/// first, in order, naming it exactly; else the one with the most specific wildcard covering
/// it. Only VirtualServices with routes on the port take part.
fn claim(scope: &Scope<'_>, routes: &[Option<Vec<Route>>], host: &Hostname) -> Option<usize> {
    let has_routes = |i: &usize| routes[*i].is_some();
    if let Some(i) = scope.vses_naming(host).iter().copied().find(has_routes) {
        return Some(i);
    }
    scope
        .vses_with_wildcards()
        .iter()
        .copied()
        .filter(has_routes)
        .filter_map(|i| {
            let covering = scope.vs_hosts[i]
                .iter()
                .filter(|h| h.is_wildcard() && host.subset_of(h));
            covering
                .map(|h| h.as_str().len())
                .max()
                .map(|len| (len, std::cmp::Reverse(i)))
        })
        .max()
        .map(|(_, std::cmp::Reverse(i))| i)
}

fn host_spec(host: &Hostname, port: u16, routes: Vec<Route>) -> VhostSpec {
    let mut domains = Vec::new();
    push_with_port(&mut domains, host.as_str().to_owned(), port, false);
    VhostSpec {
        name: names::with_port(host.as_str(), port),
        host: host.to_string(),
        port,
        default_port: None,
        is_service: false,
        domains,
        routes,
    }
}

fn service_spec(scope: &Scope<'_>, svc: &Service, port: u16, routes: Vec<Route>) -> VhostSpec {
    let http_ports: Vec<u16> = svc
        .ports
        .iter()
        .filter(|p| p.protocol.is_http())
        .map(|p| p.port)
        .collect();
    let default_port = match http_ports.as_slice() {
        [only] => Some(*only),
        many if many.contains(&80) => Some(80),
        _ => None,
    };
    VhostSpec {
        name: names::with_port(svc.hostname.as_str(), port),
        host: svc.hostname.to_string(),
        port,
        default_port,
        is_service: true,
        domains: service_domains(
            svc,
            port,
            &scope.proxy.namespace,
            &scope.snapshot.options.domain_suffix,
        ),
        routes,
    }
}

/// The domains of a service on `port` seen from namespace `proxy_ns`: the host; for a
/// Kubernetes host (`<name>.<ns>.svc.<suffix>`) `name.ns`, `name.ns.svc` and, from the same
/// namespace, `name`; every VIP; each with and without `:<port>`.
pub fn service_domains(svc: &Service, port: u16, proxy_ns: &str, suffix: &str) -> Vec<Domain> {
    let mut out = Vec::with_capacity(2 * (4 + svc.addresses.len()));
    push_with_port(&mut out, svc.hostname.as_str().to_owned(), port, false);
    if let Some((name, ns)) = svc
        .hostname
        .as_str()
        .strip_suffix(suffix)
        .and_then(|p| p.strip_suffix(".svc."))
        .and_then(|p| p.split_once('.'))
    {
        if ns == proxy_ns {
            push_with_port(&mut out, name.to_owned(), port, true);
        }
        push_with_port(
            &mut out,
            names::concat(&[name, ".", ns, ".svc"]),
            port,
            true,
        );
        push_with_port(&mut out, names::concat(&[name, ".", ns]), port, true);
    }
    for vip in svc
        .addresses
        .iter()
        .filter(|a| !a.is_empty() && a.as_str() != "0.0.0.0" && a.as_str() != "::")
    {
        let vip = if vip.contains(':') {
            names::concat(&["[", vip, "]"])
        } else {
            vip.clone()
        };
        push_with_port(&mut out, vip, port, false);
    }
    out
}

fn push_with_port(out: &mut Vec<Domain>, name: String, port: u16, alt: bool) {
    let with_port = names::with_port(&name, port);
    out.push(Domain {
        name,
        with_port: false,
        alt,
    });
    out.push(Domain {
        name: with_port,
        with_port: true,
        alt,
    });
}

/// Keeps, when all ports share one table, each host's port-less domains on one port only: a
/// service's default port; for a host no service declares, 80, else its only port.
pub fn merge_ports(specs: Vec<VhostSpec>) -> Vec<VhostSpec> {
    let mut host_ports: HashMap<String, BTreeSet<u16>> = HashMap::new();
    for s in specs.iter().filter(|s| !s.is_service) {
        host_ports.entry(s.host.clone()).or_default().insert(s.port);
    }
    specs
        .into_iter()
        .map(|mut s| {
            let keep = if s.is_service {
                s.default_port == Some(s.port)
            } else {
                s.port == 80 || host_ports.get(&s.host).is_some_and(|p| p.len() == 1)
            };
            if !keep {
                s.domains.retain(|d| d.with_port);
            }
            s
        })
        .collect()
}

/// Envoy virtual hosts, sorted by name, with every domain used once in the table (first
/// wins) and short names that equal a real host left out; then the catch-all.
pub fn finalize(scope: &Scope<'_>, specs: Vec<VhostSpec>) -> Vec<VirtualHost> {
    let plans = plan_domains(&specs);
    let mut vhosts: Vec<VirtualHost> = Vec::with_capacity(specs.len() + 1);
    vhosts.extend(specs.into_iter().zip(plans).filter_map(|(spec, plan)| {
        let keep = plan?;
        let mut domains: Vec<Option<String>> =
            spec.domains.into_iter().map(|d| Some(d.name)).collect();
        Some(VirtualHost {
            name: spec.name,
            domains: keep.into_iter().filter_map(|i| domains[i].take()).collect(),
            routes: spec.routes,
            ..Default::default()
        })
    }));
    vhosts.sort_by(|a, b| a.name.cmp(&b.name));
    vhosts.push(catch_all(
        scope.snapshot.outbound_policy(scope.proxy),
        forward_proxy::is_explicit_proxy(scope.proxy),
    ));
    vhosts
}

/// For each spec, the indexes of the domains it keeps, or `None` when it is left out: a
/// repeated virtual host name, or no domain or no route left. A domain is kept when no
/// earlier kept spec used it and, for a short name, when it is not a real host (a spec's host,
/// or its name, which is `<host>:<port>`).
fn plan_domains(specs: &[VhostSpec]) -> Vec<Option<Vec<usize>>> {
    let known: HashSet<&str> = specs
        .iter()
        .flat_map(|s| [s.host.as_str(), s.name.as_str()])
        .collect();
    let mut used_names: HashSet<&str> = HashSet::new();
    let mut used_domains: HashSet<&str> = HashSet::new();
    specs
        .iter()
        .map(|spec| {
            if !used_names.insert(spec.name.as_str()) {
                tracing::debug!(vhost = %spec.name, "duplicate virtual host left out");
                return None;
            }
            let keep: Vec<usize> = spec
                .domains
                .iter()
                .enumerate()
                .filter(|(_, d)| !(d.alt && known.contains(d.name.as_str())))
                .filter(|(_, d)| used_domains.insert(d.name.as_str()))
                .map(|(i, _)| i)
                .collect();
            (!keep.is_empty() && !spec.routes.is_empty()).then_some(keep)
        })
        .collect()
}

/// The last virtual host (`*`): to `PassthroughCluster` with no timeout (ALLOW_ANY), or a
/// 502 (REGISTRY_ONLY). On an explicit proxy (ports capture) ALLOW_ANY goes to
/// `ForwardProxyCluster` instead — the original destination there is the proxy itself — and
/// a `CONNECT` route comes first (see [`connect::catch_all_route`]).
pub fn catch_all(policy: OutboundPolicy, explicit_proxy: bool) -> VirtualHost {
    let passthrough = if explicit_proxy {
        forward_proxy::FORWARD_PROXY_CLUSTER
    } else {
        names::PASSTHROUGH_CLUSTER
    };
    let (name, action) = match policy {
        OutboundPolicy::AllowAny => (ALLOW_ANY, Action::Route(passthrough_action(passthrough))),
        OutboundPolicy::RegistryOnly => (
            BLOCK_ALL,
            Action::DirectResponse(DirectResponseAction {
                status: 502,
                ..Default::default()
            }),
        ),
    };
    let route = Route {
        name: name.into(),
        r#match: Some(match_all()),
        action: Some(action),
        ..Default::default()
    };
    let mut routes = vec![route];
    if explicit_proxy {
        routes.insert(0, connect::catch_all_route(name, policy));
    }
    VirtualHost {
        name: name.into(),
        domains: vec!["*".into()],
        routes,
        ..Default::default()
    }
}
