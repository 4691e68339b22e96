//! Tests of the DestinationRule lookup order and merging, and of inbound ports.

use mast_config::networking::destination_rule::SimpleLb;

use super::tests_build::{build, h};
use super::tests_query::{MESH, mesh_with, sidecar};
use super::*;

const RULES: &str = "
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-client, namespace: shop}
spec:
  host: reviews.catalog.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: frontend-only, namespace: shop}
spec:
  host: reviews.catalog.svc.cluster.local
  workloadSelector: {matchLabels: {app: frontend}}
  subsets: [{name: canary, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: catalog}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-extra, namespace: catalog}
spec:
  host: reviews.catalog.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
  subsets: [{name: v1, labels: {version: other}}, {name: v3, labels: {version: v3}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings-private, namespace: catalog}
spec:
  host: ratings
  exportTo: [.]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: global, namespace: istio-system}
spec:
  host: '*.local'
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: root-private, namespace: istio-system}
spec:
  host: istiod
  exportTo: [.]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: all-services, namespace: wild}
spec:
  host: '*.svc.cluster.local'
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: catalog-services, namespace: wild}
spec:
  host: '*.catalog.svc.cluster.local'
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: exact-ratings, namespace: wild}
spec:
  host: ratings.catalog.svc.cluster.local
";

fn dr_name(dr: Option<&Config<mast_config::networking::DestinationRule>>) -> Option<String> {
    dr.map(|c| format!("{}/{}", c.namespace, c.name))
}

#[test]
fn destination_rule_lookup_order() {
    let s = mesh_with(RULES);
    let reviews = h("reviews.catalog.svc.cluster.local");
    let ratings = h("ratings.catalog.svc.cluster.local");
    let istiod = h("istiod.istio-system.svc.cluster.local");
    // Client namespace first, then the service's, then the root's.
    assert_eq!(
        dr_name(s.destination_rule("shop", &reviews)).as_deref(),
        Some("shop/reviews-client")
    );
    assert_eq!(
        dr_name(s.destination_rule("tools", &reviews)).as_deref(),
        Some("catalog/reviews")
    );
    assert_eq!(
        dr_name(s.destination_rule("tools", &ratings)).as_deref(),
        Some("istio-system/global")
    );
    assert_eq!(
        dr_name(s.destination_rule("catalog", &ratings)).as_deref(),
        Some("catalog/ratings-private")
    );
    assert_eq!(
        dr_name(s.destination_rule("tools", &h("api.example.com"))),
        None
    );
    // A private rule of the root namespace serves only proxies there.
    assert_eq!(
        dr_name(s.destination_rule("istio-system", &istiod)).as_deref(),
        Some("istio-system/root-private")
    );
    assert_eq!(
        dr_name(s.destination_rule("shop", &istiod)).as_deref(),
        Some("istio-system/global")
    );
    // Exact host beats wildcards; the most specific wildcard wins.
    assert_eq!(
        dr_name(s.destination_rule("wild", &ratings)).as_deref(),
        Some("wild/exact-ratings")
    );
    assert_eq!(
        dr_name(s.destination_rule("wild", &reviews)).as_deref(),
        Some("wild/catalog-services")
    );
    assert_eq!(
        dr_name(s.destination_rule("wild", &istiod)).as_deref(),
        Some("wild/all-services")
    );
}

#[test]
fn destination_rules_merge_and_workload_selectors() {
    let s = mesh_with(RULES);
    let reviews = h("reviews.catalog.svc.cluster.local");
    let merged = s.destination_rule("tools", &reviews).unwrap();
    assert_eq!(merged.spec.host, "reviews.catalog.svc.cluster.local");
    let subsets: Vec<&str> = s
        .subsets("tools", &reviews)
        .iter()
        .map(|x| x.name.as_str())
        .collect();
    assert_eq!(subsets, ["v1", "v2", "v3"]);
    assert_eq!(s.subsets("tools", &reviews)[0].labels["version"], "v1");
    // The first rule's traffic policy is kept.
    let lb = merged
        .spec
        .traffic_policy
        .as_ref()
        .and_then(|p| p.load_balancer.as_ref());
    assert_eq!(lb.and_then(|l| l.simple), Some(SimpleLb::RoundRobin));
    assert_eq!(s.subsets("shop", &reviews).len(), 1);
    assert!(s.subsets("tools", &h("api.example.com")).is_empty());
    // The selector rule applies only to the workloads it selects.
    let frontend = sidecar("shop", "10.0.2.1", "frontend-1", &[("app", "frontend")]);
    let batch = sidecar("shop", "10.0.2.2", "batch", &[("app", "batch")]);
    assert_eq!(
        dr_name(s.destination_rule_for(&frontend, &reviews)).as_deref(),
        Some("shop/frontend-only")
    );
    assert_eq!(
        dr_name(s.destination_rule_for(&batch, &reviews)).as_deref(),
        Some("shop/reviews-client")
    );
    let tools = sidecar("tools", "10.0.3.1", "t", &[("app", "frontend")]);
    assert_eq!(
        dr_name(s.destination_rule_for(&tools, &reviews)).as_deref(),
        Some("catalog/reviews")
    );
}

fn inbound(s: &MeshSnapshot, proxy: &ProxyNode) -> Vec<(u16, String, u16)> {
    s.inbound_ports(proxy)
        .iter()
        .map(|p| (p.target_port, p.service.name.clone(), p.port.port))
        .collect()
}

#[test]
fn inbound_ports_by_selector_and_endpoint() {
    let s = build(MESH);
    // Selected by labels: numeric targetPort; UDP left out; one entry per target port.
    let frontend = sidecar("shop", "10.0.2.1", "frontend-1", &[("app", "frontend")]);
    assert_eq!(inbound(&s, &frontend), [(8080, "frontend".into(), 80)]);
    // The named targetPort as this pod resolves it.
    let v1 = sidecar(
        "catalog",
        "10.0.1.1",
        "reviews-v1",
        &[("app", "reviews"), ("version", "v1")],
    );
    assert_eq!(inbound(&s, &v1), [(9081, "reviews".into(), 9080)]);
    // Found by its endpoint IP alone (no labels sent).
    let v2 = sidecar("catalog", "10.0.1.2", "reviews-v2", &[]);
    assert_eq!(inbound(&s, &v2), [(9082, "reviews".into(), 9080)]);
    // Same labels in another namespace, another IP: nothing.
    let stranger = sidecar("shop", "10.0.2.9", "x", &[("app", "reviews")]);
    assert!(inbound(&s, &stranger).is_empty());
}

#[test]
fn inbound_ports_on_loopback_need_the_workload_name() {
    let s = build(
        "
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: local}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: echo-a, namespace: local}
spec: {address: 127.0.0.1, labels: {app: echo}, ports: {http: 18080}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: loop, namespace: local}
spec:
  hosts: [loop.example.com]
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 19000}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
",
    );
    let echo = sidecar("local", "127.0.0.1", "echo-a", &[]);
    assert_eq!(inbound(&s, &echo), [(18080, "echo".into(), 80)]);
    let client = sidecar("local", "127.0.0.1", "client", &[]);
    assert!(
        inbound(&s, &client).is_empty(),
        "{:?}",
        inbound(&s, &client)
    );
}

#[test]
fn ports_capture_endpoint_at_the_sidecar_listener_maps_back_to_the_app_port() {
    // `mastctl up`: two versions behind one Service, each registered at its sidecar's inbound
    // listener; each application listens on its own port (MAST_INBOUND_PORTS APP=LISTEN).
    let s = build(
        "
apiVersion: v1
kind: Service
metadata: {name: nginx-svc, namespace: default}
spec:
  selector: {app: nginx}
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: nginx-1, namespace: default}
spec: {address: 127.0.0.1, labels: {app: nginx}, ports: {http: 15106}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: nginx-2, namespace: default}
spec: {address: 127.0.0.1, labels: {app: nginx}, ports: {http: 15116}}
",
    );
    let node = |workload: &str, inbound: &str| {
        ProxyNode::parse(
            &format!("sidecar~127.0.0.1~{workload}.default~default.svc.cluster.local"),
            &serde_json::json!({"NAMESPACE": "default", "WORKLOAD_NAME": workload,
                    "LABELS": {"app": "nginx"}, "MAST_CAPTURE_MODE": "ports",
                    "MAST_OUTBOUND_PORT": "15101", "MAST_INBOUND_PORTS": inbound}),
        )
        .unwrap()
    };
    let one = node("nginx-1", "8080=15106");
    assert_eq!(inbound(&s, &one), [(8080, "nginx-svc".into(), 80)]);
    let two = node("nginx-2", "8081=15116");
    assert_eq!(inbound(&s, &two), [(8081, "nginx-svc".into(), 80)]);
    // Before its endpoint is known (mastd has not read the entry yet), a sidecar with one
    // application port still serves the selecting Service there.
    let early = node("nginx-3", "8083=15126");
    assert_eq!(inbound(&s, &early), [(8083, "nginx-svc".into(), 80)]);
    // With several application ports and no mapping, the endpoint port stays as it is.
    let plain = node("nginx-1", "9000=15199,9001=15198");
    assert_eq!(inbound(&s, &plain), [(15106, "nginx-svc".into(), 80)]);
}
