//! Everything mastd generates for gateway proxies (`router` nodes) converts in mast-proxy:
//! an ingress gateway with every server kind (HTTP with `httpsRedirect`, HTTPS SIMPLE from
//! files with TLS 1.2 and a cipher list, `credentialName` from a Secret, MUTUAL with SANs, a
//! certificate hash and a CRL, OPTIONAL_MUTUAL, ISTIO_MUTUAL, TLS PASSTHROUGH with weights,
//! AUTO_PASSTHROUGH, TCP, terminated TLS) and an egress gateway originating TLS. A resource
//! mastd emits that the proxy would NACK fails here with its field path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
use mast_proxy::cluster::{Assignment, ClusterConfig};
use mast_proxy::listener::ListenerConfig;
use mast_proxy::route::RouteTable;
use mast_test_support::TempDir;
use prost::Message;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::json;

/// PEM files and texts of a CA and one server certificate.
struct Certs {
    ca: String,
    cert: String,
    key: String,
    dir: TempDir,
}

impl Certs {
    fn new() -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["*.example.com".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let dir = TempDir::new("mast-generated-router").unwrap();
        let certs = Certs {
            ca: ca.pem(),
            cert: cert.pem(),
            key: key.serialize_pem(),
            dir,
        };
        std::fs::write(certs.path("ca.pem"), &certs.ca).unwrap();
        std::fs::write(certs.path("cert.pem"), &certs.cert).unwrap();
        std::fs::write(certs.path("key.pem"), &certs.key).unwrap();
        let crl = rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: 1u64.into(),
            issuing_distribution_point: None,
            revoked_certs: Vec::new(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&ca)
        .unwrap();
        std::fs::write(certs.path("crl.pem"), crl.pem().unwrap()).unwrap();
        certs
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

fn mesh(c: &Certs) -> String {
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "web-cert", "namespace": "istio-system"},
        "stringData": {"tls.crt": c.cert, "tls.key": c.key, "ca.crt": c.ca}});
    let hash = "df:6f:f7:2f:e9:11:65:21:26:8f:6f:2d:d4:96:6f:51:df:47:98:83:fe:70:37:b3:9f:75:91:6a:c3:04:9d:1a";
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: istio-ingressgateway, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  ports:
  - {{name: http2, port: 80, targetPort: 8080}}
  - {{name: https, port: 443, targetPort: 8443}}
  - {{name: tls-passthrough, port: 9443, targetPort: 9443}}
  - {{name: tls, port: 15443, targetPort: 15443}}
  - {{name: tcp, port: 31400, targetPort: 31400}}
  - {{name: tls-term, port: 8444, targetPort: 8444}}
---
apiVersion: v1
kind: Service
metadata: {{name: istio-egressgateway, namespace: istio-system}}
spec:
  selector: {{istio: egressgateway}}
  ports:
  - {{name: http2, port: 80, targetPort: 8080}}
---
apiVersion: v1
kind: Service
metadata: {{name: reviews, namespace: default}}
spec:
  selector: {{app: reviews}}
  ports:
  - {{name: http, port: 9080}}
---
apiVersion: v1
kind: Service
metadata: {{name: ratings, namespace: default}}
spec:
  selector: {{app: ratings}}
  ports:
  - {{name: http, port: 9080}}
---
{secret}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: web, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: ["*.example.com"]
  - port: {{number: 80, name: http-secure, protocol: HTTP}}
    hosts: ["secure.example.org"]
    tls: {{httpsRedirect: true}}
  - port: {{number: 443, name: https-file, protocol: HTTPS}}
    hosts: ["reviews.example.com"]
    tls:
      mode: SIMPLE
      serverCertificate: {cert}
      privateKey: {key}
      minProtocolVersion: TLSV1_2
      maxProtocolVersion: TLSV1_2
      cipherSuites: [ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-RSA-AES256-GCM-SHA384]
  - port: {{number: 443, name: https-secret, protocol: HTTPS}}
    hosts: ["ratings.example.com"]
    tls: {{mode: SIMPLE, credentialName: web-cert}}
  - port: {{number: 443, name: https-mutual, protocol: HTTPS}}
    hosts: ["mutual.example.com"]
    tls:
      mode: MUTUAL
      serverCertificate: {cert}
      privateKey: {key}
      caCertificates: {ca}
      caCrl: {crl}
      subjectAltNames: [client.example.com]
      verifyCertificateHash: ["{hash}"]
  - port: {{number: 443, name: https-optional, protocol: HTTPS}}
    hosts: ["optional.example.com"]
    tls: {{mode: OPTIONAL_MUTUAL, credentialName: web-cert}}
  - port: {{number: 443, name: https-mesh, protocol: HTTPS}}
    hosts: ["mesh.example.com"]
    tls: {{mode: ISTIO_MUTUAL}}
  - port: {{number: 9443, name: tls-passthrough, protocol: TLS}}
    hosts: ["db.example.com"]
    tls: {{mode: PASSTHROUGH}}
  - port: {{number: 15443, name: tls, protocol: TLS}}
    hosts: ["*.local"]
    tls: {{mode: AUTO_PASSTHROUGH}}
  - port: {{number: 31400, name: tcp, protocol: TCP}}
    hosts: ["*"]
  - port: {{number: 8444, name: tls-term, protocol: TLS}}
    hosts: ["term.example.com"]
    tls: {{mode: SIMPLE, credentialName: web-cert}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: default}}
spec:
  hosts: ["reviews.example.com", "ratings.example.com", "mutual.example.com",
          "optional.example.com", "mesh.example.com", "secure.example.org"]
  gateways: [web]
  http:
  - match: [{{uri: {{prefix: /ratings}}}}]
    route: [{{destination: {{host: ratings}}}}]
  - route: [{{destination: {{host: reviews}}, weight: 80}}, {{destination: {{host: ratings}}, weight: 20}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: db, namespace: default}}
spec:
  hosts: ["db.example.com"]
  gateways: [web]
  tls:
  - match: [{{sniHosts: [db.example.com]}}]
    route: [{{destination: {{host: reviews, port: {{number: 9080}}}}, weight: 50}},
            {{destination: {{host: ratings, port: {{number: 9080}}}}, weight: 50}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: tcp, namespace: default}}
spec:
  hosts: ["*"]
  gateways: [web]
  tcp:
  - match: [{{port: 31400}}]
    route: [{{destination: {{host: ratings, port: {{number: 9080}}}}}}]
  - match: [{{port: 8444}}]
    route: [{{destination: {{host: reviews, port: {{number: 9080}}}}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: egress, namespace: istio-system}}
spec:
  selector: {{istio: egressgateway}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: ["api.example.com"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: api, namespace: default}}
spec:
  hosts: [api.example.com]
  ports: [{{number: 443, name: https, protocol: HTTPS}}, {{number: 80, name: http, protocol: HTTP}}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: api, namespace: default}}
spec:
  hosts: [api.example.com]
  gateways: [istio-system/egress]
  http:
  - route: [{{destination: {{host: api.example.com, port: {{number: 443}}}}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: api, namespace: default}}
spec:
  host: api.example.com
  trafficPolicy:
    portLevelSettings:
    - port: {{number: 443}}
      tls: {{mode: SIMPLE, sni: api.example.com, caCertificates: {ca}, subjectAltNames: [api.example.com]}}
"#,
        cert = c.path("cert.pem"),
        key = c.path("key.pem"),
        ca = c.path("ca.pem"),
        crl = c.path("crl.pem"),
    )
}

fn snapshot(yaml: &str) -> MeshSnapshot {
    let out = mast_config::load_str(yaml, "gateways.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "load: {:?}", out.diagnostics);
    MeshSnapshot::build(&out.resources, SnapshotOptions::default(), 1)
}

fn router(name: &str, labels: serde_json::Value) -> ProxyNode {
    ProxyNode::parse(
        &format!("router~127.0.0.1~{name}.istio-system~istio-system.svc.cluster.local"),
        &json!({"NAMESPACE": "istio-system", "LABELS": labels}),
    )
    .expect("node")
}

/// Converts every generated resource; returns the errors and the listener names.
fn convert_all(snap: &MeshSnapshot, proxy: &ProxyNode) -> (Vec<String>, Vec<Listener>) {
    let mut errors = Vec::new();
    for r in mast_xds::generate(snap, proxy, mast_xds::CLUSTER_TYPE) {
        let c = Cluster::decode(r.resource.value.as_slice()).unwrap();
        if let Err(e) = ClusterConfig::from_proto(&c) {
            errors.push(e.to_string());
        }
    }
    for r in mast_xds::generate(snap, proxy, mast_xds::ENDPOINT_TYPE) {
        let a = ClusterLoadAssignment::decode(r.resource.value.as_slice()).unwrap();
        if let Err(e) = Assignment::from_proto(&a) {
            errors.push(e.to_string());
        }
    }
    let mut listeners = Vec::new();
    for r in mast_xds::generate(snap, proxy, mast_xds::LISTENER_TYPE) {
        let l = Listener::decode(r.resource.value.as_slice()).unwrap();
        if let Err(e) = ListenerConfig::from_proto(&l) {
            errors.push(e.to_string());
        }
        listeners.push(l);
    }
    for r in mast_xds::generate(snap, proxy, mast_xds::ROUTE_TYPE) {
        let t = RouteConfiguration::decode(r.resource.value.as_slice()).unwrap();
        if let Err(e) = RouteTable::from_proto(&t) {
            errors.push(e.to_string());
        }
    }
    (errors, listeners)
}

#[test]
fn every_gateway_server_kind_converts() {
    let certs = Certs::new();
    let snap = snapshot(&mesh(&certs));
    let ingress = router("ingress", json!({"istio": "ingressgateway"}));
    let (errors, listeners) = convert_all(&snap, &ingress);
    assert!(
        errors.is_empty(),
        "mast-proxy would NACK:\n{}",
        errors.join("\n")
    );
    let mut names: Vec<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "127.0.0.1_15443",
            "127.0.0.1_31400",
            "127.0.0.1_8080",
            "127.0.0.1_8443",
            "127.0.0.1_8444",
            "127.0.0.1_9443",
        ],
        "one listener per server port"
    );
    let https = listeners
        .iter()
        .find(|l| l.name == "127.0.0.1_8443")
        .unwrap();
    assert_eq!(https.filter_chains.len(), 5, "one chain per HTTPS server");

    let egress = router("egress", json!({"istio": "egressgateway"}));
    let (errors, listeners) = convert_all(&snap, &egress);
    assert!(
        errors.is_empty(),
        "egress: mast-proxy would NACK:\n{}",
        errors.join("\n")
    );
    assert_eq!(listeners.len(), 1);
}
