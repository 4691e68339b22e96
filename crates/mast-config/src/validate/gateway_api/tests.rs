//! Tests of Gateway API validation: GatewayClass, Gateway and ReferenceGrant rules, load
//! failures, and round trips of realistic resources in every served version.

use crate::validate::{check, error_fields, load_error};

pub(super) const GW_HEAD: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
  namespace: infra
spec:
  gatewayClassName: istio
";

fn gateway(listeners: &str) -> String {
    format!("{GW_HEAD}  listeners:\n{listeners}")
}

/// Asserts `yaml` gives an error at `field` whose message contains `text`.
pub(super) fn assert_error(yaml: &str, field: &str, text: &str) {
    let report = check(yaml);
    let found = report
        .errors
        .iter()
        .any(|e| e.field == field && e.message.contains(text));
    assert!(
        found,
        "no error at {field} containing {text:?}: {:?}\n{yaml}",
        report.errors
    );
}

#[test]
fn gateway_rules() {
    let http = "  - name: web\n    port: 80\n    protocol: HTTP\n";
    let cases: &[(&str, &str, &str)] = &[
        (
            "  - name: Web\n    port: 80\n    protocol: HTTP\n",
            "spec.listeners[0].name",
            "RFC 1123",
        ),
        (
            "  - name: web\n    port: 0\n    protocol: HTTP\n",
            "spec.listeners[0].port",
            "between 1 and 65535",
        ),
        (
            "  - name: web\n    port: 80\n",
            "spec.listeners[0].protocol",
            "required",
        ),
        (
            "  - name: web\n    port: 80\n    protocol: HTTP\n    hostname: Bad_Host\n",
            "spec.listeners[0].hostname",
            "invalid hostname",
        ),
        (
            "  - name: web\n    port: 80\n    protocol: TCP\n    hostname: a.example\n",
            "spec.listeners[0].hostname",
            "must not be specified for protocols ['TCP', 'UDP']",
        ),
        (
            "  - name: web\n    port: 80\n    protocol: HTTP\n    tls:\n      certificateRefs: [{name: c}]\n",
            "spec.listeners[0].tls",
            "tls must not be specified",
        ),
        (
            "  - name: web\n    port: 443\n    protocol: HTTPS\n",
            "spec.listeners[0].tls",
            "tls must be specified",
        ),
        (
            "  - name: web\n    port: 443\n    protocol: HTTPS\n    tls:\n      mode: Passthrough\n",
            "spec.listeners[0].tls.mode",
            "must be Terminate for HTTPS",
        ),
        (
            "  - name: web\n    port: 443\n    protocol: HTTPS\n    tls:\n      mode: Terminate\n",
            "spec.listeners[0].tls.certificateRefs",
            "certificateRefs or options must be specified",
        ),
        (
            "  - name: web\n    port: 80\n    protocol: HTTP\n    allowedRoutes:\n      namespaces:\n        from: Selector\n",
            "spec.listeners[0].allowedRoutes.namespaces.selector",
            "selector must be specified",
        ),
    ];
    for (listeners, field, text) in cases {
        assert_error(&gateway(listeners), field, text);
    }
    let twice = format!("{http}{}", http.replace("port: 80", "port: 81"));
    assert_error(
        &gateway(&twice),
        "spec.listeners[1].name",
        "Listener name must be unique",
    );
    let same = format!("{http}{}", http.replace("name: web", "name: web2"));
    assert_error(
        &gateway(&same),
        "spec.listeners[1]",
        "Combination of port, protocol and hostname",
    );
    assert_error(
        &format!("{GW_HEAD}  listeners: []\n"),
        "spec.listeners",
        "at least one listener",
    );
    let no_class = gateway(http).replace("  gatewayClassName: istio\n", "");
    assert_error(&no_class, "spec.gatewayClassName", "required");
    let addr = format!("{}  addresses:\n  - value: not-an-ip\n", gateway(http));
    assert_error(&addr, "spec.addresses[0].value", "must be an IP address");
}

#[test]
fn gateway_class_and_grant_rules() {
    let class = "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: istio
spec:
  controllerName: nonsense
";
    assert_error(class, "spec.controllerName", "domain-prefixed path");
    let grant = "apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata:
  name: g
spec:
  from:
  - group: gateway.networking.k8s.io
    kind: HTTPRoute
    namespace: ''
  to: []
";
    assert_error(grant, "spec.from[0].namespace", "required");
    assert_error(grant, "spec.to", "at least one to entry");
}

#[test]
fn load_failures() {
    let unknown =
        gateway("  - name: web\n    port: 80\n    protocol: HTTP\n    hostnme: a.example\n");
    let d = load_error(&unknown);
    assert_eq!(d.field.as_deref(), Some("spec.listeners[0].hostnme"));
    assert!(d.message.contains("hostname"), "{}", d.message);
    let wrong = gateway("  - name: web\n    port: eighty\n    protocol: HTTP\n");
    assert_eq!(
        load_error(&wrong).field.as_deref(),
        Some("spec.listeners[0].port")
    );
    let mode = gateway(
        "  - name: web\n    port: 443\n    protocol: HTTPS\n    tls:\n      mode: Terminated\n",
    );
    let d = load_error(&mode);
    assert_eq!(d.field.as_deref(), Some("spec.listeners[0].tls.mode"));
    assert!(d.message.contains("Passthrough"), "{}", d.message);
    let version = GW_HEAD.replace("/v1\n", "/v2\n");
    let d = load_error(&format!("{version}  listeners: []\n"));
    assert_eq!(d.field.as_deref(), Some("apiVersion"));
}

/// Loads, validates (no errors) and re-serialises `yaml` in each of `versions`.
pub(super) fn round_trip(yaml: &str, versions: &[&str]) {
    for v in versions {
        let text = yaml.replace(
            "gateway.networking.k8s.io/VERSION",
            &format!("gateway.networking.k8s.io/{v}"),
        );
        let report = check(&text);
        assert!(report.errors.is_empty(), "{v}: {:?}", error_fields(&report));
        let out = crate::load::load_str(&text, "t.yaml", &Default::default());
        let r = &out.resources[0];
        let spec = match &r.body {
            crate::Body::GatewayClass(s) => serde_json::to_value(s.as_ref()),
            crate::Body::KubeGateway(s) => serde_json::to_value(s.as_ref()),
            crate::Body::HttpRoute(s) => serde_json::to_value(s.as_ref()),
            crate::Body::GrpcRoute(s) => serde_json::to_value(s.as_ref()),
            crate::Body::TcpRoute(s) => serde_json::to_value(s.as_ref()),
            crate::Body::TlsRoute(s) => serde_json::to_value(s.as_ref()),
            crate::Body::ReferenceGrant(s) => serde_json::to_value(s.as_ref()),
            other => panic!("unexpected body {other:?}"),
        }
        .expect("serialises");
        let input = crate::yaml::parse_documents(&text)[0]
            .as_ref()
            .expect("parses")
            .value["spec"]
            .clone();
        assert_eq!(spec, input, "{v}");
    }
}

#[test]
fn round_trips() {
    round_trip(
        "apiVersion: gateway.networking.k8s.io/VERSION
kind: GatewayClass
metadata:
  name: istio
spec:
  controllerName: istio.io/gateway-controller
  description: Istio's gateways
",
        &["v1", "v1beta1"],
    );
    round_trip(
        "apiVersion: gateway.networking.k8s.io/VERSION
kind: Gateway
metadata:
  name: gateway
  namespace: istio-ingress
spec:
  gatewayClassName: istio
  addresses:
  - value: 10.0.0.1
  listeners:
  - name: default
    hostname: \"*.example.com\"
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: All
  - name: https
    hostname: secure.example.com
    port: 443
    protocol: HTTPS
    tls:
      mode: Terminate
      certificateRefs:
      - kind: Secret
        group: \"\"
        name: secure-cert
        namespace: certs
    allowedRoutes:
      namespaces:
        from: Selector
        selector:
          matchLabels:
            shared-gateway-access: \"true\"
      kinds:
      - kind: HTTPRoute
  - name: passthrough
    port: 8443
    protocol: TLS
    tls:
      mode: Passthrough
  - name: tcp
    port: 9000
    protocol: TCP
",
        &["v1", "v1beta1"],
    );
    round_trip(
        "apiVersion: gateway.networking.k8s.io/VERSION
kind: ReferenceGrant
metadata:
  name: allow-gateways
  namespace: certs
spec:
  from:
  - group: gateway.networking.k8s.io
    kind: Gateway
    namespace: istio-ingress
  to:
  - group: \"\"
    kind: Secret
    name: secure-cert
",
        &["v1beta1", "v1alpha2", "v1"],
    );
}
