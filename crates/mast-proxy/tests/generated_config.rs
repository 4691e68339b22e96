//! Everything mastd generates converts in mast-proxy: the four xDS types for rich meshes
//! (every VirtualService / DestinationRule feature of the RDS and LDS generator tests), for
//! sidecars in both capture modes, go through the same conversions the proxy runs before it
//! ACKs. A resource mastd emits that the proxy would NACK fails here with its field path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use mast_config::Level;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
use mast_proxy::cluster::{Assignment, ClusterConfig};
use mast_proxy::listener::ListenerConfig;
use mast_proxy::route::RouteTable;
use prost::Message;
use serde_json::json;

/// The rich mesh of mast-xds' RDS tests (`RICH` in `rds_envoy.rs`), read from that file so
/// the two stay one.
fn rich_mesh() -> String {
    let source = include_str!("../../mast-xds/tests/rds_envoy.rs");
    let start = source.find("const RICH: &str = r#\"").expect("RICH") + 22;
    let end = start + source[start..].find("\"#;").expect("end of RICH");
    source[start..end].to_owned()
}

fn snapshot(yaml: &str) -> MeshSnapshot {
    let out = mast_config::load_str(yaml, "mesh.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "load: {:?}", out.diagnostics);
    let errors: Vec<_> = mast_config::validate::validate_all(&out.resources)
        .into_iter()
        .filter(|d| d.level == Level::Error)
        .collect();
    assert!(errors.is_empty(), "validation: {errors:?}");
    MeshSnapshot::build(&out.resources, SnapshotOptions::default(), 1)
}

fn proxies() -> Vec<(&'static str, ProxyNode)> {
    let node = |id: &str, md: serde_json::Value| ProxyNode::parse(id, &md).expect("node");
    vec![
        (
            "iptables sidecar",
            node(
                "sidecar~10.1.0.9~client.default~default.svc.cluster.local",
                json!({"NAMESPACE": "default", "LABELS": {"app": "client"}}),
            ),
        ),
        (
            "ports sidecar",
            node(
                "sidecar~127.0.0.1~client.default~default.svc.cluster.local",
                json!({"NAMESPACE": "default", "MAST_CAPTURE_MODE": "ports",
                       "MAST_OUTBOUND_PORT": "15101", "MAST_INBOUND_PORTS": "9080=15102"}),
            ),
        ),
        (
            "serving sidecar in another namespace",
            node(
                "sidecar~10.1.0.10~reviews-v1.prod~prod.svc.cluster.local",
                json!({"NAMESPACE": "prod", "LABELS": {"app": "reviews", "version": "v1"}}),
            ),
        ),
    ]
}

fn check(label: &str, snap: &MeshSnapshot) {
    let mut counts = [0usize; 4];
    for (who, proxy) in proxies() {
        let mut errors = Vec::new();
        for r in mast_xds::generate(snap, &proxy, mast_xds::CLUSTER_TYPE) {
            counts[0] += 1;
            let c = Cluster::decode(r.resource.value.as_slice()).unwrap();
            if let Err(e) = ClusterConfig::from_proto(&c) {
                errors.push(e.to_string());
            }
        }
        for r in mast_xds::generate(snap, &proxy, mast_xds::ENDPOINT_TYPE) {
            counts[1] += 1;
            let a = ClusterLoadAssignment::decode(r.resource.value.as_slice()).unwrap();
            if let Err(e) = Assignment::from_proto(&a) {
                errors.push(e.to_string());
            }
        }
        for r in mast_xds::generate(snap, &proxy, mast_xds::LISTENER_TYPE) {
            counts[2] += 1;
            let l = Listener::decode(r.resource.value.as_slice()).unwrap();
            if let Err(e) = ListenerConfig::from_proto(&l) {
                errors.push(e.to_string());
            }
        }
        for r in mast_xds::generate(snap, &proxy, mast_xds::ROUTE_TYPE) {
            counts[3] += 1;
            let t = RouteConfiguration::decode(r.resource.value.as_slice()).unwrap();
            if let Err(e) = RouteTable::from_proto(&t) {
                errors.push(e.to_string());
            }
        }
        assert!(
            errors.is_empty(),
            "{label}, {who}: mast-proxy would NACK:\n{}",
            errors.join("\n")
        );
    }
    assert!(
        counts.iter().all(|c| *c > 0),
        "{label}: every type generated: {counts:?}"
    );
}

#[test]
fn every_resource_of_the_rich_route_mesh_converts() {
    check("RDS rich mesh", &snapshot(&rich_mesh()));
}

#[test]
fn every_resource_of_the_listener_mesh_converts() {
    check(
        "LDS mesh",
        &snapshot(include_str!("../../mast-xds/tests/lds_mesh.yaml")),
    );
}
