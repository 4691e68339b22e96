//! Load-time failures and round trips of realistic `DestinationRule`s in every served API
//! version.

use super::dr;
use crate::validate::{check, load_error};

#[test]
fn load_failures() {
    let d = load_error(&dr(
        "trafficPolicy:\n  outlierDetection:\n    maxEjectonPercent: 10",
    ));
    assert_eq!(
        d.field.as_deref(),
        Some("spec.trafficPolicy.outlierDetection.maxEjectonPercent")
    );
    assert!(
        d.message.contains("did you mean \"maxEjectionPercent\""),
        "{}",
        d.message
    );
    assert_eq!(d.origin.map(|o| o.line), Some(10));

    let d = load_error(&dr("subsets:\n- name: v1\n  lables: {version: v1}"));
    assert_eq!(d.field.as_deref(), Some("spec.subsets[0].lables"));
    assert!(
        d.message.contains("did you mean \"labels\""),
        "{}",
        d.message
    );

    let d = load_error(&dr(
        "trafficPolicy: {outlierDetection: {maxEjectionPercent: ten}}",
    ));
    assert_eq!(
        d.field.as_deref(),
        Some("spec.trafficPolicy.outlierDetection.maxEjectionPercent")
    );
    assert!(d.message.contains("invalid type"), "{}", d.message);

    let d = load_error(&dr("trafficPolicy: {tls: {mode: MUTUALL}}"));
    assert_eq!(d.field.as_deref(), Some("spec.trafficPolicy.tls.mode"));
    assert!(
        d.message.contains("MUTUALL") && d.message.contains("ISTIO_MUTUAL"),
        "{}",
        d.message
    );

    let d = load_error(&dr(
        "trafficPolicy: {loadBalancer: {simple: LEAST_CONNECTIONS}}",
    ));
    assert_eq!(
        d.field.as_deref(),
        Some("spec.trafficPolicy.loadBalancer.simple")
    );
    assert!(d.message.contains("LEAST_REQUEST"), "{}", d.message);

    let d = load_error(&dr(
        "trafficPolicy: {connectionPool: {tcp: {connectTimeout: 30 seconds}}}",
    ));
    assert_eq!(
        d.field.as_deref(),
        Some("spec.trafficPolicy.connectionPool.tcp.connectTimeout")
    );
    assert!(d.message.contains("invalid duration"), "{}", d.message);

    let d = load_error(&dr("subsets: {name: v1}"));
    assert_eq!(d.field.as_deref(), Some("spec.subsets"));
    assert!(d.message.contains("invalid type"), "{}", d.message);
}

/// Loads `yaml`, asserts it validates without errors and serializes back to its `spec`.
fn round_trip(yaml: &str) {
    let report = check(yaml);
    assert!(report.errors.is_empty(), "errors: {:?}", report.errors);
    let out = crate::load::load_str(yaml, "test.yaml", &crate::load::LoadOptions::default());
    let spec = out.resources[0]
        .as_destination_rule()
        .expect("a DestinationRule");
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
            "apiVersion: networking.istio.io/{version}\nkind: DestinationRule\n{body}"
        ));
    }
}

#[test]
fn round_trip_bookinfo_reviews() {
    in_versions(
        r#"metadata:
  name: reviews
  namespace: bookinfo
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      simple: RANDOM
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
    trafficPolicy:
      loadBalancer:
        simple: ROUND_ROBIN
  - name: v3
    labels:
      version: v3
"#,
    );
}

// Durations are written in protobuf JSON form ("30s", "0.03s") so that they serialize
// back to the same text.
#[test]
fn round_trip_full_traffic_policy() {
    in_versions(
        r#"metadata:
  name: ratings
  namespace: prod
spec:
  host: ratings.prod.svc.cluster.local
  exportTo:
  - "."
  - istio-system
  trafficPolicy:
    connectionPool:
      tcp:
        maxConnections: 100
        connectTimeout: 0.03s
        tcpKeepalive:
          probes: 9
          time: 7200s
          interval: 75s
        idleTimeout: 0s
      http:
        http1MaxPendingRequests: 1024
        http2MaxRequests: 1000
        maxRequestsPerConnection: 10
        maxRetries: 3
        idleTimeout: 300s
        h2UpgradePolicy: UPGRADE
    outlierDetection:
      consecutive5xxErrors: 7
      consecutiveGatewayErrors: 5
      interval: 300s
      baseEjectionTime: 900s
      maxEjectionPercent: 50
      minHealthPercent: 10
    loadBalancer:
      consistentHash:
        httpCookie:
          name: user
          path: /
          ttl: 0s
          attributes:
          - name: SameSite
            value: Strict
        ringHash:
          minimumRingSize: 1024
      localityLbSetting:
        enabled: true
        distribute:
        - from: us-west/zone1/*
          to:
            us-west/zone1/*: 80
            us-west/zone2/*: 20
    tls:
      mode: SIMPLE
      sni: ratings.example.com
      caCertificates: /etc/certs/rootcacerts.pem
      subjectAltNames:
      - ratings.example.com
    portLevelSettings:
    - port:
        number: 80
      loadBalancer:
        simple: LEAST_REQUEST
    - port:
        number: 9080
      loadBalancer:
        consistentHash:
          httpHeaderName: x-user
          maglev:
            tableSize: 65537
      tls:
        mode: ISTIO_MUTUAL
  subsets:
  - name: testversion
    labels:
      version: v3
    trafficPolicy:
      loadBalancer:
        simple: ROUND_ROBIN
"#,
    );
}

#[test]
fn round_trip_workload_selector_mutual() {
    in_versions(
        r#"metadata:
  name: configure-client-mtls-dr-with-workloadselector
  namespace: default
spec:
  host: example.com
  workloadSelector:
    matchLabels:
      app: ratings
  exportTo:
  - "."
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      warmup:
        duration: 60s
        minimumPercent: 10.5
        aggression: 1.5
    portLevelSettings:
    - port:
        number: 31443
      tls:
        credentialName: client-credential
        mode: MUTUAL
"#,
    );
}
