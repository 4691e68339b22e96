//! Delta (incremental) ADS: legacy wildcard, initial_resource_versions, removals, named
//! subscriptions, ACK/NACK by nonce.

use std::collections::HashMap;
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use mast_xds::{CLUSTER_TYPE, ENDPOINT_TYPE, NamedResource};
use mast_xds_server::{SyncStatus, XdsProtocol, resource_version};

use crate::common::*;

/// Clusters a, b (b only before version 3); endpoints for both, a's moving with the version.
fn mesh(v: u64, type_url: &str) -> Vec<NamedResource> {
    match type_url {
        CLUSTER_TYPE if v >= 3 => vec![cluster("a", 1)],
        CLUSTER_TYPE => vec![cluster("a", 1), cluster("b", 1)],
        ENDPOINT_TYPE => vec![endpoints("a", 8000 + v as u16), endpoints("b", 9000)],
        _ => vec![],
    }
}

fn subscribe(type_url: &str, names: &[&str]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.into(),
        resource_names_subscribe: names.iter().map(|n| (*n).to_owned()).collect(),
        ..DeltaDiscoveryRequest::default()
    }
}

fn resource_names(r: &DeltaDiscoveryResponse) -> Vec<&str> {
    r.resources.iter().map(|r| r.name.as_str()).collect()
}

#[tokio::test]
async fn wildcard_subscribe_with_empty_names_gets_everything_with_content_versions() {
    let h = Harness::start(Some(TestGen::new(mesh)), fast()).await;
    let mut c = DeltaClient::connect(h.addr, &node_id("delta")).await;
    c.send(subscribe(CLUSTER_TYPE, &[])).await;
    let r = c.recv().await;
    assert_eq!(r.system_version_info, "1");
    assert_eq!(resource_names(&r), ["a", "b"]);
    for res in &r.resources {
        let any = res.resource.as_ref().unwrap();
        assert_eq!(
            res.version,
            resource_version(any),
            "per-resource version is the content hash"
        );
    }
    assert!(r.removed_resources.is_empty());
    c.ack(&r).await;
    let status = h
        .wait_status("CDS synced", |s| {
            s.len() == 1 && s[0].sync_status(CLUSTER_TYPE) == SyncStatus::Synced
        })
        .await;
    assert_eq!(status[0].protocol, XdsProtocol::Delta);
    assert_eq!(
        status[0].types[CLUSTER_TYPE].acked_version.as_deref(),
        Some("1")
    );
    assert_eq!(status[0].sync_status(ENDPOINT_TYPE), SyncStatus::NotSent);
}

#[tokio::test]
async fn initial_resource_versions_are_honoured() {
    let h = Harness::start(Some(TestGen::new(mesh)), fast()).await;
    let current_a = resource_version(&cluster("a", 1).resource);
    let mut c = DeltaClient::connect(h.addr, &node_id("resume")).await;
    let mut req = subscribe(CLUSTER_TYPE, &[]);
    req.initial_resource_versions = HashMap::from([
        ("a".to_owned(), current_a),
        ("b".to_owned(), "stale".to_owned()),
        ("gone".to_owned(), "0000".to_owned()),
    ]);
    c.send(req).await;
    let r = c.recv().await;
    assert_eq!(resource_names(&r), ["b"], "only what the proxy lacks");
    assert_eq!(r.removed_resources, ["gone"]);
    c.ack(&r).await;

    // A reconnect holding everything current gets an empty answer, but an answer.
    let mut again = DeltaClient::connect(h.addr, &node_id("resume")).await;
    let mut req = subscribe(CLUSTER_TYPE, &[]);
    req.initial_resource_versions = r
        .resources
        .iter()
        .map(|x| (x.name.clone(), x.version.clone()))
        .chain([("a".to_owned(), resource_version(&cluster("a", 1).resource))])
        .collect();
    again.send(req).await;
    let r = again.recv().await;
    assert!(
        r.resources.is_empty() && r.removed_resources.is_empty(),
        "{r:?}"
    );
}

/// A client holding every cluster and the assignments of `a` and `b`, all ACKed.
async fn synced(h: &Harness, id: &str) -> DeltaClient {
    let mut c = DeltaClient::connect(h.addr, &node_id(id)).await;
    c.send(subscribe(CLUSTER_TYPE, &[])).await;
    let r = c.recv().await;
    c.ack(&r).await;
    c.send(subscribe(ENDPOINT_TYPE, &["a", "b"])).await;
    let r = c.recv().await;
    assert_eq!(resource_names(&r), ["a", "b"]);
    c.ack(&r).await;
    c
}

#[tokio::test]
async fn pushes_send_changes_and_removals_only() {
    let h = Harness::start(Some(TestGen::new(mesh)), fast()).await;
    let mut c = synced(&h, "removal").await;

    h.publish(2);
    let r = c.recv().await;
    assert_eq!(
        (r.type_url.as_str(), resource_names(&r)),
        (ENDPOINT_TYPE, vec!["a"]),
        "only the changed endpoints"
    );
    assert_eq!(r.system_version_info, "2");
    c.ack(&r).await;
    c.expect_silence(Duration::from_millis(100)).await;

    h.publish(3);
    let cds = c.recv().await;
    assert_eq!(cds.type_url, CLUSTER_TYPE);
    assert!(cds.resources.is_empty());
    assert_eq!(cds.removed_resources, ["b"]);
    c.ack(&cds).await;
    let eds = c.recv().await;
    assert_eq!(
        (eds.type_url.as_str(), resource_names(&eds)),
        (ENDPOINT_TYPE, vec!["a"])
    );
    c.ack(&eds).await;
    c.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn named_subscriptions_follow_subscribe_and_unsubscribe() {
    let h = Harness::start(Some(TestGen::new(mesh)), fast()).await;
    let mut c = DeltaClient::connect(h.addr, &node_id("named")).await;
    c.send(subscribe(ENDPOINT_TYPE, &["a"])).await;
    let r = c.recv().await;
    assert_eq!(resource_names(&r), ["a"]);
    c.ack(&r).await;
    let mut more = subscribe(ENDPOINT_TYPE, &["b"]);
    more.resource_names_unsubscribe = vec!["a".into()];
    c.send(more).await;
    let r = c.recv().await;
    assert_eq!(resource_names(&r), ["b"]);
    c.ack(&r).await;
    // "a" is no longer subscribed: its change is not pushed.
    h.publish(2);
    c.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn delta_nack_is_tied_to_its_version_by_nonce() {
    let h = Harness::start(Some(TestGen::new(mesh)), fast()).await;
    let mut c = DeltaClient::connect(h.addr, &node_id("dnack")).await;
    c.send(subscribe(ENDPOINT_TYPE, &["a", "b"])).await;
    let r = c.recv().await;
    c.ack(&r).await;
    h.publish(2);
    let r = c.recv().await;
    c.nack(&r, "endpoint rejected").await;
    let status = h
        .wait_status("delta NACK", |s| {
            s[0].types[ENDPOINT_TYPE].last_nack.is_some()
        })
        .await;
    let eds = &status[0].types[ENDPOINT_TYPE];
    assert_eq!(eds.last_nack.as_ref().unwrap().version, "2");
    assert_eq!(eds.last_nack.as_ref().unwrap().error, "endpoint rejected");
    assert_eq!(eds.acked_version.as_deref(), Some("1"));
    assert_eq!(eds.status, SyncStatus::Stale);
    assert!(
        h.metrics()
            .contains(r#"pilot_total_xds_rejects_total{type="eds"} 1"#)
    );
    c.expect_silence(Duration::from_millis(150)).await;
}

/// A changed cluster's assignment is sent again after it, unchanged: Envoy re-creates the
/// cluster and the new one warms until it has its endpoints. Other assignments are not.
#[tokio::test]
async fn a_changed_cluster_gets_its_unchanged_endpoints_again() {
    let content = |v: u64, t: &str| match t {
        CLUSTER_TYPE => vec![cluster("a", v), cluster("b", 1)],
        ENDPOINT_TYPE => vec![endpoints("a", 8000), endpoints("b", 9000)],
        _ => vec![],
    };
    let h = Harness::start(Some(TestGen::new(content)), fast()).await;
    let mut c = synced(&h, "warming").await;

    h.publish(2);
    let cds = c.recv().await;
    assert_eq!(
        (cds.type_url.as_str(), resource_names(&cds)),
        (CLUSTER_TYPE, vec!["a"])
    );
    c.ack(&cds).await;
    let eds = c.recv().await;
    assert_eq!(
        (eds.type_url.as_str(), resource_names(&eds)),
        (ENDPOINT_TYPE, vec!["a"]),
        "the changed cluster's endpoints, again"
    );
    c.ack(&eds).await;
    c.expect_silence(Duration::from_millis(100)).await;
}
