//! The clusters that are not per service: `BlackHoleCluster` (STATIC, no endpoints: traffic is
//! dropped), `PassthroughCluster` (ORIGINAL_DST: traffic goes where it was headed),
//! `ForwardProxyCluster` (ports capture under ALLOW_ANY: the dynamic forward proxy, see
//! [`crate::forward_proxy`]), and for sidecars the inbound side: one `inbound|<target port>||` STATIC cluster per port the workload
//! serves, pointing at the application on 127.0.0.1, and `InboundPassthroughCluster`.
//!
//! Inbound clusters are keyed by the application (target) port, as Istio names them; when
//! several service ports share one, the first wins. Their connection pool comes from the
//! Sidecar (`ingress[].connectionPool` for the port, else `inboundConnectionPool`), else from the
//! DestinationRule for the service (port-level settings for the service port); only the
//! connection pool applies inbound.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, CustomClusterType, DiscoveryType, LbPolicy,
};
use envoy_types::pb::envoy::config::core::v3::{
    BindConfig, SocketAddress, UpstreamHttpProtocolOptions, socket_address::PortSpecifier,
};
use mast_config::networking::destination_rule::ConnectionPoolSettings;
use mast_model::{CaptureMode, InboundPort, MeshSnapshot, NodeType, ProxyNode};

use super::draft::{Draft, use_downstream_protocol};
use super::outbound::service_value;
use super::policy::Policy;
use super::{pb, pool};
use crate::names;
use crate::{endpoint, forward_proxy};

/// The address inbound clusters forward to (the application, over loopback).
pub(crate) const LOCALHOST: &str = "127.0.0.1";

/// The source address of inbound passthrough connections, which iptables capture exempts
/// (Istio's `InboundPassthroughBindIpv4`).
const INBOUND_PASSTHROUGH_BIND: &str = "127.0.0.6";

/// Idle timeout of the passthrough clusters (Istio: 5 minutes).
const PASSTHROUGH_IDLE_SECS: i64 = 300;

/// `BlackHoleCluster`: STATIC with no endpoints, ROUND_ROBIN.
pub(crate) fn blackhole() -> Cluster {
    let mut d = Draft::new(names::BLACKHOLE_CLUSTER, DiscoveryType::Static);
    d.cluster.common_lb_config = None;
    d.set_lb(LbPolicy::RoundRobin);
    d.finish()
}

/// `PassthroughCluster`: ORIGINAL_DST, CLUSTER_PROVIDED, unlimited thresholds, the client's
/// HTTP protocol upstream and a 5 minute idle timeout.
pub(crate) fn passthrough() -> Cluster {
    passthrough_draft(names::PASSTHROUGH_CLUSTER).finish()
}

/// `InboundPassthroughCluster`: like [`passthrough`]; with iptables capture it binds its
/// upstream connections to 127.0.0.6 so they are not captured again.
pub(crate) fn inbound_passthrough(proxy: &ProxyNode) -> Cluster {
    let mut d = passthrough_draft(names::INBOUND_PASSTHROUGH_CLUSTER);
    if proxy.capture == CaptureMode::Iptables {
        d.cluster.upstream_bind_config = Some(BindConfig {
            source_address: Some(SocketAddress {
                address: INBOUND_PASSTHROUGH_BIND.into(),
                port_specifier: Some(PortSpecifier::PortValue(0)),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    d.finish()
}

/// `ForwardProxyCluster`: `cluster_type` `envoy.clusters.dynamic_forward_proxy` with the
/// shared DNS cache, CLUSTER_PROVIDED, unlimited thresholds, a 5 minute idle timeout, HTTP/1.1
/// upstream (whatever the client spoke: external servers need not speak HTTP/2), and
/// `auto_sni` / `auto_san_validation`, which Envoy requires of this cluster type (they matter
/// only if TLS is ever added upstream). `CONNECT` tunnels through it are raw TCP.
pub(crate) fn forward_proxy() -> Cluster {
    let mut d = Draft::new(forward_proxy::FORWARD_PROXY_CLUSTER, DiscoveryType::Static);
    make_forward_proxy(&mut d);
    d.common_http_mut().idle_timeout = Some(pb::seconds(PASSTHROUGH_IDLE_SECS));
    pool::apply(&mut d, None, None);
    d.finish()
}

/// Turns `d` into a dynamic-forward-proxy cluster (the shared DNS cache, CLUSTER_PROVIDED,
/// `auto_sni` / `auto_san_validation`). On an explicit proxy listener (ports capture) this is
/// what ORIGINAL_DST means: the original destination of a proxied request is the listener
/// itself, so the upstream is found from the request's host instead.
pub(crate) fn make_forward_proxy(d: &mut Draft) {
    d.cluster.cluster_discovery_type = Some(ClusterDiscoveryType::ClusterType(CustomClusterType {
        name: forward_proxy::DFP_CLUSTER_TYPE.into(),
        typed_config: Some(envoy_types::util::pack_any(forward_proxy::cluster_config())),
    }));
    d.cluster.common_lb_config = None;
    d.set_lb(LbPolicy::ClusterProvided);
    d.http_mut().upstream_http_protocol_options = Some(UpstreamHttpProtocolOptions {
        auto_sni: true,
        auto_san_validation: true,
        ..Default::default()
    });
}

fn passthrough_draft(name: &str) -> Draft {
    let mut d = Draft::new(name, DiscoveryType::OriginalDst);
    d.cluster.common_lb_config = None;
    d.set_lb(LbPolicy::ClusterProvided);
    d.common_http_mut().idle_timeout = Some(pb::seconds(PASSTHROUGH_IDLE_SECS));
    d.http_mut().upstream_protocol_options = Some(use_downstream_protocol());
    pool::apply(&mut d, None, None);
    d
}

/// The inbound clusters of a sidecar (none for gateways), in `inbound_ports` order.
pub(crate) fn inbound(snapshot: &MeshSnapshot, proxy: &ProxyNode) -> Vec<Cluster> {
    if proxy.node_type != NodeType::Sidecar {
        return Vec::new();
    }
    let mut seen = std::collections::BTreeSet::new();
    snapshot
        .inbound_ports(proxy)
        .iter()
        .filter(|p| seen.insert(p.target_port))
        .map(|p| inbound_cluster(snapshot, proxy, p))
        .collect()
}

fn inbound_cluster(snapshot: &MeshSnapshot, proxy: &ProxyNode, port: &InboundPort<'_>) -> Cluster {
    let name = names::inbound_cluster(port.target_port);
    let mut d = Draft::new(&name, DiscoveryType::Static);
    d.cluster.load_assignment = Some(endpoint::local_assignment(
        &name,
        LOCALHOST,
        port.target_port,
    ));
    d.set_upstream_protocol(port.port.protocol, NodeType::Sidecar);
    let rule = snapshot.destination_rule_for(proxy, &port.service.hostname);
    let (policy, _) = Policy::for_port(
        rule.and_then(|r| r.spec.traffic_policy.as_ref()),
        port.port.port,
    );
    let pool = sidecar_pool(snapshot, proxy, port.target_port).or(policy.connection_pool);
    pool::apply(&mut d, pool, policy.retry_budget);
    d.cluster.metadata = Some(pb::istio_metadata(vec![(
        "services",
        pb::list_value(vec![service_value(port.service)]),
    )]));
    d.finish()
}

/// The Sidecar's connection pool for an inbound port (Istio's `InboundConnectionPoolForPort`).
fn sidecar_pool<'a>(
    snapshot: &'a MeshSnapshot,
    proxy: &ProxyNode,
    port: u16,
) -> Option<&'a ConnectionPoolSettings> {
    let sidecar = snapshot.sidecar_for(proxy)?;
    let for_port = sidecar
        .spec
        .ingress
        .iter()
        .filter(|i| i.port.as_ref().and_then(|p| p.number) == Some(i64::from(port)))
        .find_map(|i| i.connection_pool.as_ref());
    for_port.or(sidecar.spec.inbound_connection_pool.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::cluster::ClusterDiscoveryType;

    fn kind(c: &Cluster) -> DiscoveryType {
        let Some(ClusterDiscoveryType::Type(t)) = c.cluster_discovery_type else {
            panic!()
        };
        DiscoveryType::try_from(t).unwrap()
    }

    #[test]
    fn catch_all_clusters() {
        let b = blackhole();
        assert_eq!(
            (b.name.as_str(), kind(&b)),
            ("BlackHoleCluster", DiscoveryType::Static)
        );
        assert!(b.load_assignment.is_none());
        let p = passthrough();
        assert_eq!(
            (p.name.as_str(), kind(&p)),
            ("PassthroughCluster", DiscoveryType::OriginalDst)
        );
        assert_eq!(p.lb_policy, LbPolicy::ClusterProvided as i32);
        assert!(
            p.typed_extension_protocol_options
                .contains_key(super::super::draft::HTTP_PROTOCOL_OPTIONS_KEY)
        );
        assert_eq!(
            p.circuit_breakers.unwrap().thresholds[0]
                .max_connections
                .unwrap()
                .value,
            u32::MAX
        );
    }

    #[test]
    fn forward_proxy_cluster() {
        use envoy_types::pb::envoy::extensions::clusters::dynamic_forward_proxy::v3::ClusterConfig;
        use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
        use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::UpstreamProtocolOptions;
        use prost::Message;
        let c = forward_proxy();
        assert_eq!(c.name, "ForwardProxyCluster");
        assert_eq!(c.lb_policy, LbPolicy::ClusterProvided as i32);
        let Some(ClusterDiscoveryType::ClusterType(t)) = &c.cluster_discovery_type else {
            panic!("a custom cluster type: {:?}", c.cluster_discovery_type)
        };
        assert_eq!(t.name, "envoy.clusters.dynamic_forward_proxy");
        let any = t.typed_config.as_ref().unwrap();
        assert_eq!(
            any.type_url,
            "type.googleapis.com/envoy.extensions.clusters.dynamic_forward_proxy.v3.ClusterConfig"
        );
        let config = ClusterConfig::decode(any.value.as_slice()).unwrap();
        assert_eq!(config, forward_proxy::cluster_config());
        let http = HttpProtocolOptions::decode(
            c.typed_extension_protocol_options[super::super::draft::HTTP_PROTOCOL_OPTIONS_KEY]
                .value
                .as_slice(),
        )
        .unwrap();
        let upstream = http.upstream_http_protocol_options.unwrap();
        assert!(upstream.auto_sni && upstream.auto_san_validation);
        assert!(matches!(
            http.upstream_protocol_options,
            Some(UpstreamProtocolOptions::ExplicitHttpConfig(_))
        ));
        assert!(c.load_assignment.is_none() && c.eds_cluster_config.is_none());
        assert_eq!(
            c.circuit_breakers.unwrap().thresholds[0]
                .max_requests
                .unwrap()
                .value,
            u32::MAX
        );
    }

    #[test]
    fn inbound_passthrough_binds_only_with_iptables() {
        let md = serde_json::json!({});
        let node =
            ProxyNode::parse("sidecar~10.0.0.1~a.default~default.svc.cluster.local", &md).unwrap();
        let c = inbound_passthrough(&node);
        assert_eq!(c.name, "InboundPassthroughCluster");
        assert_eq!(
            c.upstream_bind_config
                .unwrap()
                .source_address
                .unwrap()
                .address,
            "127.0.0.6"
        );
        let md = serde_json::json!({"MAST_CAPTURE_MODE": "ports", "MAST_OUTBOUND_PORT": "15101"});
        let node =
            ProxyNode::parse("sidecar~127.0.0.1~a.default~default.svc.cluster.local", &md).unwrap();
        assert!(inbound_passthrough(&node).upstream_bind_config.is_none());
    }
}
