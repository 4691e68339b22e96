//! Unit tests of TLS-terminating gateway servers: HTTPS SIMPLE with files and with
//! `credentialName`, MUTUAL, OPTIONAL_MUTUAL, ISTIO_MUTUAL, a missing Secret, per-server route
//! tables and HTTP/2 connection coalescing between servers sharing a certificate.

use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::tls_parameters::TlsProtocol;

use super::tests::{
    HTTP_HTTPS, INGRESS_SERVICE, first_cluster, http_https, ingress, listener, rds, snapshot,
    table, tls_context,
};
use super::{listeners, routes};

#[test]
fn https_simple_file_certificates() {
    let all = listeners(&http_https(), &ingress());
    let l = listener(&all, "0.0.0.0_8443");
    assert_eq!(l.listener_filters.len(), 1);
    assert_eq!(
        l.listener_filters[0].name,
        "envoy.filters.listener.tls_inspector"
    );
    assert_eq!(l.filter_chains.len(), 2, "one chain per server certificate");
    let chain = &l.filter_chains[0];
    let m = chain.filter_chain_match.as_ref().unwrap();
    assert_eq!(m.server_names, ["reviews.example.com"]);
    assert_eq!(rds(chain), "https.443.https.web.default");
    let ctx = tls_context(chain);
    assert!(!ctx.require_client_certificate.unwrap().value);
    let common = ctx.common_tls_context.unwrap();
    assert_eq!(common.alpn_protocols, ["h2", "http/1.1"]);
    let cert = &common.tls_certificates[0];
    assert_eq!(
        cert.certificate_chain.as_ref().unwrap().specifier,
        Some(Specifier::Filename("/etc/certs/reviews.pem".into()))
    );
    assert_eq!(
        cert.private_key.as_ref().unwrap().specifier,
        Some(Specifier::Filename("/etc/certs/reviews-key.pem".into()))
    );
    assert!(
        common.validation_context_type.is_none(),
        "SIMPLE checks no client"
    );
    let params = common.tls_params.unwrap();
    assert_eq!(
        params.tls_minimum_protocol_version,
        TlsProtocol::TlSv12 as i32
    );
    assert_eq!(
        params.tls_maximum_protocol_version,
        TlsProtocol::TlSv13 as i32
    );
    assert_eq!(
        params.cipher_suites,
        ["ECDHE-RSA-AES128-GCM-SHA256", "AES256-GCM-SHA384"],
        "duplicates dropped, order kept"
    );
}

#[test]
fn https_credential_name_is_inlined_from_the_gateway_namespace() {
    let all = listeners(&http_https(), &ingress());
    let chain = &listener(&all, "0.0.0.0_8443").filter_chains[1];
    assert_eq!(
        chain.filter_chain_match.as_ref().unwrap().server_names,
        ["ratings.example.com"]
    );
    assert_eq!(rds(chain), "https.443.https-ratings.web.default");
    let common = tls_context(chain).common_tls_context.unwrap();
    let cert = &common.tls_certificates[0];
    assert_eq!(
        cert.certificate_chain.as_ref().unwrap().specifier,
        Some(Specifier::InlineString("RATINGS-CERT".into()))
    );
    assert_eq!(
        cert.private_key.as_ref().unwrap().specifier,
        Some(Specifier::InlineString("RATINGS-KEY".into()))
    );
    assert!(
        common.tls_params.is_none(),
        "no versions or ciphers set: Envoy's defaults"
    );
    let tables = routes(&http_https(), &ingress());
    let t = table(&tables, "https.443.https-ratings.web.default");
    assert_eq!(t.virtual_hosts[0].name, "ratings.example.com:443");
    assert_eq!(
        first_cluster(&t.virtual_hosts[0]),
        "outbound|9080||ratings.default.svc.cluster.local"
    );
}

#[test]
fn https_tables_are_per_server() {
    let tables = routes(&http_https(), &ingress());
    let names: Vec<&str> = tables.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "http.8080",
            "https.443.https-ratings.web.default",
            "https.443.https.web.default"
        ]
    );
    let t = table(&tables, "https.443.https.web.default");
    let vhosts: Vec<&str> = t.virtual_hosts.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(vhosts, ["reviews.example.com:443"]);
}

#[test]
fn missing_secret_skips_only_that_server() {
    let yaml = format!(
        "{INGRESS_SERVICE}---{}",
        HTTP_HTTPS.replace("credentialName: ratings-cert", "credentialName: missing")
    );
    let all = listeners(&snapshot(&yaml), &ingress());
    let l = listener(&all, "0.0.0.0_8443");
    assert_eq!(l.filter_chains.len(), 1);
    assert_eq!(rds(&l.filter_chains[0]), "https.443.https.web.default");
    assert!(all.iter().any(|l| l.name == "0.0.0.0_8080"));
}

#[test]
fn mutual_validates_clients() {
    let yaml = format!(
        "{INGRESS_SERVICE}---{}",
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: mtls, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["a.example.com"]
    tls:
      mode: MUTUAL
      serverCertificate: /c.pem
      privateKey: /k.pem
      caCertificates: /ca.pem
      subjectAltNames: [client.example.com, "spiffe://cluster.local/ns/a/sa/b"]
      verifyCertificateSpki: ["2IEpPESU/mmC30tPsnOfbGKdwKdQfN/wZw1QWpjGlmQ="]
      verifyCertificateHash: ["df6ff72fe9116521268f6f2dd4966f51df479883fe7037b39f75916ac3049d1a"]
  - port: {number: 443, name: https-opt, protocol: HTTPS}
    hosts: ["b.example.com"]
    tls: {mode: OPTIONAL_MUTUAL, credentialName: b-cert}
---
apiVersion: v1
kind: Secret
metadata: {name: b-cert, namespace: istio-system}
stringData: {cert: B, key: BK, cacert: BCA}
"#
    );
    let all = listeners(&snapshot(&yaml), &ingress());
    let l = listener(&all, "0.0.0.0_8443");
    let ctx = tls_context(&l.filter_chains[0]);
    assert!(ctx.require_client_certificate.unwrap().value);
    let Some(ValidationContextType::ValidationContext(v)) =
        ctx.common_tls_context.unwrap().validation_context_type
    else {
        panic!("no validation context")
    };
    assert_eq!(
        v.trusted_ca.unwrap().specifier,
        Some(Specifier::Filename("/ca.pem".into()))
    );
    let sans: Vec<i32> = v
        .match_typed_subject_alt_names
        .iter()
        .map(|m| m.san_type)
        .collect();
    assert_eq!(sans, [2, 3], "DNS then URI");
    assert_eq!(v.verify_certificate_spki.len(), 1);
    assert_eq!(v.verify_certificate_hash.len(), 1);
    let ctx = tls_context(&l.filter_chains[1]);
    assert!(!ctx.require_client_certificate.unwrap().value, "optional");
    let Some(ValidationContextType::ValidationContext(v)) =
        ctx.common_tls_context.unwrap().validation_context_type
    else {
        panic!("no validation context")
    };
    assert_eq!(
        v.trusted_ca.unwrap().specifier,
        Some(Specifier::InlineString("BCA".into()))
    );
}

#[test]
fn istio_mutual_uses_the_workload_certificate() {
    let yaml = format!(
        "{INGRESS_SERVICE}---{}",
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ew, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: ISTIO_MUTUAL}
"#
    );
    let all = listeners(&snapshot(&yaml), &ingress());
    let chain = &listener(&all, "0.0.0.0_8443").filter_chains[0];
    assert!(chain.filter_chain_match.is_none(), "`*` matches any SNI");
    let ctx = tls_context(chain);
    assert!(ctx.require_client_certificate.unwrap().value);
    let common = ctx.common_tls_context.unwrap();
    assert_eq!(common.tls_certificate_sds_secret_configs[0].name, "default");
    let Some(ValidationContextType::CombinedValidationContext(v)) = common.validation_context_type
    else {
        panic!("no combined validation context")
    };
    assert_eq!(
        v.validation_context_sds_secret_config.unwrap().name,
        "ROOTCA"
    );
}

#[test]
fn servers_sharing_a_certificate_share_virtual_hosts() {
    let yaml = format!(
        "{INGRESS_SERVICE}---{}",
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: a, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["reviews.example.com"]
    tls: {mode: SIMPLE, credentialName: wildcard}
  - port: {number: 443, name: https-other, protocol: HTTPS}
    hosts: ["other.example.com"]
    tls: {mode: SIMPLE, credentialName: other}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: b, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["ratings.example.com"]
    tls: {mode: SIMPLE, credentialName: wildcard}
---
apiVersion: v1
kind: Secret
metadata: {name: wildcard, namespace: istio-system}
stringData: {tls.crt: W, tls.key: WK}
---
apiVersion: v1
kind: Secret
metadata: {name: other, namespace: istio-system}
stringData: {tls.crt: O, tls.key: OK}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: default}
spec:
  hosts: ["reviews.example.com", "ratings.example.com", "other.example.com"]
  gateways: [a, b]
  http:
  - route: [{destination: {host: reviews}}]
"#
    );
    let snap = snapshot(&yaml);
    // Distinct certificates: distinct chains (and SNI).
    let all = listeners(&snap, &ingress());
    assert_eq!(listener(&all, "0.0.0.0_8443").filter_chains.len(), 3);
    let tables = routes(&snap, &ingress());
    let hosts = |name: &str| -> Vec<String> {
        table(&tables, name)
            .virtual_hosts
            .iter()
            .map(|v| v.name.clone())
            .collect()
    };
    // Same certificate: a connection opened for one host finds the other's virtual host.
    assert_eq!(
        hosts("https.443.https.a.default"),
        ["ratings.example.com:443", "reviews.example.com:443"]
    );
    assert_eq!(
        hosts("https.443.https.b.default"),
        ["ratings.example.com:443", "reviews.example.com:443"]
    );
    assert_eq!(
        hosts("https.443.https-other.a.default"),
        ["other.example.com:443"]
    );
}
