//! Tests of the gateway queries: selection, merging per port, port mapping, host rules and
//! Secrets.

use mast_core::Hostname;
use serde_json::json;

use super::tests_build::build;
use super::*;
use crate::proxy::ProxyNode;

fn router(labels: serde_json::Value) -> ProxyNode {
    let md = json!({"NAMESPACE": "istio-system", "LABELS": labels});
    ProxyNode::parse(
        "router~10.0.0.9~ingress-1.istio-system~istio-system.svc.cluster.local",
        &md,
    )
    .unwrap()
}

const GATEWAYS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: https, port: 443, targetPort: 8443}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: a, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["./a.example.com"]
  - port: {number: 443, name: https-a, protocol: HTTPS}
    hosts: ["a.example.com"]
    tls: {mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem}
  - port: {number: 9000, name: tcp, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: b, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http2, protocol: HTTP}
    hosts: ["*/b.example.com"]
  - port: {number: 443, name: https-b, protocol: HTTPS}
    hosts: ["b.example.com"]
    tls: {mode: SIMPLE, credentialName: b-cert}
  - port: {number: 443, name: https-dup, protocol: HTTPS}
    hosts: ["a.example.com"]
    tls: {mode: SIMPLE, credentialName: b-cert}
  - port: {number: 9000, name: tcp2, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: other, namespace: default}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
"#;

#[test]
fn selection_by_labels() {
    let snap = build(GATEWAYS);
    let p = router(json!({"istio": "ingressgateway", "app": "x"}));
    let names: Vec<&str> = snap
        .gateways_for(&p)
        .iter()
        .map(|g| g.name.as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert!(snap.gateways_for(&router(json!({}))).is_empty());
}

#[test]
fn merge_maps_ports_and_resolves_conflicts() {
    let snap = build(GATEWAYS);
    let p = router(json!({"istio": "ingressgateway"}));
    let merged = snap.merged_gateway(&p);
    let ports: Vec<u16> = merged.ports.iter().map(|p| p.port).collect();
    // 80 → 8080 and 443 → 8443 through the Service; 9000 has no Service port: legacy
    // selector, so the number itself.
    assert_eq!(ports, [8080, 8443, 9000]);
    let http = &merged.ports[0];
    assert_eq!(http.servers.len(), 2);
    assert_eq!(http.servers[0].route_name.as_deref(), Some("http.8080"));
    assert_eq!(http.servers[0].hosts, ["default/a.example.com"]);
    assert_eq!(http.servers[1].hosts, ["b.example.com"]);
    let https = &merged.ports[1];
    assert!(https.tls);
    // The third HTTPS server repeats a.example.com: skipped.
    let routes: Vec<_> = https
        .servers
        .iter()
        .map(|s| s.route_name.clone().unwrap())
        .collect();
    assert_eq!(
        routes,
        ["https.443.https-a.a.default", "https.443.https-b.b.default"]
    );
    // TCP first on 9000: the later HTTP server conflicts and is skipped.
    assert_eq!(merged.ports[2].servers.len(), 1);
    assert_eq!(merged.ports[2].servers[0].route_name, None);
}

#[test]
fn non_legacy_selector_skips_unmapped_ports() {
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {gateway.networking.k8s.io/gateway-name: gw}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
"#;
    let snap = build(yaml);
    let p = router(json!({"gateway.networking.k8s.io/gateway-name": "gw"}));
    assert_eq!(snap.gateways_for(&p).len(), 1);
    assert!(snap.merged_gateway(&p).ports.is_empty());
    // Only proxies of the Gateway's namespace.
    let md =
        json!({"NAMESPACE": "other", "LABELS": {"gateway.networking.k8s.io/gateway-name": "gw"}});
    let elsewhere =
        ProxyNode::parse("router~10.0.0.8~gw-1.other~other.svc.cluster.local", &md).unwrap();
    assert!(snap.gateways_for(&elsewhere).is_empty());
}

#[test]
fn host_rules() {
    let snap = build(GATEWAYS);
    let p = router(json!({"istio": "ingressgateway"}));
    let merged = snap.merged_gateway(&p);
    let a = &merged.ports[0].servers[0];
    assert_eq!(
        a.hosts_for_namespace("default"),
        [Hostname::new_unchecked("a.example.com")]
    );
    assert!(a.hosts_for_namespace("other").is_empty());
    let h = |s: &str| Hostname::new_unchecked(s);
    assert_eq!(
        gateway::intersect_hosts(&[h("*.example.com")], &[h("a.example.com"), h("x.org")]),
        [h("a.example.com")]
    );
    assert_eq!(
        gateway::intersect_hosts(&[h("a.example.com")], &[h("*.example.com")]),
        [h("a.example.com")]
    );
}

#[test]
fn secrets_tls_generic_and_cacert() {
    let yaml = r#"
apiVersion: v1
kind: Secret
metadata: {name: tls, namespace: istio-system}
type: kubernetes.io/tls
stringData: {tls.crt: CERT, tls.key: KEY}
---
apiVersion: v1
kind: Secret
metadata: {name: tls-cacert, namespace: istio-system}
stringData: {ca.crt: CA}
---
apiVersion: v1
kind: Secret
metadata: {name: generic, namespace: istio-system}
data: {cert: Q0VSVA==, key: S0VZ, cacert: Q0Ey}
---
apiVersion: v1
kind: Secret
metadata: {name: other, namespace: istio-system}
stringData: {password: x}
"#;
    let snap = build(yaml);
    let tls = snap.tls_secret("istio-system", "tls").unwrap();
    assert_eq!(
        (tls.cert_chain.as_str(), tls.private_key.as_str()),
        ("CERT", "KEY")
    );
    assert_eq!(tls.ca_cert.as_deref(), Some("CA"));
    let generic = snap.tls_secret("istio-system", "generic").unwrap();
    assert_eq!(generic.ca_cert.as_deref(), Some("CA2"));
    assert!(snap.tls_secret("istio-system", "other").is_none());
    assert!(snap.tls_secret("istio-system", "tls-cacert").is_none());
    assert_eq!(snap.secret_ca("istio-system", "tls-cacert"), Some("CA"));
    assert!(snap.tls_secret("default", "tls").is_none());
}
