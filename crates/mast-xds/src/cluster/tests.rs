//! Unit tests of outbound cluster building on hand-made services and rules (no snapshot).

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbPolicy,
};
use mast_config::networking::DestinationRule;
use mast_config::networking::destination_rule::{
    LoadBalancerSettings, SimpleLb, Subset, TrafficPolicy,
};
use mast_core::Hostname;
use mast_model::{
    Config, Endpoint, MeshSnapshot, Protocol, ProxyNode, Resolution, Service, ServicePort,
};

use super::outbound::{Discovery, Target, build};
use super::policy::Policy;

fn service(resolution: Resolution, endpoints: &[&str]) -> Service {
    let eps = endpoints
        .iter()
        .map(|a| Endpoint {
            address: (*a).into(),
            port: 80,
            labels: BTreeMap::from([("version".into(), "v1".into())]),
            namespace: "default".into(),
            workload: String::new(),
            service_account: String::new(),
            weight: 1,
            healthy: true,
        })
        .collect();
    Service {
        hostname: Hostname::new_unchecked("svc.default.svc.cluster.local"),
        namespace: "default".into(),
        name: "svc".into(),
        ports: vec![ServicePort {
            name: "grpc".into(),
            port: 80,
            protocol: Protocol::Grpc,
        }],
        addresses: Vec::new(),
        export_to: Vec::new(),
        mesh_external: false,
        resolution,
        selector: BTreeMap::new(),
        endpoints: BTreeMap::from([(80, eps)]),
    }
}

fn node() -> ProxyNode {
    ProxyNode::parse(
        "sidecar~10.0.0.9~c.default~default.svc.cluster.local",
        &serde_json::json!({}),
    )
    .unwrap()
}

fn target<'a>(
    svc: &'a Service,
    subset: Option<&'a Subset>,
    rule: Option<&'a Config<DestinationRule>>,
    d: Discovery,
) -> Target<'a> {
    let top = rule.and_then(|r| r.spec.traffic_policy.as_ref());
    Target {
        name: crate::names::outbound_cluster(
            80,
            subset.map_or("", |s| s.name.as_str()),
            &svc.hostname,
        ),
        service: svc,
        port: &svc.ports[0],
        subset,
        rule,
        policy: Policy::for_subset(top, subset.and_then(|s| s.traffic_policy.as_ref()), 80),
        discovery: d,
    }
}

fn kind(c: &Cluster) -> DiscoveryType {
    let Some(ClusterDiscoveryType::Type(t)) = c.cluster_discovery_type else {
        panic!()
    };
    DiscoveryType::try_from(t).unwrap()
}

#[test]
fn eds_cluster_defaults() {
    let svc = service(Resolution::Static, &["10.0.0.1"]);
    let c = build(
        &target(&svc, None, None, Discovery::Eds),
        &node(),
        &MeshSnapshot::default(),
    )
    .unwrap();
    assert_eq!(c.name, "outbound|80||svc.default.svc.cluster.local");
    assert_eq!(kind(&c), DiscoveryType::Eds);
    let eds = c.eds_cluster_config.as_ref().unwrap();
    assert_eq!(eds.service_name, c.name);
    assert_eq!(
        eds.eds_config.as_ref().unwrap().resource_api_version,
        2,
        "V3"
    );
    assert_eq!(c.connect_timeout.unwrap().seconds, 10);
    assert_eq!(c.lb_policy, LbPolicy::LeastRequest as i32);
    assert!(
        c.outlier_detection.is_none()
            && c.transport_socket.is_none()
            && c.load_assignment.is_none()
    );
    assert!(
        c.typed_extension_protocol_options
            .contains_key(super::draft::HTTP_PROTOCOL_OPTIONS_KEY),
        "gRPC is h2"
    );
    assert!(
        c.metadata.unwrap().filter_metadata["istio"]
            .fields
            .contains_key("services")
    );
}

#[test]
fn dns_cluster_inlines_endpoints_or_is_skipped() {
    let svc = service(Resolution::Dns, &["api.example.com"]);
    let c = build(
        &target(&svc, None, None, Discovery::StrictDns),
        &node(),
        &MeshSnapshot::default(),
    )
    .unwrap();
    assert_eq!(kind(&c), DiscoveryType::StrictDns);
    assert_eq!(
        c.load_assignment.as_ref().unwrap().endpoints[0]
            .lb_endpoints
            .len(),
        1
    );
    let empty = service(Resolution::Dns, &[]);
    assert!(
        build(
            &target(&empty, None, None, Discovery::StrictDns),
            &node(),
            &MeshSnapshot::default()
        )
        .is_none()
    );
}

#[test]
fn subset_cluster_carries_rule_metadata_and_merged_policy() {
    let svc = service(Resolution::Static, &["10.0.0.1"]);
    let rule = Config {
        name: "svc-dr".into(),
        namespace: "default".into(),
        spec: Arc::new(DestinationRule {
            host: "svc".into(),
            traffic_policy: Some(TrafficPolicy {
                load_balancer: Some(LoadBalancerSettings {
                    simple: Some(SimpleLb::Random),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            subsets: vec![Subset {
                name: "v1".into(),
                labels: BTreeMap::from([("version".into(), "v1".into())]),
                traffic_policy: None,
            }],
            ..Default::default()
        }),
    };
    let c = build(
        &target(
            &svc,
            Some(&rule.spec.subsets[0]),
            Some(&rule),
            Discovery::Eds,
        ),
        &node(),
        &MeshSnapshot::default(),
    )
    .unwrap();
    assert_eq!(c.name, "outbound|80|v1|svc.default.svc.cluster.local");
    assert_eq!(
        c.lb_policy,
        LbPolicy::Random as i32,
        "inherited from the rule"
    );
    let istio = &c.metadata.unwrap().filter_metadata["istio"];
    let text = |k: &str| match &istio.fields[k].kind {
        Some(envoy_types::pb::google::protobuf::value::Kind::StringValue(s)) => s.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        text("config"),
        "/apis/networking.istio.io/v1/namespaces/default/destination-rule/svc-dr"
    );
    assert_eq!(text("subset"), "v1");
}

#[test]
fn passthrough_service_is_original_dst() {
    let svc = service(Resolution::Passthrough, &[]);
    let c = build(
        &target(&svc, None, None, Discovery::OriginalDst),
        &node(),
        &MeshSnapshot::default(),
    )
    .unwrap();
    assert_eq!(kind(&c), DiscoveryType::OriginalDst);
    assert_eq!(c.lb_policy, LbPolicy::ClusterProvided as i32);
    assert!(c.eds_cluster_config.is_none());
}

#[test]
fn sorted_unique_sorts_stably_and_keeps_the_first_of_a_name() {
    let items: Vec<(String, u32)> = ["c", "a", "b", "a", "c", "d", "a"]
        .iter()
        .enumerate()
        .map(|(i, n)| ((*n).to_owned(), u32::try_from(i).unwrap()))
        .collect();
    let got = super::sorted_unique(items.clone(), |(n, _)| n.as_str());
    assert_eq!(
        got,
        vec![
            ("a".to_owned(), 1),
            ("b".to_owned(), 2),
            ("c".to_owned(), 0),
            ("d".to_owned(), 5)
        ]
    );
    // Same as sorting the items themselves, for many shapes.
    for n in 0..40u32 {
        let items: Vec<(String, u32)> =
            (0..n).map(|i| (((i * 7919) % 13).to_string(), i)).collect();
        let mut want = items.clone();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        want.dedup_by(|later, earlier| later.0 == earlier.0);
        assert_eq!(super::sorted_unique(items, |(n, _)| n.as_str()), want);
    }
}

mod mtls;
