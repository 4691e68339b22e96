//! `CONNECT` through ports capture's explicit HTTP proxy (route table `mast_outbound`): how a
//! workload reaches TCP, TLS and HTTPS services (and HTTP ones, if it likes) through
//! `HTTP_PROXY`, since ports capture has no per-port listeners.
//!
//! Every `CONNECT` route matches with `connect_matcher {}` (the only way to match an HTTP/1.1
//! `CONNECT`, whose `:authority` is `host:port` and which has no path) and terminates the
//! tunnel: `upgrade_configs: [{upgrade_type: CONNECT, connect_config: {}}]` makes Envoy answer
//! `200` once the upstream connection is up, then proxy the raw TCP stream. `timeout: 0s`
//! (tunnels live as long as they are used).
//!
//! - a **TCP/TLS/HTTPS/unsupported-protocol service port** gets a virtual host `<host>:<port>`
//!   whose domains are the port forms of its HTTP domains (`reviews:9000`,
//!   `reviews.default:9000`, …, `<vip>:9000`), routing to `outbound|<port>||<host>`, or to
//!   the destinations of the first VirtualService rule that applies (see [`l4_specs`]);
//! - an **HTTP service port**'s virtual host gets the same route, first, to its own cluster;
//! - the catch-all (see [`catch_all_route`]) sends unknown `host:port`s to the dynamic
//!   forward proxy under ALLOW_ANY and answers 502 under REGISTRY_ONLY.

use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::upgrade_config::ConnectConfig;
use envoy_types::pb::envoy::config::route::v3::route_action::{ClusterSpecifier, UpgradeConfig};
use envoy_types::pb::envoy::config::route::v3::route_match::{ConnectMatcher, PathSpecifier};
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::ClusterWeight;
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, Route, RouteAction, RouteMatch, WeightedCluster,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use mast_config::networking::VirtualService;
use mast_config::networking::virtual_service::{Destination, RouteDestination};
use mast_core::Hostname;
use mast_model::{Config, OutboundPolicy, Protocol, Service, ServicePort};

use super::Scope;
use super::policies::no_timeout;
use super::vhost::{VhostSpec, service_domains};
use crate::listener::StaticMatch;
use crate::{forward_proxy, names};

/// The name of the `CONNECT` route of a service's virtual host.
pub const CONNECT_ROUTE: &str = "connect";
/// The upgrade type Envoy terminates for `CONNECT`.
pub const CONNECT_UPGRADE: &str = "CONNECT";
/// The status of a refused `CONNECT` (REGISTRY_ONLY), the same as for refused HTTP requests.
pub const REFUSED_STATUS: u32 = 502;

/// A route matching `CONNECT` requests only.
fn connect_route(name: &str, action: Action) -> Route {
    Route {
        name: name.to_owned(),
        r#match: Some(RouteMatch {
            path_specifier: Some(PathSpecifier::ConnectMatcher(ConnectMatcher {})),
            ..Default::default()
        }),
        action: Some(action),
        ..Default::default()
    }
}

/// Forwards a terminated `CONNECT` tunnel as raw TCP to `clusters`, with no timeout.
fn tunnel(clusters: ClusterSpecifier) -> Action {
    Action::Route(RouteAction {
        cluster_specifier: Some(clusters),
        timeout: Some(no_timeout()),
        upgrade_configs: vec![UpgradeConfig {
            upgrade_type: CONNECT_UPGRADE.to_owned(),
            connect_config: Some(ConnectConfig::default()),
            ..Default::default()
        }],
        ..Default::default()
    })
}

/// The `CONNECT` route of the catch-all: a tunnel to `ForwardProxyCluster` under ALLOW_ANY
/// (the dynamic forward proxy resolves the `host` of `host:port`), else a 502 — the status
/// refused HTTP requests get from `block_all`, so a client sees one answer for "not in the
/// registry" whichever way it asks (403 would suggest an authorization policy instead).
pub fn catch_all_route(name: &str, policy: OutboundPolicy) -> Route {
    let action = match policy {
        OutboundPolicy::AllowAny => tunnel(ClusterSpecifier::Cluster(
            forward_proxy::FORWARD_PROXY_CLUSTER.to_owned(),
        )),
        OutboundPolicy::RegistryOnly => Action::DirectResponse(DirectResponseAction {
            status: REFUSED_STATUS,
            ..Default::default()
        }),
    };
    connect_route(&format!("{name}_connect"), action)
}

/// Puts a `CONNECT` route to the service's own cluster, `outbound|<port>||<host>`, in front
/// of the routes of every service virtual host (VirtualService-only hosts have no cluster of
/// their own and get none).
pub fn add_to_http(specs: &mut [VhostSpec]) {
    for spec in specs.iter_mut().filter(|s| s.is_service) {
        // A service spec's host is a `Hostname` already (lower case): no need to parse it.
        let port = names::PortDigits::new(spec.port);
        let cluster = names::concat(&["outbound|", port.as_str(), "||", &spec.host]);
        debug_assert_eq!(
            cluster,
            names::outbound_cluster(spec.port, "", &Hostname::new_unchecked(&spec.host))
        );
        let route = connect_route(CONNECT_ROUTE, tunnel(ClusterSpecifier::Cluster(cluster)));
        spec.routes.insert(0, route);
    }
}

/// The `CONNECT` virtual hosts of every non-HTTP port (TCP, TLS, HTTPS, Mongo, MySQL, Redis,
/// unsupported) of the services the proxy sees; UDP ports get none.
///
/// The tunnel goes to `outbound|<port>||<host>` unless a VirtualService naming the host has,
/// for this proxy and port, a rule that applies to every connection:
/// - for TCP-like ports, the first `tcp` rule without `match`, or with a match that holds
///   (`sourceLabels`, `sourceNamespace`, `port`, `gateways`) and has no `destinationSubnets`;
/// - for TLS/HTTPS ports, the first `tls` match that holds, has no `destinationSubnets` and
///   whose `sniHosts` cover the host (a client sends the host it `CONNECT`ed to as SNI).
///
/// Its destinations are honoured as on the per-port listeners of iptables capture: one
/// cluster, or weighted clusters for several (weights > 0, relative), with subsets and ports.
/// Matches on `destinationSubnets` are not: a tunnel is routed by name, before any address is
/// known, so such rules are skipped.
pub fn l4_specs(scope: &Scope<'_>) -> Vec<VhostSpec> {
    let mut out = Vec::new();
    for svc in &scope.services {
        for port in svc
            .ports
            .iter()
            .filter(|p| !p.protocol.is_http() && p.protocol != Protocol::Udp)
        {
            out.push(l4_spec(scope, svc, port));
        }
    }
    out
}

fn l4_spec(scope: &Scope<'_>, svc: &Service, port: &ServicePort) -> VhostSpec {
    let mut domains = service_domains(
        svc,
        port.port,
        &scope.proxy.namespace,
        &scope.snapshot.options.domain_suffix,
    );
    domains.retain(|d| d.with_port);
    let clusters = rule_for(scope, svc, port)
        .map(|(vs, routes)| destinations(scope, vs, routes, port.port))
        .unwrap_or_else(|| {
            ClusterSpecifier::Cluster(names::outbound_cluster(port.port, "", &svc.hostname))
        });
    VhostSpec {
        name: names::with_port(svc.hostname.as_str(), port.port),
        host: svc.hostname.to_string(),
        port: port.port,
        default_port: None,
        is_service: true,
        domains,
        routes: vec![connect_route(CONNECT_ROUTE, tunnel(clusters))],
    }
}

/// The first VirtualService rule (with destinations) that routes every tunnel to this port.
fn rule_for<'a>(
    scope: &Scope<'a>,
    svc: &Service,
    port: &ServicePort,
) -> Option<(&'a Config<VirtualService>, &'a [RouteDestination])> {
    scope
        .vs_candidates(&svc.hostname)
        .into_iter()
        .filter(|i| scope.vs_hosts[*i].iter().any(|h| h.matches(&svc.hostname)))
        .find_map(|i| {
            let vs = scope.vses[i];
            let routes = if port.protocol.is_tls() {
                tls_rule(scope, vs, svc, port.port)
            } else {
                tcp_rule(scope, vs, port.port)
            };
            routes.map(|r| (vs, r))
        })
}

/// The destinations of `vs`'s first `tcp` rule without `match`, or with a match that holds and
/// has no `destinationSubnets`.
fn tcp_rule<'a>(
    scope: &Scope<'_>,
    vs: &'a Config<VirtualService>,
    port: u16,
) -> Option<&'a [RouteDestination]> {
    let rule = vs
        .spec
        .tcp
        .iter()
        .filter(|r| !r.route.is_empty())
        .find(|r| {
            r.r#match.is_empty()
                || r.r#match.iter().any(|m| {
                    m.destination_subnets.is_empty()
                        && StaticMatch {
                            gateways: &m.gateways,
                            source_labels: &m.source_labels,
                            port: m.port,
                            source_namespace: &m.source_namespace,
                        }
                        .holds(scope.proxy, port)
                })
        })?;
    Some(&rule.route)
}

/// The destinations of `vs`'s first `tls` rule with a match that holds, has no
/// `destinationSubnets`, and whose `sniHosts` cover the service host.
fn tls_rule<'a>(
    scope: &Scope<'_>,
    vs: &'a Config<VirtualService>,
    svc: &Service,
    port: u16,
) -> Option<&'a [RouteDestination]> {
    let suffix = &scope.snapshot.options.domain_suffix;
    let covers = |sni: &String| {
        Hostname::new_unchecked(sni)
            .resolve(&vs.namespace, suffix)
            .matches(&svc.hostname)
    };
    let rule = vs
        .spec
        .tls
        .iter()
        .filter(|r| !r.route.is_empty())
        .find(|r| {
            r.r#match.iter().any(|m| {
                m.destination_subnets.is_empty()
                    && m.sni_hosts.iter().any(covers)
                    && StaticMatch {
                        gateways: &m.gateways,
                        source_labels: &m.source_labels,
                        port: m.port,
                        source_namespace: &m.source_namespace,
                    }
                    .holds(scope.proxy, port)
            })
        })?;
    Some(&rule.route)
}

/// One cluster, or weighted clusters when several destinations have a weight > 0 (as the
/// `tcp_proxy` of iptables capture splits connections).
fn destinations(
    scope: &Scope<'_>,
    vs: &Config<VirtualService>,
    routes: &[RouteDestination],
    listen_port: u16,
) -> ClusterSpecifier {
    let cluster = |d: &Destination| destination_cluster(scope, vs, d, listen_port);
    let weighted: Vec<ClusterWeight> = routes
        .iter()
        .filter_map(|r| {
            let weight = u32::try_from(r.weight.unwrap_or(0))
                .ok()
                .filter(|w| *w > 0)?;
            Some(ClusterWeight {
                name: cluster(&r.destination),
                weight: Some(UInt32Value { value: weight }),
                ..Default::default()
            })
        })
        .collect();
    match routes {
        [first, rest @ ..] if rest.is_empty() || weighted.is_empty() => {
            ClusterSpecifier::Cluster(cluster(&first.destination))
        }
        _ => ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: weighted,
            ..Default::default()
        }),
    }
}

/// Istio's `GetDestinationCluster`: the destination's port, else its service's only port,
/// else the port tunnelled to; the host qualified with the VirtualService's namespace.
fn destination_cluster(
    scope: &Scope<'_>,
    vs: &Config<VirtualService>,
    dst: &Destination,
    listen_port: u16,
) -> String {
    let host = super::action::destination_host(scope, vs, dst);
    let explicit = dst
        .port
        .as_ref()
        .and_then(|p| p.number)
        .and_then(|n| u16::try_from(n).ok());
    let port = explicit
        .or_else(|| match scope.lookup(&host).map(|s| s.ports.as_slice()) {
            Some([only]) => Some(only.port),
            _ => None,
        })
        .unwrap_or(listen_port);
    names::outbound_cluster(port, &dst.subset, &host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrades(route: &Route) -> Vec<(String, bool)> {
        match &route.action {
            Some(Action::Route(a)) => a
                .upgrade_configs
                .iter()
                .map(|u| (u.upgrade_type.clone(), u.connect_config.is_some()))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn is_connect(route: &Route) -> bool {
        matches!(
            route
                .r#match
                .as_ref()
                .and_then(|m| m.path_specifier.as_ref()),
            Some(PathSpecifier::ConnectMatcher(_))
        )
    }

    #[test]
    fn catch_all_tunnels_to_the_forward_proxy_or_refuses_with_502() {
        let allow = catch_all_route("allow_any", OutboundPolicy::AllowAny);
        assert_eq!(allow.name, "allow_any_connect");
        assert!(is_connect(&allow));
        assert_eq!(upgrades(&allow), [("CONNECT".to_owned(), true)]);
        let Some(Action::Route(a)) = &allow.action else {
            panic!()
        };
        assert_eq!(
            a.cluster_specifier,
            Some(ClusterSpecifier::Cluster("ForwardProxyCluster".into()))
        );
        assert_eq!(a.timeout, Some(no_timeout()));

        let block = catch_all_route("block_all", OutboundPolicy::RegistryOnly);
        assert_eq!(block.name, "block_all_connect");
        assert!(is_connect(&block));
        let Some(Action::DirectResponse(d)) = &block.action else {
            panic!()
        };
        assert_eq!(d.status, 502);
    }

    #[test]
    fn http_service_vhosts_get_a_connect_route_first() {
        let spec = |host: &str, is_service: bool| VhostSpec {
            name: format!("{host}:80"),
            host: host.into(),
            port: 80,
            default_port: Some(80),
            is_service,
            domains: Vec::new(),
            routes: vec![Route {
                name: "default".into(),
                ..Default::default()
            }],
        };
        let mut specs = vec![
            spec("web.default.svc.cluster.local", true),
            spec("shop.example.org", false),
        ];
        add_to_http(&mut specs);
        let routes: Vec<&str> = specs[0].routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(routes, ["connect", "default"]);
        assert!(is_connect(&specs[0].routes[0]));
        let Some(Action::Route(a)) = &specs[0].routes[0].action else {
            panic!()
        };
        assert_eq!(
            a.cluster_specifier,
            Some(ClusterSpecifier::Cluster(
                "outbound|80||web.default.svc.cluster.local".into()
            ))
        );
        assert_eq!(
            specs[1].routes.len(),
            1,
            "VirtualService-only hosts have no cluster"
        );
    }
}
