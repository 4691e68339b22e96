//! WorkloadEntry validation tests: one invalid case per rule, load failures and round trips
//! of a VM's workload entry in every served API version.

use crate::validate::{check, load_error};

/// A WorkloadEntry whose spec is `spec` (flow YAML).
fn workload(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: vm\n  namespace: default\nspec: {spec}\n"
    )
}

#[test]
fn invalid_workload_entries() {
    let cases = [
        ("{}", "spec.address", "address is required"),
        ("{labels: {app: x}}", "spec.address", "address is required"),
        (
            "{address: 'bad_name!'}",
            "spec.address",
            "not a valid FQDN or an IP address",
        ),
        (
            "{address: '*.example.com'}",
            "spec.address",
            "not a valid FQDN or an IP address",
        ),
        (
            "{address: 'unix://relative.sock'}",
            "spec.address",
            "absolute path",
        ),
        ("{address: 'unix://'}", "spec.address", "must not be empty"),
        (
            "{address: 'unix:///var/run/a.sock', ports: {http: 80}}",
            "spec.ports",
            "must not include ports",
        ),
        (
            "{address: 10.0.0.1, ports: {http: 0}}",
            "spec.ports.http",
            "1..65535",
        ),
        (
            "{address: 10.0.0.1, ports: {http: 70000}}",
            "spec.ports.http",
            "1..65535",
        ),
        (
            "{address: 10.0.0.1, ports: {Bad_Name: 80}}",
            "spec.ports.Bad_Name",
            "invalid port name",
        ),
        (
            "{address: 10.0.0.1, labels: {app: 'a b'}}",
            "spec.labels.app",
            "invalid label value",
        ),
        (
            "{address: 10.0.0.1, labels: {'bad key': x}}",
            "spec.labels.bad key",
            "invalid label key",
        ),
        (
            "{address: 10.0.0.1, weight: -10}",
            "spec.weight",
            "weight -10 must not be negative",
        ),
        (
            "{address: 10.0.0.1, weight: 4294967296}",
            "spec.weight",
            "larger than the maximum",
        ),
    ];
    for (spec, field, msg) in cases {
        let r = check(&workload(spec));
        assert!(
            r.errors
                .iter()
                .any(|e| e.field == field && e.message.contains(msg)),
            "spec {spec}: expected error at {field} containing {msg:?}, got {:?}",
            r.errors
        );
    }
}

#[test]
fn network_without_address_warns() {
    let r = check(&workload("{network: network2, labels: {app: x}}"));
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.warnings.len(), 1);
    assert_eq!(r.warnings[0].field, "spec.address");
    assert!(r.warnings[0].message.contains("network2"));
}

#[test]
fn accepted_addresses() {
    for addr in [
        "10.0.0.1",
        "2001:db8::1",
        "vm1.example.com",
        "unix:///var/run/app.sock",
        "unix://@abstract",
    ] {
        let r = check(&workload(&format!("{{address: '{addr}'}}")));
        assert!(r.errors.is_empty(), "{addr}: {:?}", r.errors);
    }
}

#[test]
fn load_failures() {
    let d = load_error(&workload("{address: 10.0.0.1, serviceAcount: x}"));
    assert_eq!(d.field.as_deref(), Some("spec.serviceAcount"));
    assert!(
        d.message.contains("did you mean \"serviceAccount\""),
        "{}",
        d.message
    );

    let d = load_error(&workload("{address: 10.0.0.1, ports: {http: eighty}}"));
    assert_eq!(d.field.as_deref(), Some("spec.ports.http"));

    let d = load_error(&workload("{address: 10.0.0.1, labels: [app]}"));
    assert_eq!(d.field.as_deref(), Some("spec.labels"));
}

#[test]
fn round_trip_vm_workload_entry() {
    let yaml = r#"apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: details-svc
  namespace: bookinfo
spec:
  serviceAccount: details-legacy
  address: 2.2.2.2
  labels:
    app: details-legacy
    instance-id: vm1
  ports:
    http: 9080
  network: vm-network
  locality: us-east1/us-east1-b
  weight: 10
"#;
    for v in ["v1alpha3", "v1beta1", "v1"] {
        let text = yaml.replace(
            "networking.istio.io/v1\n",
            &format!("networking.istio.io/{v}\n"),
        );
        let r = check(&text);
        assert!(r.errors.is_empty() && r.warnings.is_empty(), "{v}: {r:?}");
        let out = crate::load::load_str(&text, "t.yaml", &crate::load::LoadOptions::default());
        let spec = out.resources[0]
            .as_workload_entry()
            .expect("a workload entry");
        let input = crate::yaml::parse_documents(&text)[0]
            .as_ref()
            .unwrap()
            .value["spec"]
            .clone();
        assert_eq!(serde_json::to_value(spec).unwrap(), input, "{v}");
    }
}
