//! Checks the shared `support` module itself: a hand-built EDS cluster with its assignment is
//! accepted by real Envoy, and an invalid cluster is rejected.

mod support;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, EdsClusterConfig,
};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::google::protobuf::Duration;

fn eds_cluster(name: &str) -> Cluster {
    Cluster {
        name: name.into(),
        connect_timeout: Some(Duration {
            seconds: 10,
            nanos: 0,
        }),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(support::ads_source()),
            service_name: name.into(),
        }),
        ..Default::default()
    }
}

#[test]
fn support_accepts_a_valid_eds_cluster_and_rejects_an_invalid_one() {
    let name = "outbound|80||a.default.svc.cluster.local";
    let good = support::Resources {
        clusters: vec![eds_cluster(name)],
        endpoints: vec![ClusterLoadAssignment {
            cluster_name: name.into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    support::assert_envoy_accepts("support-smoke-good", &good);

    // Two clusters with the same name: Envoy must refuse the bootstrap.
    let bad = support::Resources {
        clusters: vec![eds_cluster(name), eds_cluster(name)],
        ..Default::default()
    };
    match support::validate("support-smoke-bad", &bad) {
        Ok(support::Validation::Skipped(why)) => eprintln!("SKIPPED: {why}"),
        Ok(support::Validation::Passed(out)) => panic!("Envoy accepted duplicate clusters: {out}"),
        Err(e) => assert!(e.contains("rejected") && e.contains("duplicate"), "{e}"),
    }
    support::remove_kept("support-smoke-bad");
}

#[test]
fn deprecations_are_read_from_envoy_output() {
    let out = "[warning][misc] Deprecated field: type X Using deprecated option 'envoy.config.cluster.v3.Cluster.respect_dns_ttl' from file cluster.proto.\nconfiguration 'x.pb' OK";
    assert_eq!(
        support::deprecations(out),
        vec!["envoy.config.cluster.v3.Cluster.respect_dns_ttl".to_string()]
    );
    assert!(support::deprecations("configuration 'x.pb' OK").is_empty());
}
