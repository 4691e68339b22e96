//! Outbound clusters: `outbound|<port>||<host>` for every non-UDP port of every service the
//! proxy sees, plus `outbound|<port>|<subset>|<host>` for each subset of the DestinationRule
//! that applies to the proxy (`MeshSnapshot::destination_rule_for`: client namespace, then
//! service namespace, then root namespace; `workloadSelector` honoured). The plan ([`targets`]) is shared with EDS so both agree on which clusters exist
//! and which are EDS.
//!
//! Discovery type (Istio's `convertResolution`): `Resolution::Static` → EDS (ADS, the cluster
//! name as service name); `Dns` → STRICT_DNS with the endpoints inline (no cluster when there
//! are none, as Istio); `Passthrough` → ORIGINAL_DST on sidecars, EDS on gateways; a
//! `PASSTHROUGH` load balancer turns any of them into ORIGINAL_DST. For a ports-capture
//! sidecar (an explicit proxy), ORIGINAL_DST becomes the dynamic forward proxy: the original
//! destination there is the proxy's own listener.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    DiscoveryType, DnsLookupFamily, EdsClusterConfig,
};
use mast_config::networking::DestinationRule;
use mast_config::networking::destination_rule::{SimpleLb, Subset};
use mast_model::{
    Config, MeshSnapshot, NodeType, Protocol, ProxyNode, Resolution, Service, ServicePort,
};

use super::draft::Draft;
use super::policy::Policy;
use super::{lb, outlier, pb, pool, tls};
use crate::endpoint::{self, Addresses};
use crate::names;

/// How a cluster finds its endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Discovery {
    /// From EDS over ADS.
    Eds,
    /// Host names resolved by Envoy, listed inline.
    StrictDns,
    /// The connection's original destination.
    OriginalDst,
}

impl Discovery {
    fn envoy(self) -> DiscoveryType {
        match self {
            Discovery::Eds => DiscoveryType::Eds,
            Discovery::StrictDns => DiscoveryType::StrictDns,
            Discovery::OriginalDst => DiscoveryType::OriginalDst,
        }
    }
}

/// One outbound cluster to generate.
#[derive(Debug, Clone)]
pub(crate) struct Target<'a> {
    /// `outbound|<port>|<subset>|<host>`.
    pub name: String,
    /// The service.
    pub service: &'a Service,
    /// The service port.
    pub port: &'a ServicePort,
    /// The subset, for a subset cluster.
    pub subset: Option<&'a Subset>,
    /// The DestinationRule that applies, if any.
    pub rule: Option<&'a Config<DestinationRule>>,
    /// The effective traffic policy.
    pub policy: Policy<'a>,
    /// How endpoints are found.
    pub discovery: Discovery,
}

impl Target<'_> {
    /// The subset's labels (`None` for the whole service).
    pub(crate) fn subset_labels(&self) -> Option<&BTreeMap<String, String>> {
        self.subset.map(|s| &s.labels)
    }
}

/// Every outbound cluster `proxy` gets, in service, port, subset order (not yet deduplicated).
pub(crate) fn targets<'a>(snapshot: &'a MeshSnapshot, proxy: &ProxyNode) -> Vec<Target<'a>> {
    targets_where(snapshot, proxy, |_| true)
}

/// [`targets`] of the visible services for which `keep` holds only.
pub(crate) fn targets_where<'a>(
    snapshot: &'a MeshSnapshot,
    proxy: &ProxyNode,
    keep: impl Fn(&Service) -> bool,
) -> Vec<Target<'a>> {
    let with_rules: Vec<(&Service, Option<&Config<DestinationRule>>)> = snapshot
        .visible_services(proxy)
        .into_iter()
        .filter(|s| keep(s))
        .map(|s| (s, snapshot.destination_rule_for(proxy, &s.hostname)))
        .collect();
    let count: usize = with_rules
        .iter()
        .map(|(s, rule)| {
            let ports = s
                .ports
                .iter()
                .filter(|p| p.protocol != Protocol::Udp)
                .count();
            let subsets = rule.map_or(0, |r| r.spec.subsets.len());
            ports * (1 + subsets)
        })
        .sum();
    let mut out = Vec::with_capacity(count);
    for (service, rule) in with_rules {
        let top = rule.and_then(|r| r.spec.traffic_policy.as_ref());
        let subsets = rule.map_or(&[][..], |r| r.spec.subsets.as_slice());
        let base = base_discovery(service.resolution, proxy.node_type);
        for port in service.ports.iter().filter(|p| p.protocol != Protocol::Udp) {
            let (policy, _) = Policy::for_port(top, port.port);
            out.push(target(service, port, None, rule, policy, base));
            for subset in subsets.iter().filter(|s| !s.name.is_empty()) {
                let policy = Policy::for_subset(top, subset.traffic_policy.as_ref(), port.port);
                out.push(target(service, port, Some(subset), rule, policy, base));
            }
        }
    }
    out
}

fn base_discovery(resolution: Resolution, node: NodeType) -> Discovery {
    match (resolution, node) {
        (Resolution::Static, _) | (Resolution::Passthrough, NodeType::Router) => Discovery::Eds,
        (Resolution::Dns, _) => Discovery::StrictDns,
        (Resolution::Passthrough, NodeType::Sidecar) => Discovery::OriginalDst,
    }
}

fn target<'a>(
    service: &'a Service,
    port: &'a ServicePort,
    subset: Option<&'a Subset>,
    rule: Option<&'a Config<DestinationRule>>,
    policy: Policy<'a>,
    base: Discovery,
) -> Target<'a> {
    let passthrough = policy.load_balancer.and_then(|l| l.simple) == Some(SimpleLb::Passthrough);
    Target {
        name: names::outbound_cluster(
            port.port,
            subset.map_or("", |s| s.name.as_str()),
            &service.hostname,
        ),
        service,
        port,
        subset,
        rule,
        policy,
        discovery: if passthrough {
            Discovery::OriginalDst
        } else {
            base
        },
    }
}

/// The cluster for `t`; `None` for a DNS cluster without endpoints.
pub(crate) fn build(t: &Target<'_>, proxy: &ProxyNode, snapshot: &MeshSnapshot) -> Option<Cluster> {
    let mut d = Draft::new(&t.name, t.discovery.envoy());
    match t.discovery {
        Discovery::Eds => {
            d.cluster.eds_cluster_config = Some(EdsClusterConfig {
                eds_config: Some(pb::ads_source()),
                service_name: t.name.clone(),
            });
        }
        Discovery::StrictDns => {
            let eps = endpoint::lb_endpoints(
                snapshot,
                t.service.endpoints_for(t.port.port),
                t.subset_labels(),
                Addresses::Any,
            );
            if eps.is_empty() {
                tracing::debug!(cluster = %t.name, "DNS cluster without endpoints: not generated");
                return None;
            }
            d.cluster.load_assignment = Some(endpoint::assignment(&t.name, eps));
            set_dns(&mut d, proxy);
        }
        Discovery::OriginalDst => {}
    }
    d.set_upstream_protocol(t.port.protocol, proxy.node_type);
    pool::apply_h2_upgrade(&mut d, t.policy.connection_pool);
    pool::apply(&mut d, t.policy.connection_pool, t.policy.retry_budget);
    outlier::apply(&mut d, t.policy.outlier_detection);
    lb::apply(&mut d, t.policy.load_balancer);
    if d.kind() == Some(DiscoveryType::OriginalDst)
        && crate::forward_proxy::is_explicit_proxy(proxy)
    {
        super::local::make_forward_proxy(&mut d);
    }
    tls::apply(&mut d, t, proxy, snapshot);
    tls::apply_proxy_protocol(&mut d, t.policy.proxy_protocol);
    d.cluster.metadata = Some(metadata(t));
    Some(d.finish())
}

/// DNS settings: the address family of the proxy (Istio's choice). Istio also sets
/// `respect_dns_ttl` and a 60s `dns_refresh_rate`, which Envoy 1.40 reports as deprecated and
/// about to be removed; Mast leaves them out, so Envoy refreshes every 5s (its default).
fn set_dns(d: &mut Draft, proxy: &ProxyNode) {
    let v6 = proxy
        .ip
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_ipv6());
    d.cluster.dns_lookup_family = if v6 {
        DnsLookupFamily::V6Only
    } else {
        DnsLookupFamily::V4Only
    } as i32;
}

/// `istio` metadata: the service, the DestinationRule (as Istio's config path) and the subset.
fn metadata(t: &Target<'_>) -> envoy_types::pb::envoy::config::core::v3::Metadata {
    let mut fields = vec![("services", pb::list_value(vec![service_value(t.service)]))];
    if let Some(rule) = t.rule {
        let path = names::concat(&[
            "/apis/networking.istio.io/v1/namespaces/",
            &rule.namespace,
            "/destination-rule/",
            &rule.name,
        ]);
        fields.push(("config", pb::string_value(path)));
    }
    if let Some(subset) = t.subset {
        fields.push(("subset", pb::string_value(subset.name.clone())));
    }
    pb::istio_metadata(fields)
}

/// `{host, name, namespace}` of a service, as in Istio's cluster metadata.
pub(crate) fn service_value(s: &Service) -> envoy_types::pb::google::protobuf::Value {
    pb::struct_value([
        ("host", pb::string_value(s.hostname.as_str())),
        ("name", pb::string_value(s.name.clone())),
        ("namespace", pb::string_value(s.namespace.clone())),
    ])
}
