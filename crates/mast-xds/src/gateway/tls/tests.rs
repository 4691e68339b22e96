//! Which Secret a `credentialName` reads and whether the proxy may: `kubernetes://`,
//! `kubernetes://ns/`, `kubernetes-gateway://` (hand-written and from the Gateway API
//! conversion under a ReferenceGrant) and `builtin://`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::listener::v3::FilterChain;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::CommonTlsContext;
use mast_model::ProxyNode;
use serde_json::json;

use super::super::listeners;
use super::super::tests::{INGRESS_SERVICE, ingress, listener, snapshot, tls_context};

const ISTIO: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: certs, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: a, protocol: HTTPS}
    hosts: [a.example.com]
    tls: {mode: SIMPLE, credentialName: "kubernetes://a-cert"}
  - port: {number: 443, name: b, protocol: HTTPS}
    hosts: [b.example.com]
    tls: {mode: SIMPLE, credentialName: "kubernetes://istio-system/b-cert"}
  - port: {number: 443, name: c, protocol: HTTPS}
    hosts: [c.example.com]
    tls: {mode: SIMPLE, credentialName: "kubernetes://default/c-cert"}
  - port: {number: 443, name: d, protocol: HTTPS}
    hosts: [d.example.com]
    tls: {mode: SIMPLE, credentialName: "kubernetes-gateway://default/c-cert"}
  - port: {number: 443, name: e, protocol: HTTPS}
    hosts: [e.example.com]
    tls: {mode: SIMPLE, credentialName: "kubernetes-gateway://istio-system/a-cert"}
  - port: {number: 443, name: f, protocol: HTTPS}
    hosts: [f.example.com]
    tls: {mode: MUTUAL, credentialName: "builtin://"}
  - port: {number: 443, name: g, protocol: HTTPS}
    hosts: [g.example.com]
    tls: {mode: SIMPLE, credentialName: "kubernetes-gateway://b-cert"}
---
apiVersion: v1
kind: Secret
metadata: {name: a-cert, namespace: istio-system}
type: kubernetes.io/tls
stringData: {tls.crt: A-CERT, tls.key: A-KEY}
---
apiVersion: v1
kind: Secret
metadata: {name: b-cert, namespace: istio-system}
type: Opaque
stringData: {cert: B-CERT, key: B-KEY}
---
apiVersion: v1
kind: Secret
metadata: {name: c-cert, namespace: default}
type: kubernetes.io/tls
stringData: {tls.crt: C-CERT, tls.key: C-KEY}
"#;

/// The chain serving SNI `host`, if any.
fn chain<'a>(chains: &'a [FilterChain], host: &str) -> Option<&'a FilterChain> {
    chains.iter().find(|c| {
        c.filter_chain_match
            .as_ref()
            .is_some_and(|m| m.server_names.iter().any(|n| n == host))
    })
}

fn common(chain: &FilterChain) -> CommonTlsContext {
    tls_context(chain).common_tls_context.unwrap()
}

/// The inlined certificate chain of a chain's first certificate.
fn inline_cert(chain: &FilterChain) -> String {
    match common(chain).tls_certificates[0]
        .certificate_chain
        .as_ref()
        .and_then(|d| d.specifier.clone())
    {
        Some(Specifier::InlineString(s)) => s,
        other => panic!("not inline: {other:?}"),
    }
}

#[test]
fn credential_names_resolve_as_istio_does() {
    let snap = snapshot(&format!("{INGRESS_SERVICE}---{ISTIO}"));
    let all = listeners(&snap, &ingress());
    let chains = &listener(&all, "0.0.0.0_8443").filter_chains;
    let cert = |h: &str| chain(chains, h).map(inline_cert);
    assert_eq!(
        cert("a.example.com").as_deref(),
        Some("A-CERT"),
        "kubernetes://name"
    );
    assert_eq!(
        cert("b.example.com").as_deref(),
        Some("B-CERT"),
        "kubernetes://own-ns/name"
    );
    assert!(
        chain(chains, "c.example.com").is_none(),
        "kubernetes:// in another namespace is refused"
    );
    assert!(
        chain(chains, "d.example.com").is_none(),
        "kubernetes-gateway:// across namespaces needs a ReferenceGrant (via the Gateway API)"
    );
    assert_eq!(
        cert("e.example.com").as_deref(),
        Some("A-CERT"),
        "kubernetes-gateway:// in the Gateway's and proxy's namespace"
    );
    assert!(
        chain(chains, "g.example.com").is_none(),
        "no namespace: invalid"
    );
    let f = common(chain(chains, "f.example.com").expect("builtin:// server"));
    assert!(f.tls_certificates.is_empty());
    let sds: Vec<&str> = f
        .tls_certificate_sds_secret_configs
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(sds, ["default"], "builtin:// is the workload certificate");
    assert!(
        f.validation_context_type.is_some(),
        "MUTUAL checks clients against ROOTCA"
    );
}

const GATEWAY_API: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: gw-istio, namespace: apps}
spec:
  selector: {gateway.networking.k8s.io/gateway-name: gw}
  ports: [{name: https, port: 443, targetPort: 8443}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: apps}
spec:
  gatewayClassName: istio
  listeners:
  - name: https
    port: 443
    protocol: HTTPS
    hostname: web.example.com
    tls:
      mode: Terminate
      certificateRefs: [{name: shared, namespace: certs}]
---
apiVersion: v1
kind: Secret
metadata: {name: shared, namespace: certs}
type: kubernetes.io/tls
stringData: {tls.crt: SHARED-CERT, tls.key: SHARED-KEY}
"#;

const GRANT: &str = r#"
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: gw-certs, namespace: certs}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: apps}]
  to: [{group: "", kind: Secret}]
"#;

fn gateway_proxy() -> ProxyNode {
    ProxyNode::parse(
        "router~10.0.0.9~gw-istio-1.apps~apps.svc.cluster.local",
        &json!({"NAMESPACE": "apps", "LABELS": {"gateway.networking.k8s.io/gateway-name": "gw"}}),
    )
    .unwrap()
}

#[test]
fn gateway_api_certificate_in_another_namespace_under_a_reference_grant() {
    let snap = snapshot(&format!("{GATEWAY_API}---{GRANT}"));
    let all = listeners(&snap, &gateway_proxy());
    let chains = &listener(&all, "0.0.0.0_8443").filter_chains;
    let c = chain(chains, "web.example.com").expect("the HTTPS listener's chain");
    assert_eq!(inline_cert(c), "SHARED-CERT");

    let denied = snapshot(GATEWAY_API);
    let all = listeners(&denied, &gateway_proxy());
    assert!(
        all.iter().flat_map(|l| &l.filter_chains).all(|c| chain(
            std::slice::from_ref(c),
            "web.example.com"
        )
        .is_none()),
        "without the grant the certificate is not served: {all:?}"
    );
}
