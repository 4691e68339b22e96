//! LocalGateway tests: one invalid case per rule (field path and message), the warning for
//! a gateway without labels, load failures naming the field, defaults, and a round trip.

use crate::local::ProxyChoice;
use crate::validate::{check, error_fields, load_error};

/// A LocalGateway named `name` with `meta` extra metadata lines and spec `spec` (flow YAML).
fn lg(name: &str, meta: &str, spec: &str) -> String {
    format!(
        "apiVersion: mast.dev/v1alpha1\nkind: LocalGateway\nmetadata:\n  name: {name}\n  namespace: istio-system\n  labels: {{istio: ingressgateway}}\n{meta}spec: {spec}\n"
    )
}

#[test]
fn invalid_local_gateways() {
    let cases = [
        (
            "g",
            "",
            "{serviceAccount: Bad_SA}",
            "spec.serviceAccount",
            "invalid service account name",
        ),
        (
            "g",
            "",
            "{env: {1ABC: x}}",
            "spec.env.1ABC",
            "invalid environment variable name",
        ),
        ("Ingress_1", "", "{}", "metadata.name", "RFC 1123 label"),
        (
            "g",
            "  annotations: {mast.dev/proxy: istio}\n",
            "{}",
            "metadata.annotations.mast.dev/proxy",
            "must be mast or envoy",
        ),
    ];
    for (name, meta, spec, field, msg) in cases {
        let r = check(&lg(name, meta, spec));
        assert!(
            r.errors
                .iter()
                .any(|e| e.field == field && e.message.contains(msg)),
            "spec {spec}: expected error at {field} containing {msg:?}, got {:?}",
            r.errors
        );
    }
    let bad_label = lg("g", "", "{}").replace("istio: ingressgateway", "istio: 'a b'");
    let r = check(&bad_label);
    assert_eq!(error_fields(&r), ["metadata.labels.istio"]);
    assert!(r.errors[0].message.contains("invalid label value"));
}

#[test]
fn no_labels_warns() {
    let text = lg("g", "", "{}").replace("  labels: {istio: ingressgateway}\n", "");
    let r = check(&text);
    assert!(r.is_valid(), "{:?}", r.errors);
    assert_eq!(r.warnings.len(), 1);
    assert_eq!(r.warnings[0].field, "metadata.labels");
    assert!(r.warnings[0].message.contains("no Gateway selector"));
}

#[test]
fn load_failures() {
    let d = load_error(&lg("g", "", "{command: [x]}"));
    assert_eq!(d.field.as_deref(), Some("spec.command"));
    assert!(d.message.contains("unknown field"), "{}", d.message);

    let d = load_error(&lg("g", "", "{serviceAcount: x}"));
    assert_eq!(d.field.as_deref(), Some("spec.serviceAcount"));
    assert!(
        d.message.contains("did you mean \"serviceAccount\""),
        "{}",
        d.message
    );

    let d = load_error(&lg("g", "", "{env: [A]}"));
    assert_eq!(d.field.as_deref(), Some("spec.env"));

    let d = load_error(&lg("g", "", "{}").replace("mast.dev/v1alpha1", "mast.dev/v1"));
    assert_eq!(d.field.as_deref(), Some("apiVersion"));
    assert!(d.message.contains("mast.dev/v1alpha1"), "{}", d.message);
}

#[test]
fn defaults() {
    let text = lg("ingress", "", "{}");
    let r = check(&text);
    assert!(r.errors.is_empty() && r.warnings.is_empty(), "{r:?}");
    let out = crate::load::load_str(&text, "t.yaml", &crate::load::LoadOptions::default());
    let res = &out.resources[0];
    let spec = res.as_local_gateway().expect("a local gateway");
    assert_eq!(res.known_kind(), Some(crate::Kind::LocalGateway));
    assert_eq!(spec.service_account(), "default");
    assert_eq!(ProxyChoice::of(res), Some(ProxyChoice::Mast));
    // No spec at all is a gateway too.
    let bare = "apiVersion: mast.dev/v1alpha1\nkind: LocalGateway\nmetadata: {name: g, labels: {app: g}}\n";
    assert!(check(bare).errors.is_empty());
}

#[test]
fn round_trip() {
    let text = r#"apiVersion: mast.dev/v1alpha1
kind: LocalGateway
metadata:
  name: egress
  namespace: istio-system
  labels: {istio: egressgateway, app: istio-egressgateway}
  annotations: {mast.dev/proxy: envoy}
spec:
  serviceAccount: istio-egressgateway-service-account
  env: {ISTIO_META_ROUTER_MODE: standard}
"#;
    let r = check(text);
    assert!(r.errors.is_empty() && r.warnings.is_empty(), "{r:?}");
    let out = crate::load::load_str(text, "t.yaml", &crate::load::LoadOptions::default());
    let res = &out.resources[0];
    let spec = res.as_local_gateway().expect("a local gateway");
    assert_eq!(
        spec.service_account(),
        "istio-egressgateway-service-account"
    );
    assert_eq!(ProxyChoice::of(res), Some(ProxyChoice::Envoy));
    let input = crate::yaml::parse_documents(text)[0]
        .as_ref()
        .unwrap()
        .value["spec"]
        .clone();
    assert_eq!(serde_json::to_value(spec).unwrap(), input);
}
