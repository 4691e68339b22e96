//! Shared helpers of the `rds_*` tests: snapshots from YAML, sidecar proxies in both capture
//! modes, route tables through the public `mast_xds::generate` API, and accessors for the
//! parts of Envoy routes the tests look at.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, VirtualHost,
};
use mast_config::Level;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
use prost::Message;
use serde_json::json;

/// A snapshot of `yaml`, which must load and validate without errors.
pub fn snapshot(yaml: &str) -> MeshSnapshot {
    let out = mast_config::load_str(yaml, "test.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "load: {:?}", out.diagnostics);
    let errors: Vec<_> = mast_config::validate::validate_all(&out.resources)
        .into_iter()
        .filter(|d| d.level == Level::Error)
        .collect();
    assert!(errors.is_empty(), "validation: {errors:?}");
    MeshSnapshot::build(&out.resources, SnapshotOptions::default(), 1)
}

/// An iptables-capture sidecar in `ns` carrying `labels`.
pub fn sidecar(ns: &str, labels: serde_json::Value) -> ProxyNode {
    let md = json!({"NAMESPACE": ns, "LABELS": labels});
    ProxyNode::parse(
        &format!("sidecar~10.1.0.9~client.{ns}~{ns}.svc.cluster.local"),
        &md,
    )
    .expect("node parses")
}

/// A ports-capture sidecar in `ns`.
pub fn ports_sidecar(ns: &str) -> ProxyNode {
    let md = json!({"NAMESPACE": ns, "MAST_CAPTURE_MODE": "ports", "MAST_OUTBOUND_PORT": "15101"});
    ProxyNode::parse(
        &format!("sidecar~127.0.0.1~client.{ns}~{ns}.svc.cluster.local"),
        &md,
    )
    .expect("node parses")
}

/// Every route table for `proxy`, through `mast_xds::generate`.
pub fn tables(snap: &MeshSnapshot, proxy: &ProxyNode) -> Vec<RouteConfiguration> {
    mast_xds::generate(snap, proxy, mast_xds::ROUTE_TYPE)
        .into_iter()
        .map(|r| {
            assert_eq!(r.resource.type_url, mast_xds::ROUTE_TYPE);
            let rc = RouteConfiguration::decode(r.resource.value.as_slice()).expect("decodes");
            assert_eq!(rc.name, r.name);
            rc
        })
        .collect()
}

/// The table named `name`.
pub fn table<'a>(tables: &'a [RouteConfiguration], name: &str) -> &'a RouteConfiguration {
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    tables
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no route table {name:?} in {names:?}"))
}

/// The virtual host named `name`.
pub fn vhost<'a>(rc: &'a RouteConfiguration, name: &str) -> &'a VirtualHost {
    let names: Vec<&str> = rc.virtual_hosts.iter().map(|v| v.name.as_str()).collect();
    rc.virtual_hosts
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no vhost {name:?} in {names:?}"))
}

/// The virtual host `vhost` of table `table` for `proxy`.
pub fn vhost_of(
    snap: &MeshSnapshot,
    proxy: &ProxyNode,
    table_name: &str,
    vhost_name: &str,
) -> VirtualHost {
    let t = tables(snap, proxy);
    vhost(table(&t, table_name), vhost_name).clone()
}

/// The forwarding action of a route.
pub fn action(route: &Route) -> &RouteAction {
    match &route.action {
        Some(Action::Route(a)) => a,
        other => panic!("route {:?} does not forward: {other:?}", route.name),
    }
}

/// The single cluster a route forwards to.
pub fn cluster(route: &Route) -> &str {
    match &action(route).cluster_specifier {
        Some(ClusterSpecifier::Cluster(c)) => c,
        other => panic!("route {:?} has no single cluster: {other:?}", route.name),
    }
}

/// (cluster, weight) of a weighted route.
pub fn weights(route: &Route) -> Vec<(String, u32)> {
    match &action(route).cluster_specifier {
        Some(ClusterSpecifier::WeightedClusters(w)) => w
            .clusters
            .iter()
            .map(|c| (c.name.clone(), c.weight.map_or(0, |w| w.value)))
            .collect(),
        other => panic!("route {:?} is not weighted: {other:?}", route.name),
    }
}

/// Every domain of every virtual host of a table, with the vhost it belongs to.
pub fn domain_owner<'a>(rc: &'a RouteConfiguration, domain: &str) -> Option<&'a str> {
    rc.virtual_hosts
        .iter()
        .find(|v| v.domains.iter().any(|d| d == domain))
        .map(|v| v.name.as_str())
}

pub const R: &str = "reviews.default.svc.cluster.local:9080";

/// `SERVICES` plus one VirtualService for `reviews` with the given `http:` rules (indented).
pub fn reviews_vs(http: &str) -> VirtualHost {
    let yaml = format!(
        "{SERVICES}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews-vs, namespace: default}}
spec:
  hosts: [reviews]
  http:
{http}"
    );
    vhost_of(
        &snapshot(&yaml),
        &sidecar("default", json!({"app": "client"})),
        "9080",
        R,
    )
}

/// Two HTTP services (one multi-port), a TCP-only one, in `default`, plus one in `other`.
pub const SERVICES: &str = "
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 9080}]
  selector: {app: reviews}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.20
  ports:
  - {name: http, port: 80}
  - {name: http-alt, port: 8080}
  - {name: tcp-db, port: 5432}
  selector: {app: web}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  ports: [{name: tcp, port: 5432}]
  selector: {app: db}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: other}
spec:
  ports:
  - {name: http-a, port: 8000}
  - {name: http-b, port: 8001}
  selector: {app: api}
";
