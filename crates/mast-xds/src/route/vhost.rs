//! Virtual hosts of an outbound route table: which VirtualService (if any) owns each service
//! host on a port, the domains a service answers to from the proxy's namespace (Istio's
//! `generateVirtualHostDomains` / `GenerateAltVirtualHosts`), the vhosts of VirtualService hosts
//! no service declares, and the catch-all (`allow_any` / `block_all`; in ports capture with a
//! `CONNECT` route first, and `allow_any` to the dynamic forward proxy).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

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
    let with_routes: Vec<(usize, Vec<Route>)> = (0..scope.vses.len())
        .map(|i| (i, vs_routes(scope, scope.vses[i], port)))
        .filter(|(_, r)| !r.is_empty())
        .collect();
    let owner = claim(scope, &services, &with_routes);
    let mut specs = Vec::new();
    for (i, routes) in &with_routes {
        let claimed: Vec<&Service> = services
            .iter()
            .copied()
            .filter(|s| owner.get(&s.hostname) == Some(i))
            .collect();
        if claimed.is_empty() && port != 80 {
            continue;
        }
        for host in scope.vs_hosts[*i]
            .iter()
            .filter(|h| scope.lookup(h).is_none() && !matches_any(scope, h))
        {
            specs.push(host_spec(host, port, routes.clone()));
        }
        for svc in claimed {
            specs.push(service_spec(scope, svc, port, routes.clone()));
        }
    }
    for svc in services
        .into_iter()
        .filter(|s| !owner.contains_key(&s.hostname))
    {
        specs.push(service_spec(
            scope,
            svc,
            port,
            vec![default_route(scope, svc, port)],
        ));
    }
    specs
}

fn serves_http(svc: &Service, port: u16) -> bool {
    svc.port(port).is_some_and(|p| p.protocol.is_http())
}

/// Whether a wildcard VirtualService host covers some visible service.
fn matches_any(scope: &Scope<'_>, host: &Hostname) -> bool {
    host.is_wildcard() && scope.services.iter().any(|s| s.hostname.subset_of(host))
}

/// Which VirtualService (index into `scope.vses`) owns each service on this port: the first,
/// in order, naming it exactly; else the one with the most specific wildcard covering it.
/// Only VirtualServices with routes on the port take part.
fn claim<'s>(
    scope: &Scope<'_>,
    services: &[&'s Service],
    with_routes: &[(usize, Vec<Route>)],
) -> HashMap<&'s Hostname, usize> {
    let mut owner: HashMap<&Hostname, usize> = HashMap::new();
    for (i, _) in with_routes {
        for host in scope.vs_hosts[*i].iter().filter(|h| !h.is_wildcard()) {
            if let Some(svc) = services.iter().find(|s| &s.hostname == host) {
                owner.entry(&svc.hostname).or_insert(*i);
            }
        }
    }
    for svc in services {
        if owner.contains_key(&svc.hostname) {
            continue;
        }
        let best = with_routes
            .iter()
            .filter_map(|(i, _)| {
                let covering = scope.vs_hosts[*i]
                    .iter()
                    .filter(|h| h.is_wildcard() && svc.hostname.subset_of(h));
                covering
                    .map(|h| h.as_str().len())
                    .max()
                    .map(|len| (len, std::cmp::Reverse(*i)))
            })
            .max();
        if let Some((_, std::cmp::Reverse(i))) = best {
            owner.insert(&svc.hostname, i);
        }
    }
    owner
}

fn host_spec(host: &Hostname, port: u16, routes: Vec<Route>) -> VhostSpec {
    let mut domains = Vec::new();
    push_with_port(&mut domains, host.as_str(), port, false);
    VhostSpec {
        name: format!("{host}:{port}"),
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
        name: format!("{}:{port}", svc.hostname),
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
    let mut out = Vec::new();
    push_with_port(&mut out, svc.hostname.as_str(), port, false);
    let kube_suffix = format!(".svc.{suffix}");
    if let Some((name, ns)) = svc
        .hostname
        .as_str()
        .strip_suffix(&kube_suffix)
        .and_then(|p| p.split_once('.'))
    {
        if ns == proxy_ns {
            push_with_port(&mut out, name, port, true);
        }
        push_with_port(&mut out, &format!("{name}.{ns}.svc"), port, true);
        push_with_port(&mut out, &format!("{name}.{ns}"), port, true);
    }
    for vip in svc
        .addresses
        .iter()
        .filter(|a| !a.is_empty() && a.as_str() != "0.0.0.0" && a.as_str() != "::")
    {
        let vip = if vip.contains(':') {
            format!("[{vip}]")
        } else {
            vip.clone()
        };
        push_with_port(&mut out, &vip, port, false);
    }
    out
}

fn push_with_port(out: &mut Vec<Domain>, name: &str, port: u16, alt: bool) {
    out.push(Domain {
        name: name.to_owned(),
        with_port: false,
        alt,
    });
    out.push(Domain {
        name: format!("{name}:{port}"),
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
    let known: HashSet<String> = specs
        .iter()
        .flat_map(|s| [s.host.clone(), format!("{}:{}", s.host, s.port)])
        .collect();
    let mut used_names = HashSet::new();
    let mut used_domains = HashSet::new();
    let mut out: BTreeMap<String, VirtualHost> = BTreeMap::new();
    for spec in specs {
        if !used_names.insert(spec.name.clone()) {
            tracing::debug!(vhost = %spec.name, "duplicate virtual host left out");
            continue;
        }
        let domains: Vec<String> = spec
            .domains
            .into_iter()
            .filter(|d| !(d.alt && known.contains(&d.name)))
            .filter(|d| used_domains.insert(d.name.clone()))
            .map(|d| d.name)
            .collect();
        if domains.is_empty() || spec.routes.is_empty() {
            continue;
        }
        let vhost = VirtualHost {
            name: spec.name.clone(),
            domains,
            routes: spec.routes,
            ..Default::default()
        };
        out.insert(spec.name, vhost);
    }
    let mut vhosts: Vec<VirtualHost> = out.into_values().collect();
    vhosts.push(catch_all(
        scope.snapshot.outbound_policy(scope.proxy),
        forward_proxy::is_explicit_proxy(scope.proxy),
    ));
    vhosts
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
