//! The outbound/inbound split that lets the control plane share generation between proxies:
//! the two parts make exactly what `generate` makes, and proxies with equal `ShareKey`s get
//! equal shared parts, whatever else differs between them (ids, workloads, addresses,
//! inbound ports, labels where nothing matches on them).

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
use mast_xds::{NamedResource, Part, ShareKey};
use prost::{Message, Name};
use serde_json::json;

const RICH: &str = include_str!("../../mastd/tests/fixtures/rich-mesh.yaml");

/// A mesh with a passthrough service whose endpoints are sidecars, and no `sourceLabels`.
const PLAIN: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: NONE
  ports: [{name: tcp, number: 5432, protocol: TCP}]
  endpoints: [{address: 10.9.0.1}, {address: 10.9.0.2}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: shop, labels: {app: db}}
spec: {containers: [{name: app, image: db}]}
status: {podIP: 10.9.0.1}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.20
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web, version: v1}}
spec: {containers: [{name: app, image: web}]}
status: {podIP: 10.9.0.11}
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: shop, labels: {app: web, version: v2}}
spec: {containers: [{name: app, image: web}]}
status: {podIP: 10.9.0.12}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
  - match: [{headers: {x-canary: {exact: "1"}}}]
    route: [{destination: {host: web, subset: v2}}]
  - route: [{destination: {host: web, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"#;

fn snapshot(yaml: &str) -> MeshSnapshot {
    let out = mast_config::load_str(yaml, "mesh.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "load: {:?}", out.diagnostics);
    MeshSnapshot::build(&out.resources, SnapshotOptions::default(), 1)
}

fn node(ip: &str, workload: &str, ns: &str, md: serde_json::Value) -> ProxyNode {
    ProxyNode::parse(
        &format!("sidecar~{ip}~{workload}.{ns}~{ns}.svc.cluster.local"),
        &md,
    )
    .expect("node parses")
}

fn ports(outbound: u16, inbound: &str) -> serde_json::Value {
    json!({"MAST_CAPTURE_MODE": "ports", "MAST_OUTBOUND_PORT": outbound.to_string(),
           "MAST_INBOUND_PORTS": inbound})
}

/// Sidecars of both capture modes, in and out of the services, in two namespaces.
fn proxies(ns: &str, other_ns: &str, ips: &[&str]) -> Vec<ProxyNode> {
    let mut out = Vec::new();
    for (i, ip) in ips.iter().enumerate() {
        let labels = json!({"app": if i % 2 == 0 { "client" } else { "reviews" }, "version": "v1"});
        out.push(node(ip, &format!("w{i}"), ns, json!({"LABELS": labels})));
        out.push(node(
            ip,
            &format!("p{i}"),
            ns,
            json!({"LABELS": labels, "MAST_CAPTURE_MODE": "ports", "MAST_OUTBOUND_PORT": (15001 + i).to_string(),
                   "MAST_INBOUND_PORTS": "9080=15106,8080=15107"}),
        ));
    }
    out.push(node("10.7.7.7", "x", other_ns, json!({})));
    out.push(node("127.0.0.1", "y", other_ns, ports(15001, "")));
    out
}

fn decode<T: Message + Name + Default + PartialEq>(items: &[NamedResource]) -> Vec<(String, T)> {
    items
        .iter()
        .map(|r| {
            assert_eq!(r.resource.type_url, T::type_url());
            let m = T::decode(r.resource.value.as_slice()).expect("decodes");
            (r.name.clone(), m)
        })
        .collect()
}

/// The shared part, then own resources whose names the shared part lacks, by name.
fn merged(snap: &MeshSnapshot, p: &ProxyNode, type_url: &str) -> Vec<NamedResource> {
    let mut all = mast_xds::generate_part(snap, p, type_url, Part::Shared);
    for r in mast_xds::generate_part(snap, p, type_url, Part::Own) {
        if !all.iter().any(|o| o.name == r.name) {
            all.push(r);
        }
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

fn same<T: Message + Name + Default + PartialEq + std::fmt::Debug>(
    a: &[NamedResource],
    b: &[NamedResource],
    what: &str,
) {
    let (a, b) = (decode::<T>(a), decode::<T>(b));
    let names = |v: &[(String, T)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b), "{what}: names differ");
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{what}: {name} differs");
    }
}

fn same_any(type_url: &str, a: &[NamedResource], b: &[NamedResource], what: &str) {
    match type_url {
        mast_xds::CLUSTER_TYPE => same::<Cluster>(a, b, what),
        mast_xds::ENDPOINT_TYPE => same::<ClusterLoadAssignment>(a, b, what),
        mast_xds::LISTENER_TYPE => same::<Listener>(a, b, what),
        mast_xds::ROUTE_TYPE => same::<RouteConfiguration>(a, b, what),
        other => panic!("unexpected type {other}"),
    }
}

fn meshes() -> Vec<(&'static str, MeshSnapshot, Vec<ProxyNode>)> {
    vec![
        (
            "rich",
            snapshot(RICH),
            proxies(
                "default",
                "other",
                &["10.1.0.1", "10.1.0.2", "10.3.3.3", "127.0.0.1"],
            ),
        ),
        (
            "plain",
            snapshot(PLAIN),
            proxies(
                "shop",
                "default",
                &["10.9.0.1", "10.9.0.11", "10.9.0.12", "10.9.9.9"],
            ),
        ),
    ]
}

#[test]
fn the_two_parts_make_the_whole() {
    for (mesh, snap, proxies) in meshes() {
        for p in &proxies {
            for type_url in mast_xds::PUSH_ORDER {
                let whole = mast_xds::generate(&snap, p, type_url);
                let parts = merged(&snap, p, type_url);
                same_any(
                    type_url,
                    &whole,
                    &parts,
                    &format!("{mesh} {} {type_url}", p.id),
                );
            }
        }
    }
}

#[test]
fn equal_keys_give_equal_shared_parts() {
    let mut pairs_checked = 0;
    for (mesh, snap, proxies) in meshes() {
        for (i, a) in proxies.iter().enumerate() {
            for b in &proxies[i + 1..] {
                if ShareKey::of(&snap, a) != ShareKey::of(&snap, b) {
                    continue;
                }
                pairs_checked += 1;
                for type_url in mast_xds::PUSH_ORDER {
                    let x = mast_xds::generate_part(&snap, a, type_url, Part::Shared);
                    let y = mast_xds::generate_part(&snap, b, type_url, Part::Shared);
                    same_any(type_url, &x, &y, &format!("{mesh} {} vs {}", a.id, b.id));
                }
            }
        }
    }
    assert!(
        pairs_checked >= 4,
        "only {pairs_checked} pairs shared a key"
    );
}

#[test]
fn keys_follow_what_the_outbound_part_reads() {
    let plain = snapshot(PLAIN);
    let md = json!({"LABELS": {"app": "web", "version": "v1"}});
    let a = node("10.9.0.11", "web-1", "shop", md.clone());
    let b = node(
        "10.9.0.12",
        "web-2",
        "shop",
        json!({"LABELS": {"app": "web", "version": "v2"}}),
    );
    // No sourceLabels anywhere: labels and addresses do not matter…
    assert_eq!(ShareKey::of(&plain, &a), ShareKey::of(&plain, &b));
    // …the namespace and the capture mode do…
    let other_ns = node("10.9.0.11", "web-1", "default", md.clone());
    assert_ne!(ShareKey::of(&plain, &a), ShareKey::of(&plain, &other_ns));
    let ports_a = node("10.9.0.11", "web-1", "shop", ports(15001, "8080=15106"));
    let ports_b = node("10.9.0.12", "web-2", "shop", ports(15001, "9090=15107"));
    let ports_c = node("10.9.0.12", "web-2", "shop", ports(15002, ""));
    assert_ne!(ShareKey::of(&plain, &a), ShareKey::of(&plain, &ports_a));
    assert_eq!(
        ShareKey::of(&plain, &ports_a),
        ShareKey::of(&plain, &ports_b)
    );
    // (the outbound listener's own port is not shared: it goes with the own part)
    assert_eq!(
        ShareKey::of(&plain, &ports_b),
        ShareKey::of(&plain, &ports_c)
    );
    // …and so does being an endpoint of a headless service (its own address is left out).
    let db = node("10.9.0.1", "db-0", "shop", json!({"LABELS": {"app": "db"}}));
    assert_ne!(ShareKey::of(&plain, &a), ShareKey::of(&plain, &db));

    // With a sourceLabels match (the rich mesh) labels matter; a Sidecar selects by them too.
    let rich = snapshot(RICH);
    let client = node(
        "10.3.3.3",
        "c",
        "default",
        json!({"LABELS": {"app": "client"}}),
    );
    let other = node(
        "10.3.3.4",
        "d",
        "default",
        json!({"LABELS": {"app": "other"}}),
    );
    assert_ne!(ShareKey::of(&rich, &client), ShareKey::of(&rich, &other));
}

#[test]
fn endpoints_for_some_hosts_are_those_of_the_whole() {
    let plain = snapshot(PLAIN);
    let web = mast_core::Hostname::new_unchecked("web.shop.svc.cluster.local");
    for p in proxies("shop", "default", &["10.9.0.1", "10.9.9.9"]) {
        let all = mast_xds::generate(&plain, &p, mast_xds::ENDPOINT_TYPE);
        let some = mast_xds::generate_endpoints_for_hosts(
            &plain,
            &p,
            &std::collections::BTreeSet::from([web.clone()]),
        );
        let expected: Vec<NamedResource> = all
            .into_iter()
            .filter(|r| r.name.ends_with("|web.shop.svc.cluster.local"))
            .collect();
        assert_eq!(expected.len(), 3, "web, web v1, web v2");
        assert_eq!(some, expected);
    }
}
