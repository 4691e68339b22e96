//! Warnings, load-time failures and round trips of realistic `Sidecar`s in every served
//! API version.

use super::{EGRESS, sidecar};
use crate::validate::{check, load_error};

#[test]
fn warnings() {
    let cases: &[(&str, &str, &str)] = &[
        (
            &format!("workloadSelector: {{}}\n{EGRESS}"),
            "spec.workloadSelector",
            "workload selector specified without labels",
        ),
        (
            "egress: [{hosts: [\"./*\", \"default/foo.example.com\"]}]",
            "spec.egress[0].hosts[1]",
            "duplicated egress host: default/foo.example.com",
        ),
        (
            "egress: [{hosts: [\"*/*\", \"istio-system/*\"]}]",
            "spec.egress[0].hosts",
            "`*/*` host select all resources",
        ),
        (
            "ingress: [{port: {number: 9080, protocol: TCP}, connectionPool: {http: {maxRetries: 3}}}]",
            "spec.ingress[0].connectionPool.http",
            "its protocol is not HTTP (TCP); only TCP settings will apply",
        ),
        (
            "ingress: [{port: {number: 8443, protocol: HTTPS}, tls: {mode: SIMPLE, serverCertificate: /c, privateKey: /k, minProtocolVersion: TLSV1_1}}]",
            "spec.ingress[0].tls.minProtocolVersion",
            "TLS version below TLSV1_2 require setting compatible ciphers",
        ),
        (
            "ingress: [{port: {number: 8443, protocol: HTTPS}, tls: {mode: SIMPLE, serverCertificate: /c, privateKey: /k, cipherSuites: [NOT-A-CIPHER]}}]",
            "spec.ingress[0].tls.cipherSuites[0]",
            "ignoring invalid cipher suite: NOT-A-CIPHER",
        ),
        (
            "ingress: [{port: {number: 8443, protocol: TLS}, tls: {mode: PASSTHROUGH, serverCertificate: /c}}]",
            "spec.ingress[0].tls",
            "PASSTHROUGH mode does not use certificates",
        ),
    ];
    for (spec, field, message) in cases {
        let report = check(&sidecar(spec));
        assert!(
            report.errors.is_empty(),
            "case {spec}: unexpected errors {:?}",
            report.errors
        );
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.field == *field && w.message.contains(message)),
            "case {spec}: expected warning at {field} containing {message:?}, got {:?}",
            report.warnings
        );
    }
}

#[test]
fn load_failures() {
    let d = load_error(&sidecar("egress:\n- hots: [\"./*\"]"));
    assert_eq!(d.field.as_deref(), Some("spec.egress[0].hots"));
    assert!(
        d.message.contains("did you mean \"hosts\""),
        "{}",
        d.message
    );
    assert_eq!(d.origin.map(|o| o.line), Some(8));

    let d = load_error(&sidecar(
        "workloadSelector:\n  matchLabels: {app: ratings}\negress: [{hosts: [\"./*\"]}]",
    ));
    assert_eq!(
        d.field.as_deref(),
        Some("spec.workloadSelector.matchLabels")
    );
    assert!(
        d.message.contains("unknown field \"matchLabels\""),
        "{}",
        d.message
    );

    let d = load_error(&sidecar(
        "egress: [{port: {number: eighty}, hosts: [\"./*\"]}]",
    ));
    assert_eq!(d.field.as_deref(), Some("spec.egress[0].port.number"));
    assert!(d.message.contains("invalid type"), "{}", d.message);

    let d = load_error(&sidecar("outboundTrafficPolicy: {mode: REGISTRY}"));
    assert_eq!(d.field.as_deref(), Some("spec.outboundTrafficPolicy.mode"));
    assert!(
        d.message.contains("REGISTRY_ONLY") && d.message.contains("ALLOW_ANY"),
        "{}",
        d.message
    );

    let d = load_error(&sidecar(
        "egress: [{captureMode: IPTABLE, hosts: [\"./*\"]}]",
    ));
    assert_eq!(d.field.as_deref(), Some("spec.egress[0].captureMode"));
    assert!(d.message.contains("IPTABLES"), "{}", d.message);

    let d = load_error(&sidecar(
        "inboundConnectionPool: {tcp: {connectTimeout: 5}}",
    ));
    assert_eq!(
        d.field.as_deref(),
        Some("spec.inboundConnectionPool.tcp.connectTimeout")
    );
}

/// Loads `yaml`, asserts it validates without errors or warnings and serializes back to
/// its `spec`.
fn round_trip(yaml: &str) {
    let report = check(yaml);
    assert!(
        report.errors.is_empty() && report.warnings.is_empty(),
        "{report:?}"
    );
    let out = crate::load::load_str(yaml, "test.yaml", &crate::load::LoadOptions::default());
    let spec = out.resources[0].as_sidecar().expect("a Sidecar");
    let doc = crate::yaml::parse_documents(yaml)
        .remove(0)
        .expect("valid YAML");
    assert_eq!(
        serde_json::to_value(spec).expect("serializes"),
        doc.value["spec"]
    );
}

fn in_versions(body: &str) {
    for version in ["v1alpha3", "v1beta1", "v1"] {
        round_trip(&format!(
            "apiVersion: networking.istio.io/{version}\nkind: Sidecar\n{body}"
        ));
    }
}

#[test]
fn round_trip_namespace_default() {
    in_versions(
        r#"metadata:
  name: default
  namespace: prod-us1
spec:
  egress:
  - hosts:
    - "./*"
    - "istio-system/*"
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
"#,
    );
}

#[test]
fn round_trip_selector_and_ingress() {
    in_versions(
        r#"metadata:
  name: ratings
  namespace: prod-us1
spec:
  workloadSelector:
    labels:
      app: ratings
  ingress:
  - port:
      number: 9080
      protocol: HTTP
      name: somename
    defaultEndpoint: unix:///var/run/someuds.sock
    connectionPool:
      http:
        http1MaxPendingRequests: 100
        idleTimeout: 30s
  - port:
      number: 8443
      protocol: HTTPS
      name: external
    defaultEndpoint: 127.0.0.1:8080
    captureMode: IPTABLES
    tls:
      mode: SIMPLE
      privateKey: /etc/istio/ratings-certs/tls.key
      serverCertificate: /etc/istio/ratings-certs/tls.crt
      minProtocolVersion: TLSV1_2
  egress:
  - port:
      number: 9080
      protocol: HTTP
      name: egresshttp
    hosts:
    - "prod-us1/*"
  - port:
      number: 0
    bind: unix:///var/run/egress.sock
    captureMode: NONE
    hosts:
    - "*/bookinfo.com"
  - hosts:
    - "istio-system/*"
  inboundConnectionPool:
    tcp:
      maxConnections: 1000
  outboundTrafficPolicy:
    mode: ALLOW_ANY
    egressProxy:
      host: egress-proxy.istio-system.svc.cluster.local
      subset: v1
      port:
        number: 3128
"#,
    );
}
