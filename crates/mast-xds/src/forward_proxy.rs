//! The dynamic forward proxy of ports capture: what lets the explicit outbound listener
//! `mast_outbound` reach hosts the mesh does not know.
//!
//! On an explicit HTTP proxy listener the "original destination" of a connection is the
//! listener itself, so `PassthroughCluster` (ORIGINAL_DST) would send the request back into
//! Envoy. A forward proxy must instead resolve the host the client named: Envoy's dynamic
//! forward proxy does that with a DNS cache shared by
//! - the cluster [`FORWARD_PROXY_CLUSTER`] (`cluster_type` [`DFP_CLUSTER_TYPE`]), which the
//!   `allow_any` catch-all of route table `mast_outbound` targets, for absolute-form requests
//!   and for `CONNECT` tunnels alike; and
//! - the HTTP filter [`DFP_FILTER`] on `mast_outbound`'s connection manager, before the router,
//!   which resolves the request's host (`:authority`) before the router picks an upstream. It
//!   does nothing for routes to other clusters.
//!
//! Both carry [`dns_cache_config`]; Envoy requires the two configurations to be identical.
//! The cluster exists only for ports-capture sidecars under ALLOW_ANY ([`enabled`]); iptables
//! capture keeps `PassthroughCluster`, and REGISTRY_ONLY refuses unknown hosts.

use envoy_types::pb::envoy::config::cluster::v3::cluster::DnsLookupFamily;
use envoy_types::pb::envoy::extensions::clusters::dynamic_forward_proxy::v3::ClusterConfig;
use envoy_types::pb::envoy::extensions::clusters::dynamic_forward_proxy::v3::cluster_config::ClusterImplementationSpecifier;
use envoy_types::pb::envoy::extensions::common::dynamic_forward_proxy::v3::DnsCacheConfig;
use envoy_types::pb::envoy::extensions::filters::http::dynamic_forward_proxy::v3::FilterConfig;
use envoy_types::pb::envoy::extensions::filters::http::dynamic_forward_proxy::v3::filter_config::ImplementationSpecifier;
use mast_model::{CaptureMode, NodeType, OutboundPolicy, ProxyNode};

/// The dynamic forward proxy cluster of ports capture.
pub const FORWARD_PROXY_CLUSTER: &str = "ForwardProxyCluster";
/// The name of the DNS cache the cluster and the filter share.
pub const DNS_CACHE_NAME: &str = "mast_dns_cache";
/// The custom cluster type of [`FORWARD_PROXY_CLUSTER`].
pub const DFP_CLUSTER_TYPE: &str = "envoy.clusters.dynamic_forward_proxy";
/// The HTTP filter that resolves hosts for the dynamic forward proxy cluster.
pub const DFP_FILTER: &str = "envoy.filters.http.dynamic_forward_proxy";

/// Whether `proxy` gets the dynamic forward proxy cluster and routes unknown hosts to it:
/// a sidecar in ports capture under ALLOW_ANY.
pub fn enabled(proxy: &ProxyNode, policy: OutboundPolicy) -> bool {
    is_explicit_proxy(proxy) && policy == OutboundPolicy::AllowAny
}

/// Whether `proxy` is a sidecar whose outbound listener is an explicit HTTP proxy.
pub fn is_explicit_proxy(proxy: &ProxyNode) -> bool {
    proxy.node_type == NodeType::Sidecar && matches!(proxy.capture, CaptureMode::Ports { .. })
}

/// `DnsCacheConfig { name: "mast_dns_cache", dns_lookup_family: V4_PREFERRED }`; every other
/// field keeps Envoy's default (1024 hosts, 60s refresh, 5m host TTL).
pub fn dns_cache_config() -> DnsCacheConfig {
    DnsCacheConfig {
        name: DNS_CACHE_NAME.to_owned(),
        dns_lookup_family: DnsLookupFamily::V4Preferred as i32,
        ..Default::default()
    }
}

/// The typed config of [`FORWARD_PROXY_CLUSTER`]'s `cluster_type`.
pub fn cluster_config() -> ClusterConfig {
    ClusterConfig {
        cluster_implementation_specifier: Some(ClusterImplementationSpecifier::DnsCacheConfig(
            dns_cache_config(),
        )),
        ..Default::default()
    }
}

/// The typed config of the [`DFP_FILTER`] HTTP filter.
pub fn filter_config() -> FilterConfig {
    FilterConfig {
        implementation_specifier: Some(ImplementationSpecifier::DnsCacheConfig(dns_cache_config())),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(md: serde_json::Value) -> ProxyNode {
        ProxyNode::parse("sidecar~127.0.0.1~a.default~default.svc.cluster.local", &md).unwrap()
    }

    #[test]
    fn cluster_and_filter_share_one_cache() {
        let Some(ClusterImplementationSpecifier::DnsCacheConfig(c)) =
            cluster_config().cluster_implementation_specifier
        else {
            panic!("the cluster uses a DNS cache");
        };
        let Some(ImplementationSpecifier::DnsCacheConfig(f)) =
            filter_config().implementation_specifier
        else {
            panic!("the filter uses a DNS cache");
        };
        assert_eq!(c, f);
        assert_eq!(c.name, "mast_dns_cache");
        assert_eq!(c.dns_lookup_family, DnsLookupFamily::V4Preferred as i32);
    }

    #[test]
    fn only_ports_mode_sidecars_under_allow_any() {
        let ports = node(json!({"MAST_CAPTURE_MODE": "ports", "MAST_OUTBOUND_PORT": "15101"}));
        let iptables = node(json!({}));
        assert!(enabled(&ports, OutboundPolicy::AllowAny));
        assert!(!enabled(&ports, OutboundPolicy::RegistryOnly));
        assert!(is_explicit_proxy(&ports));
        assert!(!enabled(&iptables, OutboundPolicy::AllowAny));
        assert!(!is_explicit_proxy(&iptables));
    }
}
