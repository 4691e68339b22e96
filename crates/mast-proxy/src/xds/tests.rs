//! Turning responses into [`Update`]s: names, removals, completeness, refusals.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::service::discovery::v3::Resource as PbResource;
use envoy_types::util::pack_any;

use super::*;

fn cluster(name: &str) -> Any {
    pack_any(Cluster {
        name: name.into(),
        ..Cluster::default()
    })
}

#[test]
fn sotw_complete_sets_remove_what_is_not_listed() {
    let held = BTreeMap::from([
        ("a".to_owned(), "1".to_owned()),
        ("b".to_owned(), "1".to_owned()),
    ]);
    let u = sotw::update(
        CLUSTER_TYPE,
        "2",
        vec![cluster("a"), cluster("c")],
        true,
        held,
    )
    .unwrap();
    let names: Vec<&str> = u.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a", "c"]);
    assert!(u.resources.iter().all(|r| r.version == "2"));
    assert_eq!(u.removed, ["b"]);
    assert!(u.complete);
}

#[test]
fn sotw_names_endpoints_by_cluster_name_and_refuses_mistakes() {
    let cla = pack_any(ClusterLoadAssignment {
        cluster_name: "outbound|80||a".into(),
        ..ClusterLoadAssignment::default()
    });
    let u = sotw::update(ENDPOINT_TYPE, "3", vec![cla], false, BTreeMap::new()).unwrap();
    assert_eq!(u.resources[0].name, "outbound|80||a");
    assert!(!u.complete);
    let twice = sotw::update(
        CLUSTER_TYPE,
        "2",
        vec![cluster("a"), cluster("a")],
        true,
        BTreeMap::new(),
    );
    assert!(twice.unwrap_err().contains("listed twice"));
    let wrong = sotw::update(
        LISTENER_TYPE,
        "2",
        vec![cluster("a")],
        true,
        BTreeMap::new(),
    );
    assert!(
        wrong
            .unwrap_err()
            .contains("is a type.googleapis.com/envoy.config.cluster.v3.Cluster")
    );
    let other = sotw::update(
        "type.googleapis.com/x.Y",
        "2",
        Vec::new(),
        true,
        BTreeMap::new(),
    );
    assert!(other.unwrap_err().contains("not subscribed"));
}

#[test]
fn delta_keeps_per_resource_versions_and_refuses_empty_bodies() {
    let r = PbResource {
        name: "a".into(),
        version: "abc".into(),
        resource: Some(cluster("a")),
        ..PbResource::default()
    };
    let u = delta::update(CLUSTER_TYPE, vec![r], vec!["b".into()]).unwrap();
    assert_eq!(
        (u.resources[0].version.as_str(), u.removed.as_slice()),
        ("abc", ["b".to_owned()].as_slice())
    );
    assert!(!u.complete);
    let empty = PbResource {
        name: "a".into(),
        ..PbResource::default()
    };
    assert!(
        delta::update(CLUSTER_TYPE, vec![empty], Vec::new())
            .unwrap_err()
            .contains("no body")
    );
}

#[test]
fn backoff_jitter_stays_within_a_quarter() {
    for _ in 0..100 {
        let d = jitter(Duration::from_secs(4));
        assert!(
            d >= Duration::from_secs(3) && d <= Duration::from_secs(5),
            "{d:?}"
        );
    }
}
