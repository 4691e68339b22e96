//! Consistent-hash load balancing as route hash policies: the DestinationRule that applies to
//! a destination (looked up from the proxy's namespace) names the hash key (header, cookie,
//! source IP or query parameter) and the route carries it, as Istio's `HashForHTTPDestination`
//! and `hashForService` do. Subset and port-level settings override the rule's own.

use envoy_types::pb::envoy::config::route::v3::route_action::HashPolicy;
use envoy_types::pb::envoy::config::route::v3::route_action::hash_policy::{
    ConnectionProperties, Cookie, CookieAttribute, Header, PolicySpecifier, QueryParameter,
};
use mast_config::networking::destination_rule::{
    ConsistentHashLb, DestinationRule, PortTrafficPolicy, TrafficPolicy,
};
use mast_core::Hostname;

use super::Scope;
use super::policies::pb_duration;

/// The hash policy for traffic to `host` through subset `subset` on `port` (the destination's
/// explicit port, when it names one): subset port-level, then subset, then rule port-level,
/// then rule-level consistent hash.
pub fn for_destination(
    scope: &Scope<'_>,
    host: &Hostname,
    subset: &str,
    port: Option<u16>,
) -> Option<HashPolicy> {
    let rule = scope
        .snapshot
        .destination_rule(&scope.proxy.namespace, host)?;
    let hash = consistent_hash(&rule.spec, subset, port)?;
    hash_policy(hash)
}

fn consistent_hash<'a>(
    rule: &'a DestinationRule,
    subset: &str,
    port: Option<u16>,
) -> Option<&'a ConsistentHashLb> {
    let top = rule.traffic_policy.as_ref();
    let sub = rule
        .subsets
        .iter()
        .find(|s| !subset.is_empty() && s.name == subset)
        .and_then(|s| s.traffic_policy.as_ref());
    let port_level = |tp: Option<&'a TrafficPolicy>| port.and_then(|p| port_hash(tp?, p));
    port_level(sub)
        .or_else(|| sub.and_then(policy_hash))
        .or_else(|| port_level(top))
        .or_else(|| top.and_then(policy_hash))
}

fn policy_hash(tp: &TrafficPolicy) -> Option<&ConsistentHashLb> {
    tp.load_balancer.as_ref()?.consistent_hash.as_ref()
}

fn port_hash(tp: &TrafficPolicy, port: u16) -> Option<&ConsistentHashLb> {
    let matches =
        |s: &&PortTrafficPolicy| s.port.as_ref().and_then(|p| p.number) == Some(i64::from(port));
    tp.port_level_settings
        .iter()
        .find(matches)?
        .load_balancer
        .as_ref()?
        .consistent_hash
        .as_ref()
}

/// Istio's `consistentHashToHashPolicy`: `None` when the hash names no key.
pub fn hash_policy(h: &ConsistentHashLb) -> Option<HashPolicy> {
    let spec = if let Some(name) = h.http_header_name.as_ref().filter(|n| !n.is_empty()) {
        PolicySpecifier::Header(Header {
            header_name: name.clone(),
            regex_rewrite: None,
        })
    } else if let Some(cookie) = h.http_cookie.as_ref() {
        PolicySpecifier::Cookie(Cookie {
            name: cookie.name.clone(),
            ttl: cookie.ttl.map(|t| pb_duration(t.as_std())),
            path: cookie.path.clone().unwrap_or_default(),
            attributes: cookie
                .attributes
                .iter()
                .map(|a| CookieAttribute {
                    name: a.name.clone(),
                    value: a.value.clone().unwrap_or_default(),
                })
                .collect(),
        })
    } else if h.use_source_ip == Some(true) {
        PolicySpecifier::ConnectionProperties(ConnectionProperties { source_ip: true })
    } else if let Some(name) = h
        .http_query_parameter_name
        .as_ref()
        .filter(|n| !n.is_empty())
    {
        PolicySpecifier::QueryParameter(QueryParameter { name: name.clone() })
    } else {
        return None;
    };
    Some(HashPolicy {
        terminal: false,
        policy_specifier: Some(spec),
    })
}
