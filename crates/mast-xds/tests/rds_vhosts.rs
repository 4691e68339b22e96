//! RDS route tables and virtual hosts: one table per HTTP port (iptables capture) or one
//! `mast_outbound` table (ports capture), the domains a service answers to, VirtualService
//! ownership of hosts, VirtualService-only hosts and the catch-all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod rds_util;

use envoy_types::pb::envoy::config::route::v3::route::Action;
use mast_xds::route::{ALLOW_ANY, BLOCK_ALL, PORTS_OUTBOUND_ROUTE};
use rds_util::*;
use serde_json::json;

const SEED: &str = concat!(
    include_str!("../../../examples/seed-nginx/nginx-test.yaml"),
    "\n---\n",
    include_str!("../../../examples/seed-nginx/nginx-test-vs.yaml")
);

#[test]
fn one_table_per_http_port_named_by_port() {
    let snap = snapshot(SERVICES);
    let t = tables(&snap, &sidecar("default", json!({})));
    let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["80", "8000", "8001", "8080", "9080"],
        "no table for TCP port 5432"
    );
    for rc in &t {
        assert_eq!(rc.validate_clusters.map(|b| b.value), Some(false));
        assert_eq!(
            rc.virtual_hosts.last().map(|v| v.name.as_str()),
            Some(ALLOW_ANY),
            "catch-all last"
        );
    }
    let t9080 = table(&t, "9080");
    assert_eq!(t9080.virtual_hosts.len(), 2);
    let r = &vhost(t9080, "reviews.default.svc.cluster.local:9080").routes[0];
    assert_eq!(r.name, "default");
    assert_eq!(
        cluster(r),
        "outbound|9080||reviews.default.svc.cluster.local"
    );
}

#[test]
fn domains_from_the_same_namespace() {
    let snap = snapshot(SERVICES);
    let v = vhost_of(
        &snap,
        &sidecar("default", json!({})),
        "9080",
        "reviews.default.svc.cluster.local:9080",
    );
    let mut domains = v.domains.clone();
    domains.sort();
    let mut want = vec![
        "reviews.default.svc.cluster.local",
        "reviews.default.svc.cluster.local:9080",
        "reviews",
        "reviews:9080",
        "reviews.default.svc",
        "reviews.default.svc:9080",
        "reviews.default",
        "reviews.default:9080",
        "10.96.0.10",
        "10.96.0.10:9080",
    ];
    want.sort();
    assert_eq!(domains, want);
}

#[test]
fn domains_from_another_namespace_have_no_bare_name() {
    let snap = snapshot(SERVICES);
    let v = vhost_of(
        &snap,
        &sidecar("other", json!({})),
        "9080",
        "reviews.default.svc.cluster.local:9080",
    );
    assert!(v.domains.iter().any(|d| d == "reviews.default"));
    assert!(v.domains.iter().any(|d| d == "reviews.default.svc:9080"));
    assert!(
        !v.domains
            .iter()
            .any(|d| d == "reviews" || d == "reviews:9080"),
        "{:?}",
        v.domains
    );
}

#[test]
fn seed_example_split_and_header_route() {
    let snap = snapshot(SEED);
    let v = vhost_of(
        &snap,
        &sidecar("default", json!({})),
        "80",
        "nginx-svc.default.svc.cluster.local:80",
    );
    assert_eq!(v.routes.len(), 2);
    let by_header = &v.routes[0];
    let h = &by_header.r#match.as_ref().unwrap().headers[0];
    assert_eq!(h.name, "vs-user");
    assert_eq!(
        cluster(by_header),
        "outbound|80||nginx-svc-3.default.svc.cluster.local"
    );
    assert_eq!(
        weights(&v.routes[1]),
        [
            (
                "outbound|80||nginx-svc-1.default.svc.cluster.local".to_string(),
                80
            ),
            (
                "outbound|80||nginx-svc-2.default.svc.cluster.local".to_string(),
                20
            )
        ]
    );
    // The services the VirtualService does not name keep their default route.
    let v1 = vhost_of(
        &snap,
        &sidecar("default", json!({})),
        "80",
        "nginx-svc-1.default.svc.cluster.local:80",
    );
    assert_eq!(v1.routes[0].name, "default");
}

#[test]
fn registry_only_blocks_with_502() {
    let yaml = format!(
        "{SERVICES}---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: default, namespace: default}}
spec:
  outboundTrafficPolicy: {{mode: REGISTRY_ONLY}}
"
    );
    let snap = snapshot(&yaml);
    let t = tables(&snap, &sidecar("default", json!({})));
    let last = table(&t, "9080").virtual_hosts.last().unwrap();
    assert_eq!(last.name, BLOCK_ALL);
    assert_eq!(last.domains, ["*"]);
    match &last.routes[0].action {
        Some(Action::DirectResponse(d)) => assert_eq!(d.status, 502),
        other => panic!("{other:?}"),
    }
    let allow = table(
        &tables(&snapshot(SERVICES), &sidecar("default", json!({}))),
        "9080",
    )
    .virtual_hosts
    .last()
    .cloned();
    let allow = allow.unwrap();
    assert_eq!(allow.name, ALLOW_ANY);
    assert_eq!(cluster(&allow.routes[0]), "PassthroughCluster");
    assert_eq!(action(&allow.routes[0]).timeout.map(|t| t.seconds), Some(0));
}

#[test]
fn virtual_service_only_hosts_get_their_own_vhost_on_80() {
    let yaml = format!(
        "{SERVICES}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: ext, namespace: default}}
spec:
  hosts: [api.example.com]
  http:
  - route:
    - destination: {{host: reviews}}
"
    );
    let snap = snapshot(&yaml);
    let t = tables(&snap, &sidecar("default", json!({})));
    let v = vhost(table(&t, "80"), "api.example.com:80");
    assert_eq!(v.domains, ["api.example.com", "api.example.com:80"]);
    assert_eq!(
        cluster(&v.routes[0]),
        "outbound|9080||reviews.default.svc.cluster.local",
        "the service's only port"
    );
    assert!(domain_owner(table(&t, "9080"), "api.example.com").is_none());
}

#[test]
fn short_host_of_a_virtual_service_takes_its_namespace_and_replaces_the_default() {
    let yaml = format!(
        "{SERVICES}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {{host: reviews, subset: v2}}
"
    );
    let snap = snapshot(&yaml);
    let v = vhost_of(
        &snap,
        &sidecar("default", json!({})),
        "9080",
        "reviews.default.svc.cluster.local:9080",
    );
    assert_eq!(v.routes.len(), 1);
    assert_eq!(
        cluster(&v.routes[0]),
        "outbound|9080|v2|reviews.default.svc.cluster.local"
    );
}

#[test]
fn wildcard_virtual_service_host_claims_matching_services() {
    let yaml = format!(
        "{SERVICES}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: all, namespace: default}}
spec:
  hosts: ['*.default.svc.cluster.local']
  http:
  - route:
    - destination: {{host: reviews}}
      headers: {{request: {{set: {{x-wild: '1'}}}}}}
"
    );
    let snap = snapshot(&yaml);
    let t = tables(&snap, &sidecar("default", json!({})));
    let web = vhost(table(&t, "8080"), "web.default.svc.cluster.local:8080");
    assert_eq!(
        cluster(&web.routes[0]),
        "outbound|9080||reviews.default.svc.cluster.local"
    );
    assert!(
        table(&t, "8080")
            .virtual_hosts
            .iter()
            .all(|v| !v.name.starts_with('*')),
        "claimed, no extra vhost"
    );
}

#[test]
fn routes_for_other_ports_or_other_sources_leave_the_default_route() {
    let yaml = format!(
        "{SERVICES}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: default}}
spec:
  hosts: [web]
  http:
  - match: [{{port: 8080}}]
    route: [{{destination: {{host: reviews}}}}]
  - match: [{{sourceLabels: {{app: canary}}}}]
    route: [{{destination: {{host: web, port: {{number: 80}}, subset: canary}}}}]
"
    );
    let snap = snapshot(&yaml);
    let plain = tables(&snap, &sidecar("default", json!({"app": "client"})));
    let on80 = vhost(table(&plain, "80"), "web.default.svc.cluster.local:80");
    assert_eq!(
        on80.routes[0].name, "default",
        "no rule applies on port 80 to this client"
    );
    let on8080 = vhost(table(&plain, "8080"), "web.default.svc.cluster.local:8080");
    assert_eq!(
        cluster(&on8080.routes[0]),
        "outbound|9080||reviews.default.svc.cluster.local"
    );
    let canary = tables(&snap, &sidecar("default", json!({"app": "canary"})));
    let on80 = vhost(table(&canary, "80"), "web.default.svc.cluster.local:80");
    assert_eq!(
        cluster(&on80.routes[0]),
        "outbound|80|canary|web.default.svc.cluster.local"
    );
}

#[test]
fn ports_capture_has_one_table_with_every_port() {
    let snap = snapshot(SERVICES);
    let t = tables(&snap, &ports_sidecar("default"));
    assert_eq!(t.len(), 1);
    let rc = table(&t, PORTS_OUTBOUND_ROUTE);
    // A single HTTP port: the bare host maps to it.
    assert_eq!(
        domain_owner(rc, "reviews"),
        Some("reviews.default.svc.cluster.local:9080")
    );
    assert_eq!(
        domain_owner(rc, "reviews:9080"),
        Some("reviews.default.svc.cluster.local:9080")
    );
    // Several HTTP ports: the bare host maps to 80, ports are explicit otherwise.
    assert_eq!(
        domain_owner(rc, "web"),
        Some("web.default.svc.cluster.local:80")
    );
    assert_eq!(
        domain_owner(rc, "web:8080"),
        Some("web.default.svc.cluster.local:8080")
    );
    assert_eq!(
        domain_owner(rc, "10.96.0.20"),
        Some("web.default.svc.cluster.local:80")
    );
    // Two HTTP ports, neither 80: only explicit ports.
    assert_eq!(domain_owner(rc, "api.other"), None);
    assert_eq!(
        domain_owner(rc, "api.other:8001"),
        Some("api.other.svc.cluster.local:8001")
    );
    assert_eq!(
        rc.virtual_hosts.last().map(|v| v.name.as_str()),
        Some(ALLOW_ANY)
    );
    let mut all: Vec<&String> = rc.virtual_hosts.iter().flat_map(|v| &v.domains).collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "every domain appears once");
}
