//! Unit tests of the non-HTTP gateway servers: TCP, TLS terminated, PASSTHROUGH and
//! AUTO_PASSTHROUGH (with its SNI clusters and their endpoints), and a bad Gateway leaving
//! the good servers intact.

use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier;

use super::cluster::{sni_clusters, sni_endpoints};
use super::tests::{INGRESS_SERVICE, ingress, listener, snapshot, tls_context, typed};
use super::{listeners, routes};

const L4: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: l4, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ["*"]
  - port: {number: 443, name: tls-pass, protocol: TLS}
    hosts: ["*.pass.example.com"]
    tls: {mode: PASSTHROUGH}
  - port: {number: 15443, name: tls-auto, protocol: TLS}
    hosts: ["*.local"]
    tls: {mode: AUTO_PASSTHROUGH}
  - port: {number: 9443, name: tls-term, protocol: TLS}
    hosts: ["db.example.com"]
    tls: {mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp, namespace: default}
spec:
  hosts: ["*"]
  gateways: [l4]
  tcp:
  - match: [{port: 31400}]
    route:
    - {destination: {host: reviews, port: {number: 9080}}, weight: 80}
    - {destination: {host: ratings, port: {number: 9080}}, weight: 20}
  - match: [{port: 9443}]
    route: [{destination: {host: ratings, port: {number: 9080}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pass, namespace: default}
spec:
  hosts: ["a.pass.example.com", "b.pass.example.com"]
  gateways: [l4]
  tls:
  - match: [{port: 443, sniHosts: [a.pass.example.com]}]
    route: [{destination: {host: reviews, port: {number: 9080}}}]
  - match: [{port: 443, sniHosts: [b.pass.example.com]}]
    route: [{destination: {host: ratings, port: {number: 9080}}}]
  - match: [{port: 443, sniHosts: [a.pass.example.com]}]
    route: [{destination: {host: ratings, port: {number: 9080}}}]
"#;

fn l4() -> mast_model::MeshSnapshot {
    snapshot(&format!("{INGRESS_SERVICE}---{L4}"))
}

fn tcp_cluster(f: &envoy_types::pb::envoy::config::listener::v3::Filter) -> String {
    match typed::<TcpProxy>(f).cluster_specifier {
        Some(ClusterSpecifier::Cluster(c)) => c,
        other => panic!("{other:?}"),
    }
}

#[test]
fn tcp_server_routes_by_tcp_rules_with_weights() {
    let all = listeners(&l4(), &ingress());
    // No Service port for 31400: legacy selector, the number itself.
    let l = listener(&all, "0.0.0.0_31400");
    assert!(l.listener_filters.is_empty());
    assert_eq!(l.filter_chains.len(), 1);
    let tcp: TcpProxy = typed(&l.filter_chains[0].filters[0]);
    let Some(ClusterSpecifier::WeightedClusters(w)) = tcp.cluster_specifier else {
        panic!("weighted")
    };
    let names: Vec<(&str, u32)> = w
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight))
        .collect();
    assert_eq!(
        names,
        [
            ("outbound|9080||reviews.default.svc.cluster.local", 80),
            ("outbound|9080||ratings.default.svc.cluster.local", 20)
        ]
    );
}

#[test]
fn passthrough_chains_per_sni_match() {
    let all = listeners(&l4(), &ingress());
    let l = listener(&all, "0.0.0.0_8443");
    assert_eq!(
        l.listener_filters[0].name,
        "envoy.filters.listener.tls_inspector"
    );
    let chains: Vec<(Vec<String>, String)> = l
        .filter_chains
        .iter()
        .map(|c| {
            (
                c.filter_chain_match.clone().unwrap().server_names,
                tcp_cluster(&c.filters[0]),
            )
        })
        .collect();
    // The repeated SNI host is skipped (first wins).
    assert_eq!(
        chains,
        [
            (
                vec!["a.pass.example.com".to_owned()],
                "outbound|9080||reviews.default.svc.cluster.local".to_owned()
            ),
            (
                vec!["b.pass.example.com".to_owned()],
                "outbound|9080||ratings.default.svc.cluster.local".to_owned()
            ),
        ]
    );
    assert!(
        l.filter_chains.iter().all(|c| c.transport_socket.is_none()),
        "not terminated"
    );
    assert!(
        routes(&l4(), &ingress()).is_empty(),
        "no HTTP servers, no tables"
    );
}

#[test]
fn tls_terminated_tcp_server() {
    let all = listeners(&l4(), &ingress());
    let l = listener(&all, "0.0.0.0_9443");
    let chain = &l.filter_chains[0];
    assert_eq!(
        chain.filter_chain_match.as_ref().unwrap().server_names,
        ["db.example.com"]
    );
    let ctx = tls_context(chain);
    assert!(!ctx.common_tls_context.unwrap().tls_certificates.is_empty());
    assert_eq!(
        tcp_cluster(&chain.filters[0]),
        "outbound|9080||ratings.default.svc.cluster.local"
    );
}

#[test]
fn auto_passthrough_uses_sni_cluster_and_sni_named_clusters() {
    let snap = l4();
    let all = listeners(&snap, &ingress());
    let l = listener(&all, "0.0.0.0_15443");
    let chain = &l.filter_chains[0];
    assert_eq!(
        chain.filter_chain_match.as_ref().unwrap().server_names,
        ["*.local"]
    );
    let names: Vec<&str> = chain.filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "envoy.filters.network.sni_cluster",
            "envoy.filters.network.tcp_proxy"
        ]
    );
    let clusters = sni_clusters(&snap, &ingress());
    let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
    assert!(
        names.contains(&"outbound_.9080_._.reviews.default.svc.cluster.local"),
        "{names:?}"
    );
    assert!(
        names.contains(&"outbound_.9080_._.ratings.default.svc.cluster.local"),
        "{names:?}"
    );
    assert!(
        clusters
            .iter()
            .all(|c| c.transport_socket.is_none() && c.transport_socket_matches.is_empty())
    );
    let c = &clusters[0];
    assert_eq!(c.eds_cluster_config.as_ref().unwrap().service_name, c.name);
    let eps = sni_endpoints(&snap, &ingress());
    assert_eq!(
        eps.len(),
        clusters
            .iter()
            .filter(|c| c.eds_cluster_config.is_some())
            .count()
    );
}

#[test]
fn no_auto_passthrough_no_sni_clusters() {
    let snap = snapshot(INGRESS_SERVICE);
    assert!(sni_clusters(&snap, &ingress()).is_empty());
    assert!(sni_endpoints(&snap, &ingress()).is_empty());
    let all = crate::cluster::clusters(&snap, &ingress());
    assert!(
        all.iter().all(|c| !c.name.starts_with("inbound|")),
        "no inbound clusters on gateways"
    );
    assert!(all.iter().any(|c| c.name == "BlackHoleCluster"));
    assert!(all.iter().any(|c| c.name == "PassthroughCluster"));
}

#[test]
fn bad_servers_leave_the_others_intact() {
    let yaml = format!(
        "{INGRESS_SERVICE}---{}",
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: good, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: partial, namespace: istio-system}
spec:
  selector: {gateway.networking.k8s.io/gateway-name: x, istio: ingressgateway}
  servers:
  - port: {number: 7000, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["x.example.com"]
    tls: {mode: SIMPLE, credentialName: nowhere}
  - port: {number: 80, name: tcp, protocol: TCP}
    hosts: ["*"]
"#
    );
    let p = super::tests::gateway_at(
        "10.0.0.9",
        serde_json::json!({"istio": "ingressgateway", "gateway.networking.k8s.io/gateway-name": "x"}),
    );
    let snap = snapshot(&yaml);
    let merged = snap.merged_gateway(&p);
    // 7000 maps to no Service port under a non-legacy selector; TCP on 80 conflicts.
    assert_eq!(merged.skipped.len(), 2, "{:?}", merged.skipped);
    let all = listeners(&snap, &p);
    let names: Vec<&str> = all.iter().map(|l| l.name.as_str()).collect();
    // 8443's only server has a missing secret: no listener; 8080 keeps working.
    assert_eq!(names, ["0.0.0.0_8080"]);
    let tables = routes(&snap, &p);
    assert!(tables.iter().any(|t| t.name == "http.8080"));
}
