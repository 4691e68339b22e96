//! Which VirtualService owns a service host (the indexes of [`super::Scope`]): the first
//! naming it exactly, else the most specific wildcard; per port, only VirtualServices with
//! routes there; VirtualService-only hosts on port 80 only; `CONNECT` rules of L4 ports.

use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};
use envoy_types::pb::google::protobuf::value::Kind;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
use serde_json::json;

const MESH: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: a, namespace: default}
spec: {clusterIP: 10.96.0.1, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: default}
spec: {clusterIP: 10.96.0.2, ports: [{name: http, port: 80}, {name: http-alt, port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: c, namespace: default}
spec: {clusterIP: 10.96.0.3, ports: [{name: http, port: 80}, {name: tcp-db, port: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: d, namespace: other}
spec: {clusterIP: 10.96.0.4, ports: [{name: http, port: 80}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs1, namespace: default}
spec:
  hosts: [a]
  http: [{route: [{destination: {host: a}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs2, namespace: default}
spec:
  hosts: [a, b, only.example.com]
  http: [{route: [{destination: {host: b}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs3, namespace: default}
spec:
  hosts: ['*.default.svc.cluster.local']
  http: [{match: [{port: 80}], route: [{destination: {host: c}}]}]
  tcp: [{route: [{destination: {host: c, subset: v2}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs4, namespace: default}
spec:
  hosts: ['*.svc.cluster.local']
  http: [{route: [{destination: {host: d.other.svc.cluster.local}}]}]
"#;

fn snapshot() -> MeshSnapshot {
    let loaded = mast_config::load_str(MESH, "mesh.yaml", &Default::default());
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    MeshSnapshot::build(&loaded.resources, SnapshotOptions::default(), 1)
}

fn proxy(md: serde_json::Value) -> ProxyNode {
    ProxyNode::parse(
        "sidecar~10.0.0.9~client.default~default.svc.cluster.local",
        &md,
    )
    .unwrap()
}

fn vhost<'a>(table: &'a RouteConfiguration, name: &str) -> Option<&'a VirtualHost> {
    table.virtual_hosts.iter().find(|v| v.name == name)
}

/// The VirtualService a route came from (`default` for the default route).
fn owner(route: &Route) -> String {
    let Some(md) = &route.metadata else {
        return route.name.clone();
    };
    match md.filter_metadata["istio"].fields["config"].kind.as_ref() {
        Some(Kind::StringValue(s)) => s.rsplit('/').next().unwrap().to_owned(),
        _ => panic!("no config path"),
    }
}

fn owner_of(table: &RouteConfiguration, name: &str) -> String {
    let v = vhost(table, name).unwrap_or_else(|| panic!("no vhost {name}"));
    owner(v.routes.last().unwrap())
}

#[test]
fn first_exact_name_then_longest_wildcard_own_each_port() {
    let snap = snapshot();
    let tables = super::routes(&snap, &proxy(json!({})));
    let t80 = tables.iter().find(|t| t.name == "80").unwrap();
    assert_eq!(owner_of(t80, "a.default.svc.cluster.local:80"), "vs1");
    assert_eq!(owner_of(t80, "b.default.svc.cluster.local:80"), "vs2");
    assert_eq!(owner_of(t80, "c.default.svc.cluster.local:80"), "vs3");
    assert_eq!(owner_of(t80, "d.other.svc.cluster.local:80"), "vs4");
    assert_eq!(owner_of(t80, "only.example.com:80"), "vs2");
    let t8080 = tables.iter().find(|t| t.name == "8080").unwrap();
    assert_eq!(owner_of(t8080, "b.default.svc.cluster.local:8080"), "vs2");
    assert_eq!(
        owner_of(t8080, "only.example.com:8080"),
        "vs2",
        "vs2 owns b on 8080, so its other hosts are served there too"
    );
}

#[test]
fn virtual_services_get_no_virtual_host_on_ports_where_they_own_nothing() {
    let snap = snapshot();
    let tables = super::routes(&snap, &proxy(json!({})));
    // vs3 only routes port 80: on 8080 it owns nothing, and its `port: 80` match is not
    // translated there; vs1 names no service on 8080 and gets no virtual host there.
    let t8080 = tables.iter().find(|t| t.name == "8080").unwrap();
    let names: Vec<&str> = t8080
        .virtual_hosts
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "b.default.svc.cluster.local:8080",
            "only.example.com:8080",
            "allow_any"
        ]
    );
    let t80 = tables.iter().find(|t| t.name == "80").unwrap();
    let c = vhost(t80, "c.default.svc.cluster.local:80").unwrap();
    assert_eq!(c.routes.len(), 1);
}

#[test]
fn connect_rules_of_l4_ports_come_from_the_covering_virtual_service() {
    let snap = snapshot();
    let md = json!({"MAST_CAPTURE_MODE": "ports", "MAST_OUTBOUND_PORT": "15001"});
    let tables = super::routes(&snap, &proxy(md));
    let v = vhost(&tables[0], "c.default.svc.cluster.local:5432").unwrap();
    let Some(Action::Route(a)) = &v.routes[0].action else {
        panic!("a tunnel")
    };
    assert_eq!(
        a.cluster_specifier,
        Some(ClusterSpecifier::Cluster(
            "outbound|5432|v2|c.default.svc.cluster.local".into()
        ))
    );
}
