//! The egress pattern (Istio's task "egress gateway with TLS origination"): a `MESH_EXTERNAL`
//! ServiceEntry for `external.example` (endpoint on 127.0.0.1), a VirtualService bound to
//! `mesh` and the egress Gateway sending the sidecar's traffic for the host to the egress
//! gateway and the gateway's to `external.example:443`, a DestinationRule originating TLS
//! there (SIMPLE with file CA and SNI; MUTUAL with `credentialName`), and REGISTRY_ONLY on
//! the sidecar. Checks the sidecar's and the gateway's output.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use mast_model::{MeshSnapshot, ProxyNode};
use prost::Message;
use serde_json::json;

use super::tests::{first_cluster, gateway_at, listener, snapshot, table, typed};
use super::{listeners, routes};

const EGRESS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  ports:
  - {name: http2, port: 80, targetPort: 18080}
  - {name: https, port: 443, targetPort: 18443}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: default}
spec:
  hosts: [external.example]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 443, name: https, protocol: HTTPS}
  endpoints:
  - address: 127.0.0.1
    ports: {http: 28080, https: 28443}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [external.example]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egressgateway-for-external, namespace: default}
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets: [{name: external}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: external-through-egress, namespace: default}
spec:
  hosts: [external.example]
  gateways: [istio-system/istio-egressgateway, mesh]
  http:
  - match: [{gateways: [mesh], port: 80}]
    route:
    - destination: {host: istio-egressgateway.istio-system.svc.cluster.local, subset: external, port: {number: 80}}
  - match: [{gateways: [istio-system/istio-egressgateway], port: 80}]
    route:
    - destination: {host: external.example, port: {number: 443}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"#;

const SIMPLE_ORIGINATION: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: originate-tls, namespace: default}
spec:
  host: external.example
  trafficPolicy:
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: SIMPLE, sni: external.example, caCertificates: /etc/ca/external.pem}
"#;

const MUTUAL_ORIGINATION: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: originate-mtls, namespace: istio-system}
spec:
  host: external.example
  exportTo: ["."]
  trafficPolicy:
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: MUTUAL, credentialName: client-credential, sni: external.example}
---
apiVersion: v1
kind: Secret
metadata: {name: client-credential, namespace: istio-system}
stringData: {tls.crt: CLIENT-CERT, tls.key: CLIENT-KEY, ca.crt: EXTERNAL-CA}
"#;

fn egress_gateway() -> ProxyNode {
    let mut p = gateway_at("10.0.0.20", json!({"istio": "egressgateway"}));
    p.id = "router~10.0.0.20~egress-1.istio-system~istio-system.svc.cluster.local".into();
    p.workload = "egress-1".into();
    p
}

fn sidecar() -> ProxyNode {
    ProxyNode::parse(
        "sidecar~10.0.0.5~sleep-1.default~default.svc.cluster.local",
        &json!({"NAMESPACE": "default", "LABELS": {"app": "sleep"}}),
    )
    .unwrap()
}

fn upstream_tls(c: &Cluster) -> UpstreamTlsContext {
    let ts = c.transport_socket.as_ref().expect("TLS origination");
    let Some(ConfigType::TypedConfig(any)) = &ts.config_type else {
        panic!()
    };
    UpstreamTlsContext::decode(any.value.as_slice()).unwrap()
}

fn cluster<'a>(all: &'a [Cluster], name: &str) -> &'a Cluster {
    all.iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no cluster {name}"))
}

fn mesh(extra: &str) -> MeshSnapshot {
    snapshot(&format!("{EGRESS}---{extra}"))
}

#[test]
fn sidecar_sends_the_host_to_the_egress_gateway_and_blocks_the_rest() {
    let snap = mesh(SIMPLE_ORIGINATION);
    let tables = crate::route::routes(&snap, &sidecar());
    let t = table(&tables, "80");
    let vh = t
        .virtual_hosts
        .iter()
        .find(|v| v.domains.iter().any(|d| d == "external.example"))
        .expect("external.example vhost");
    assert_eq!(
        vh.routes.len(),
        1,
        "only the mesh match applies on the sidecar"
    );
    assert_eq!(
        first_cluster(vh),
        "outbound|80|external|istio-egressgateway.istio-system.svc.cluster.local"
    );
    // REGISTRY_ONLY: unknown HTTP hosts get 502, other traffic BlackHoleCluster.
    let block = t
        .virtual_hosts
        .iter()
        .find(|v| v.name == "block_all")
        .unwrap();
    assert!(matches!(
        block.routes[0].action,
        Some(Action::DirectResponse(ref d)) if d.status == 502
    ));
    let lis = crate::listener::listeners(&snap, &sidecar());
    let vo = listener(&lis, "virtualOutbound");
    let tcp: TcpProxy = typed(&vo.filter_chains[0].filters[0]);
    assert_eq!(
        tcp.cluster_specifier,
        Some(ClusterSpecifier::Cluster("BlackHoleCluster".into()))
    );
    let clusters = crate::cluster::clusters(&snap, &sidecar());
    let c = cluster(
        &clusters,
        "outbound|80|external|istio-egressgateway.istio-system.svc.cluster.local",
    );
    assert!(
        c.transport_socket.is_none(),
        "plain HTTP (auto mTLS only with endpoints)"
    );
}

#[test]
fn egress_gateway_routes_to_the_external_host_and_originates_tls() {
    let snap = mesh(SIMPLE_ORIGINATION);
    let gw = egress_gateway();
    let lis = listeners(&snap, &gw);
    let names: Vec<&str> = lis.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["0.0.0.0_18080"]);
    let tables = routes(&snap, &gw);
    let t = table(&tables, "http.18080");
    assert_eq!(t.virtual_hosts.len(), 1);
    let vh = &t.virtual_hosts[0];
    assert_eq!(vh.name, "external.example:80");
    assert_eq!(
        vh.routes.len(),
        1,
        "only the gateway match applies on the gateway"
    );
    assert_eq!(first_cluster(vh), "outbound|443||external.example");
    let clusters = crate::cluster::clusters(&snap, &gw);
    let ctx = upstream_tls(cluster(&clusters, "outbound|443||external.example"));
    assert_eq!(ctx.sni, "external.example");
    let Some(ValidationContextType::ValidationContext(v)) =
        ctx.common_tls_context.unwrap().validation_context_type
    else {
        panic!()
    };
    assert_eq!(
        v.trusted_ca.unwrap().specifier,
        Some(Specifier::Filename("/etc/ca/external.pem".into()))
    );
    assert!(
        cluster(&clusters, "outbound|80||external.example")
            .transport_socket
            .is_none()
    );
    assert!(!clusters.iter().any(|c| c.name.starts_with("inbound|")));
}

#[test]
fn mutual_origination_inlines_the_credential_on_the_gateway_only() {
    let snap = mesh(MUTUAL_ORIGINATION);
    let clusters = crate::cluster::clusters(&snap, &egress_gateway());
    let ctx = upstream_tls(cluster(&clusters, "outbound|443||external.example"));
    let common = ctx.common_tls_context.unwrap();
    let cert = &common.tls_certificates[0];
    assert_eq!(
        cert.certificate_chain.as_ref().unwrap().specifier,
        Some(Specifier::InlineString("CLIENT-CERT".into()))
    );
    assert_eq!(
        cert.private_key.as_ref().unwrap().specifier,
        Some(Specifier::InlineString("CLIENT-KEY".into()))
    );
    let Some(ValidationContextType::ValidationContext(v)) = common.validation_context_type else {
        panic!()
    };
    assert_eq!(
        v.trusted_ca.unwrap().specifier,
        Some(Specifier::InlineString("EXTERNAL-CA".into()))
    );
    // A credential on a gateway whose Secret is missing: no TLS rather than a broken one.
    let snap = mesh(&MUTUAL_ORIGINATION.replace("name: client-credential,", "name: other,"));
    let clusters = crate::cluster::clusters(&snap, &egress_gateway());
    assert!(
        cluster(&clusters, "outbound|443||external.example")
            .transport_socket
            .is_none()
    );
}
