//! Conversion: valid clusters and assignments, and a table of invalid inputs with the field
//! path each error names.

use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    DiscoveryType, LbConfig, LbPolicy, MaglevLbConfig,
};
use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, OutlierDetection, circuit_breakers::Thresholds,
};
use envoy_types::pb::envoy::config::core::v3::{HealthCheck, TransportSocket};
use envoy_types::pb::google::protobuf::{Any, UInt64Value};

use super::*;

type Mutate = fn(&mut PbCluster);

#[test]
fn invalid_clusters_name_the_field() {
    let table: Vec<(&str, Mutate)> = vec![
        ("transport_socket.name", |c| {
            c.transport_socket = Some(TransportSocket::default())
        }),
        (
            "transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].name",
            |c| {
                let mut common = crate::tls::tests::istio_common(&[], vec![]);
                common.tls_certificate_sds_secret_configs = vec![crate::tls::tests::sds("other")];
                let ctx = envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext {
                    common_tls_context: Some(common),
                    ..Default::default()
                };
                c.transport_socket = Some(crate::tls::tests::tls_socket(ctx));
            },
        ),
        ("health_checks", |c| {
            c.health_checks = vec![HealthCheck::default()]
        }),
        ("connect_timeout", |c| {
            c.connect_timeout = Some(PbDuration::default())
        }),
        ("lb_policy", |c| {
            c.lb_policy = LbPolicy::ClusterProvided as i32
        }),
        ("type", |c| {
            c.cluster_discovery_type =
                Some(ClusterDiscoveryType::Type(DiscoveryType::LogicalDns as i32))
        }),
        ("maglev_lb_config.table_size", |c| {
            c.lb_policy = LbPolicy::Maglev as i32;
            c.lb_config = Some(LbConfig::MaglevLbConfig(MaglevLbConfig {
                table_size: Some(UInt64Value { value: 1000 }),
            }));
        }),
        ("lb_config", |c| {
            c.lb_config = Some(LbConfig::MaglevLbConfig(MaglevLbConfig::default()))
        }),
        (
            "load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address",
            |c| c.load_assignment = Some(cla("c", &[("not-an-ip", 80, 1)])),
        ),
        (
            "load_assignment.endpoints[0].lb_endpoints[0].load_balancing_weight",
            |c| c.load_assignment = Some(cla("c", &[("127.0.0.1", 80, 0)])),
        ),
        ("outlier_detection.enforcing_success_rate", |c| {
            c.outlier_detection = Some(OutlierDetection::default())
        }),
        ("typed_extension_protocol_options[\"x\"]", |c| {
            c.typed_extension_protocol_options
                .insert("x".into(), Any::default());
        }),
        ("cluster_type.name", |c| {
            c.cluster_discovery_type = Some(ClusterDiscoveryType::ClusterType(
                envoy_types::pb::envoy::config::cluster::v3::cluster::CustomClusterType {
                    name: "other".into(),
                    typed_config: None,
                },
            ))
        }),
        ("circuit_breakers.per_host_thresholds", |c| {
            c.circuit_breakers = Some(CircuitBreakers {
                per_host_thresholds: vec![Thresholds::default()],
                ..Default::default()
            })
        }),
    ];
    for (field, mutate) in table {
        let mut c = static_pb("c", LbPolicy::RoundRobin, &[(80, 1)]);
        mutate(&mut c);
        let err = ClusterConfig::from_proto(&c).expect_err(field);
        assert_eq!(err.field, field, "{err}");
        assert_eq!(err.kind, "Cluster");
        assert_eq!(err.name, "c");
    }
}

#[test]
fn invalid_assignments_name_the_field() {
    let a = cla("c", &[("example.com", 80, 1)]);
    let err = Assignment::from_proto(&a).expect_err("host name");
    assert_eq!(
        err.field,
        "endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address"
    );
    let mut a = cla("c", &[("10.0.0.1", 80, 1)]);
    a.endpoints[0].priority = 1;
    let err = Assignment::from_proto(&a).expect_err("priority");
    assert_eq!(err.field, "endpoints[0].priority");
}

#[test]
fn unhealthy_endpoints_are_left_out() {
    let mut a = cla("c", &[("10.0.0.1", 80, 1), ("10.0.0.2", 80, 1)]);
    a.endpoints[0].lb_endpoints[1].health_status = 2; // UNHEALTHY
    let a = Assignment::from_proto(&a).expect("converts");
    assert_eq!(a.endpoints.len(), 1);
    assert_eq!(a.cluster_name(), "c");
}

#[test]
fn defaults_follow_envoy() {
    let c = ClusterConfig::from_proto(&static_pb("c", LbPolicy::LeastRequest, &[(80, 1)]))
        .expect("converts");
    assert_eq!(c.limits.max_connections, 1024);
    assert_eq!(c.limits.max_retries, 3);
    assert_eq!(c.panic_threshold, 50.0);
    assert_eq!(c.connect_timeout(), std::time::Duration::from_secs(1));
    assert_eq!(c.name(), "c");
    assert!(!c.is_eds());
}
