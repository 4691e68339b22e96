//! The filter chains of an outbound TCP or TLS service port, from the VirtualServices for its
//! host (Istio's `buildSidecarOutboundTCPFilterChainOpts` / `...TLSFilterChainOpts`):
//! - TCP ports: `tcp` routes in order; a rule without matches, or a match without
//!   `destinationSubnets`, ends the list (it catches everything); matches with subnets become
//!   chains on those prefix ranges. Without a catch-all, the service's own cluster is the default.
//! - TLS/HTTPS ports: `tls` routes, one chain per distinct (SNI hosts, subnets); without any
//!   matching rule, one chain to the service's cluster, matched by the service host as SNI when
//!   the listener is on the wildcard address.
//!
//! `sourceLabels`, `sourceNamespace`, `gateways` and `port` are decided here, for this proxy
//! and port; only SNI and destination subnets are left for Envoy to match.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::listener::v3::Filter;
use mast_config::networking::VirtualService;
use mast_config::networking::virtual_service::{Destination, RouteDestination};
use mast_model::{Config, ProxyNode, Service, ServicePort};

use super::Inputs;
use super::chain::{ChainOpts, Cidr, parse_cidrs, push_unique};
use super::filters;
use crate::names;

/// The gateway name that means "every sidecar".
const MESH_GATEWAY: &str = "mesh";

/// One outbound TCP/TLS service port as a listener sees it.
pub struct PortCtx<'a> {
    /// The service.
    pub service: &'a Service,
    /// The port.
    pub port: &'a ServicePort,
    /// Whether the listener is on the wildcard address (no VIP).
    pub wildcard_bind: bool,
    /// The service's address when it is a CIDR block (the listener is then on the wildcard).
    pub cidr: Option<Cidr>,
}

impl PortCtx<'_> {
    fn cidrs(&self) -> Vec<Cidr> {
        self.cidr.iter().cloned().collect()
    }
}

/// The chains for one TCP or TLS service port, in match order.
pub fn chains(inputs: &Inputs<'_>, ctx: &PortCtx<'_>) -> Vec<ChainOpts> {
    let configs = configs_for_host(inputs, ctx.service);
    if ctx.port.protocol.is_tls() {
        tls_chains(inputs, ctx, &configs)
    } else {
        tcp_chains(inputs, ctx, &configs)
    }
}

/// The VirtualServices one of whose hosts matches the service host.
fn configs_for_host<'a>(inputs: &Inputs<'a>, service: &Service) -> Vec<&'a Config<VirtualService>> {
    inputs
        .virtual_services
        .iter()
        .copied()
        .filter(|vs| {
            vs.spec
                .hosts
                .iter()
                .any(|h| inputs.resolve(h, &vs.namespace).matches(&service.hostname))
        })
        .collect()
}

/// The conditions Istio evaluates while generating config (`matchTCP` / `matchTLS`); shared
/// with the `CONNECT` routes of ports capture (`route::connect`).
pub(crate) struct StaticMatch<'m> {
    /// `gateways`: empty, or containing `mesh`, for a sidecar.
    pub gateways: &'m [String],
    /// `sourceLabels`: all carried by the proxy.
    pub source_labels: &'m BTreeMap<String, String>,
    /// `port`: unset, 0 or the service port.
    pub port: Option<i64>,
    /// `sourceNamespace`: empty or the proxy's namespace.
    pub source_namespace: &'m str,
}

impl StaticMatch<'_> {
    /// Whether the conditions hold for `proxy` on service port `port`.
    pub fn holds(&self, proxy: &ProxyNode, port: u16) -> bool {
        let gateway = self.gateways.is_empty() || self.gateways.iter().any(|g| g == MESH_GATEWAY);
        let labels = self
            .source_labels
            .iter()
            .all(|(k, v)| proxy.labels.get(k) == Some(v));
        let port_ok = self.port.is_none_or(|p| p == 0 || p == i64::from(port));
        let ns = self.source_namespace.is_empty() || self.source_namespace == proxy.namespace;
        gateway && labels && port_ok && ns
    }
}

fn tcp_chains(
    inputs: &Inputs<'_>,
    ctx: &PortCtx<'_>,
    configs: &[&Config<VirtualService>],
) -> Vec<ChainOpts> {
    let mut out = Vec::new();
    let mut default_added = false;
    'configs: for vs in configs {
        for rule in &vs.spec.tcp {
            let Some(filters) = route_filters(inputs, &rule.route, ctx.port.port, vs) else {
                continue;
            };
            let mut subnets = Vec::new();
            let mut catch_all = rule.r#match.is_empty();
            for m in &rule.r#match {
                let cond = StaticMatch {
                    gateways: &m.gateways,
                    source_labels: &m.source_labels,
                    port: m.port,
                    source_namespace: &m.source_namespace,
                };
                if !cond.holds(inputs.proxy, ctx.port.port) {
                    continue;
                }
                if m.destination_subnets.is_empty() {
                    catch_all = true;
                    break;
                }
                subnets.extend(m.destination_subnets.iter().cloned());
            }
            let parsed = parse_cidrs(&subnets);
            if catch_all || (!subnets.is_empty() && parsed.is_empty()) {
                push_unique(&mut out, ChainOpts::new(Vec::new(), ctx.cidrs(), filters));
                default_added = true;
                break 'configs;
            }
            if !parsed.is_empty() {
                default_added |= parsed == ctx.cidrs();
                push_unique(&mut out, ChainOpts::new(Vec::new(), parsed, filters));
            }
        }
    }
    if !default_added {
        push_unique(
            &mut out,
            ChainOpts::new(Vec::new(), ctx.cidrs(), default_filters(inputs, ctx)),
        );
    }
    out
}

fn tls_chains(
    inputs: &Inputs<'_>,
    ctx: &PortCtx<'_>,
    configs: &[&Config<VirtualService>],
) -> Vec<ChainOpts> {
    let mut out = Vec::new();
    let mut matched = false;
    for vs in configs {
        for rule in &vs.spec.tls {
            let Some(filters) = route_filters(inputs, &rule.route, ctx.port.port, vs) else {
                continue;
            };
            for m in &rule.r#match {
                let cond = StaticMatch {
                    gateways: &m.gateways,
                    source_labels: &m.source_labels,
                    port: m.port,
                    source_namespace: &m.source_namespace,
                };
                if !cond.holds(inputs.proxy, ctx.port.port) {
                    continue;
                }
                let prefixes = if m.destination_subnets.is_empty() {
                    ctx.cidrs()
                } else {
                    parse_cidrs(&m.destination_subnets)
                };
                push_unique(
                    &mut out,
                    ChainOpts::new(m.sni_hosts.clone(), prefixes, filters.clone()),
                );
                matched = true;
            }
        }
    }
    if !matched {
        let sni = if ctx.cidr.is_some() || ctx.wildcard_bind {
            vec![ctx.service.hostname.to_string()]
        } else {
            Vec::new()
        };
        push_unique(
            &mut out,
            ChainOpts::new(sni, ctx.cidrs(), default_filters(inputs, ctx)),
        );
    }
    out
}

/// `tcp_proxy` to the service's own cluster, `outbound|<port>||<host>`.
fn default_filters(inputs: &Inputs<'_>, ctx: &PortCtx<'_>) -> Vec<Filter> {
    let cluster = names::outbound_cluster(ctx.port.port, "", &ctx.service.hostname);
    vec![filters::tcp_proxy(&cluster, &cluster, inputs.telemetry)]
}

/// The `tcp_proxy` for a rule's destinations: one cluster (stat prefix: the cluster), or
/// weighted clusters for several (stat prefix `<vs name>.<vs namespace>`, only weights > 0).
/// `None` when the rule has no destination.
pub(crate) fn route_filters(
    inputs: &Inputs<'_>,
    routes: &[RouteDestination],
    listen_port: u16,
    vs: &Config<VirtualService>,
) -> Option<Vec<Filter>> {
    let cluster = |d: &Destination| destination_cluster(inputs, d, &vs.namespace, listen_port);
    let first = routes.first()?;
    let weighted: Vec<(String, u32)> = routes
        .iter()
        .filter_map(|r| {
            let w = u32::try_from(r.weight.unwrap_or(0))
                .ok()
                .filter(|w| *w > 0)?;
            Some((cluster(&r.destination), w))
        })
        .collect();
    if routes.len() == 1 || weighted.is_empty() {
        let name = cluster(&first.destination);
        return Some(vec![filters::tcp_proxy(&name, &name, inputs.telemetry)]);
    }
    let stat_prefix = format!("{}.{}", vs.name, vs.namespace);
    Some(vec![filters::weighted_tcp_proxy(
        &stat_prefix,
        &weighted,
        inputs.telemetry,
    )])
}

/// Istio's `GetDestinationCluster`: the destination's port, else the only port of its
/// service, else the listener's port.
fn destination_cluster(
    inputs: &Inputs<'_>,
    dest: &Destination,
    vs_namespace: &str,
    listen_port: u16,
) -> String {
    let host = inputs.resolve(&dest.host, vs_namespace);
    let explicit = dest
        .port
        .as_ref()
        .and_then(|p| p.number)
        .and_then(|n| u16::try_from(n).ok());
    let port = explicit
        .or_else(|| match inputs.service(&host).map(|s| s.ports.as_slice()) {
            Some([only]) => Some(only.port),
            _ => None,
        })
        .unwrap_or(listen_port);
    names::outbound_cluster(port, &dest.subset, &host)
}
