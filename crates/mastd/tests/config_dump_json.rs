//! Everything mastd generates can be shown as JSON: for a rich mesh (every generator feature
//! of crates/mast-xds's tests at once) and for sidecars in both capture modes, every type's
//! resources render through `mast_xds_json::config_dump`, as `/debug/config_dump` serves them.
//! A generator that starts emitting a `typed_config` whose proto the JSON descriptor set lacks
//! fails here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
use serde_json::json;

const RICH: &str = include_str!("fixtures/rich-mesh.yaml");

fn proxies() -> Vec<ProxyNode> {
    let iptables = json!({"NAMESPACE": "default", "LABELS": {"app": "reviews", "version": "v1"}});
    let ports = json!({"NAMESPACE": "default", "LABELS": {"app": "productpage"}, "MAST_CAPTURE_MODE": "ports", "MAST_OUTBOUND_PORT": "15101", "MAST_INBOUND_PORTS": "9080=15106"});
    vec![
        ProxyNode::parse(
            "sidecar~10.0.0.7~reviews-v1.default~default.svc.cluster.local",
            &iptables,
        )
        .unwrap(),
        ProxyNode::parse(
            "sidecar~127.0.0.1~productpage.default~default.svc.cluster.local",
            &ports,
        )
        .unwrap(),
    ]
}

#[test]
fn every_generated_resource_renders_as_json() {
    let loaded =
        mast_config::load_str(RICH, "rich-mesh.yaml", &mast_config::LoadOptions::default());
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let snapshot = MeshSnapshot::build(&loaded.resources, SnapshotOptions::default(), 1);
    for proxy in proxies() {
        let mut counts = Vec::new();
        let sections: Vec<mast_xds_json::DumpSection> = mast_xds::PUSH_ORDER
            .iter()
            .map(|t| {
                let resources: Vec<_> = mast_xds::generate(&snapshot, &proxy, t)
                    .into_iter()
                    .map(|r| r.resource)
                    .collect();
                counts.push(resources.len());
                mast_xds_json::DumpSection {
                    type_url: (*t).to_owned(),
                    version_info: "1".into(),
                    resources,
                }
            })
            .collect();
        assert!(
            counts.iter().all(|c| *c > 0),
            "{}: every type has resources: {counts:?}",
            proxy.id
        );
        let dump =
            mast_xds_json::config_dump(&sections).unwrap_or_else(|e| panic!("{}: {e}", proxy.id));
        let text = dump.to_string();
        assert!(
            text.contains("\"@type\":\"type.googleapis.com/envoy.admin.v3.ClustersConfigDump\""),
            "{text:.300}"
        );
        assert!(
            text.contains("outbound|9080|v1|reviews.default.svc.cluster.local"),
            "{}: subset clusters are dumped",
            proxy.id
        );
    }
}
