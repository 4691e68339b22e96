//! ServiceEntry validation tests: one invalid case per rule, warnings, load failures and
//! round trips of Istio's documented service entries in every served API version.

use crate::validate::{Report, check, load_error};

/// A ServiceEntry named `se` in namespace `default` whose spec is `spec` (flow YAML).
fn service_entry(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: se\n  namespace: default\nspec: {spec}\n"
    )
}

const HTTP: &str = "ports: [{number: 80, name: http, protocol: HTTP}]";

fn has(list: &[crate::validate::FieldMessage], field: &str, msg: &str) -> bool {
    list.iter()
        .any(|m| m.field == field && m.message.contains(msg))
}

fn run(spec: &str) -> Report {
    check(&service_entry(spec))
}

#[test]
fn invalid_service_entries() {
    let cases: Vec<(String, &str, &str)> = vec![
        (format!("{{{HTTP}, resolution: DNS}}"), "spec.hosts", "at least one host"),
        (format!("{{hosts: ['*'], {HTTP}}}"), "spec.hosts[0]", "invalid host *"),
        (format!("{{hosts: [bad_host.com], {HTTP}}}"), "spec.hosts[0]", "invalid"),
        (format!("{{hosts: [a.com], addresses: [not-an-ip], {HTTP}}}"), "spec.addresses[0]", "not a valid IP"),
        (format!("{{hosts: [a.com], addresses: [10.0.0.0/33], {HTTP}}}"), "spec.addresses[0]", "not a valid CIDR block"),
        (format!("{{hosts: [a.com], addresses: [10.0.0.0/8], {HTTP}, resolution: DNS}}"), "spec.addresses[0]", "CIDR addresses are allowed only for NONE/STATIC"),
        ("{hosts: [a.com], ports: [{number: 80, name: http, protocol: HTTP}, {number: 81, name: http, protocol: HTTP}]}".into(), "spec.ports[1].name", "port name \"http\" already defined"),
        ("{hosts: [a.com], ports: [{number: 80, name: a, protocol: HTTP}, {number: 80, name: b, protocol: HTTP}]}".into(), "spec.ports[1].number", "port 80 already defined"),
        ("{hosts: [a.com], ports: [{number: 0, name: http, protocol: HTTP}]}".into(), "spec.ports[0].number", "1..65535"),
        ("{hosts: [a.com], ports: [{number: 80, name: http, protocol: HTTP, targetPort: 70000}]}".into(), "spec.ports[0].targetPort", "1..65535"),
        ("{hosts: [a.com], ports: [{number: 80, name: Bad_Name, protocol: HTTP}]}".into(), "spec.ports[0].name", "invalid port name"),
        ("{hosts: [a.com], ports: [{number: 80, name: http, protocol: HTTP3}]}".into(), "spec.ports[0].protocol", "unsupported protocol: HTTP3"),
        (format!("{{hosts: [a.com], {HTTP}, resolution: NONE, endpoints: [{{address: 1.1.1.1}}]}}"), "spec.endpoints", "no endpoints should be provided"),
        (format!("{{hosts: [a.com], {HTTP}, resolution: STATIC, endpoints: [{{address: a.example.com}}]}}"), "spec.endpoints[0].address", "not a valid IP address"),
        (format!("{{hosts: [a.com], {HTTP}, resolution: STATIC, endpoints: [{{address: 1.1.1.1}}, {{}}]}}"), "spec.endpoints[1].address", "address is required"),
        (format!("{{hosts: [a.com], {HTTP}, resolution: STATIC, endpoints: [{{address: 1.1.1.1, ports: {{grpc: 9000}}}}]}}"), "spec.endpoints[0].ports.grpc", "not defined by the service entry"),
        (format!("{{hosts: [a.com], {HTTP}, resolution: STATIC, endpoints: [{{address: 1.1.1.1, ports: {{http: 0}}}}]}}"), "spec.endpoints[0].ports.http", "1..65535"),
        (format!("{{hosts: [a.com], {HTTP}, resolution: STATIC, endpoints: [{{address: 1.1.1.1, labels: {{app: 'a b'}}}}]}}"), "spec.endpoints[0].labels.app", "invalid label value"),
        (format!("{{hosts: [a.com], {HTTP}, resolution: STATIC, endpoints: [{{address: 1.1.1.1, weight: -1}}]}}"), "spec.endpoints[0].weight", "must not be negative"),
        (
            "{hosts: [a.com], ports: [{number: 80, name: http, protocol: HTTP}, {number: 81, name: h2, protocol: HTTP2}], resolution: STATIC, endpoints: [{address: 'unix:///var/run/a.sock'}]}".into(),
            "spec.endpoints[0].address",
            "exactly 1 service port required for unix endpoints",
        ),
        (format!("{{hosts: ['*.example.com'], {HTTP}, resolution: DNS}}"), "spec.hosts[0]", "hosts must be FQDN if no endpoints are provided for resolution mode DNS"),
        (format!("{{hosts: ['*.example.com'], {HTTP}, resolution: DNS_ROUND_ROBIN}}"), "spec.hosts[0]", "resolution mode DNS_ROUND_ROBIN"),
        (format!("{{hosts: [a.com], {HTTP}, resolution: DNS, endpoints: [{{address: 'unix:///var/run/a.sock'}}]}}"), "spec.endpoints[0].address", "not a valid FQDN or an IP address"),
        (format!("{{hosts: [a.com], {HTTP}, resolution: DNS, endpoints: [{{address: b.com, ports: {{grpc: 9000}}}}]}}"), "spec.endpoints[0].ports.grpc", "not defined by the service entry"),
        (format!("{{hosts: [a.com], {HTTP}, resolution: DNS_ROUND_ROBIN, endpoints: [{{address: b.com}}, {{address: c.com}}]}}"), "spec.endpoints", "0 or 1 endpoint"),
        (format!("{{hosts: ['*.example.com'], {HTTP}, resolution: DYNAMIC_DNS, location: MESH_INTERNAL}}"), "spec.location", "only supported for MESH_EXTERNAL"),
        (format!("{{hosts: [a.example.com], {HTTP}, resolution: DYNAMIC_DNS}}"), "spec.hosts[0]", "must be used with wildcard hosts"),
        ("{hosts: [a.com, b.com], ports: [{number: 5432, name: tcp, protocol: TCP}], resolution: DNS}".into(), "spec.ports[0].protocol", "multiple hosts provided with non-HTTP, non-TLS ports"),
        (
            format!("{{hosts: [a.com], {HTTP}, location: MESH_INTERNAL, resolution: STATIC, workloadSelector: {{labels: {{app: a}}}}, endpoints: [{{address: 1.1.1.1}}]}}"),
            "spec.workloadSelector",
            "only one of workloadSelector or endpoints",
        ),
        (format!("{{hosts: [a.com], {HTTP}, location: MESH_INTERNAL, resolution: STATIC, workloadSelector: {{labels: {{app: '*'}}}}}}"), "spec.workloadSelector.labels.app", "wildcard"),
        (format!("{{hosts: [a.com], {HTTP}, exportTo: ['.', '*']}}"), "spec.exportTo", "cannot have both public"),
        (format!("{{hosts: [a.com], {HTTP}, exportTo: [Bad_NS]}}"), "spec.exportTo[0]", "invalid exportTo value"),
        (format!("{{hosts: [a.com], {HTTP}, exportTo: ['.', default]}}"), "spec.exportTo", ". and current namespace default"),
        (format!("{{hosts: [a.com], {HTTP}, exportTo: ['*', other]}}"), "spec.exportTo", "non-public exportTo values"),
        (format!("{{hosts: [a.com], {HTTP}, exportTo: ['~', other]}}"), "spec.exportTo", "'~'"),
    ];
    for (spec, field, msg) in &cases {
        let r = run(spec);
        assert!(
            has(&r.errors, field, msg),
            "spec {spec}: expected error at {field} containing {msg:?}, got {:?}",
            r.errors
        );
    }
}

#[test]
fn service_entry_warnings() {
    let cases: Vec<(String, &str, &str)> = vec![
        ("{hosts: [a.com], resolution: DNS}".into(), "spec.ports", "no ports"),
        ("{hosts: [a.com], ports: [{number: 5432, name: tcp, protocol: TCP}], resolution: DNS}".into(), "spec.ports[0]", "addresses are required"),
        ("{hosts: [a.com], addresses: [10.1.1.1], ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}]}".into(), "spec.ports[0].targetPort", "no effect when resolution mode is NONE"),
        (format!("{{hosts: [a.com], {HTTP}, location: MESH_INTERNAL, workloadSelector: {{labels: {{app: a}}}}}}"), "spec.workloadSelector", "resolution mode is NONE"),
        (format!("{{hosts: [a.com], {HTTP}, location: MESH_INTERNAL, resolution: DNS, workloadSelector: {{labels: {{app: a}}}}}}"), "spec.workloadSelector", "resolution mode is DNS"),
        (format!("{{hosts: [a.com], {HTTP}, location: MESH_INTERNAL, resolution: STATIC, workloadSelector: {{}}}}"), "spec.workloadSelector", "without labels"),
        (format!("{{hosts: [a.com], {HTTP}, resolution: STATIC, workloadSelector: {{labels: {{app: a}}}}}}"), "spec.workloadSelector", "only to MESH_INTERNAL"),
        (format!("{{hosts: [a.com], {HTTP}, resolution: STATIC}}"), "spec.endpoints", "STATIC resolution without endpoints"),
        (format!("{{hosts: ['*.example.com'], {HTTP}, resolution: DYNAMIC_DNS, endpoints: [{{address: 1.1.1.1}}]}}"), "spec.endpoints", "ignored with DYNAMIC_DNS"),
        (
            "{hosts: [a.com, b.com], addresses: [10.1.1.1], ports: [{number: 443, name: tls, protocol: TLS}], resolution: DNS}".into(),
            "spec.hosts",
            "more than one host specified simultaneously with address and tcp port",
        ),
    ];
    for (spec, field, msg) in &cases {
        let r = run(spec);
        assert!(
            r.errors.is_empty(),
            "spec {spec}: unexpected errors {:?}",
            r.errors
        );
        assert!(
            has(&r.warnings, field, msg),
            "spec {spec}: expected warning at {field} containing {msg:?}, got {:?}",
            r.warnings
        );
    }
}

#[test]
fn load_failures() {
    let d = load_error(&service_entry("{hosts: [a.com], resolution: STATICC}"));
    assert_eq!(d.field.as_deref(), Some("spec.resolution"));
    assert!(
        d.message.contains("STATICC") && d.message.contains("DNS_ROUND_ROBIN"),
        "{}",
        d.message
    );

    let d = load_error(&service_entry("{hosts: [a.com], location: OUTSIDE}"));
    assert_eq!(d.field.as_deref(), Some("spec.location"));

    let d = load_error(&service_entry(
        "{hosts: [a.com], endpoints: [{adress: 1.1.1.1}]}",
    ));
    assert_eq!(d.field.as_deref(), Some("spec.endpoints[0].adress"));
    assert!(
        d.message.contains("did you mean \"address\""),
        "{}",
        d.message
    );

    let d = load_error(&service_entry(
        "{hosts: [a.com], workloadSelector: {app: a}}",
    ));
    assert_eq!(d.field.as_deref(), Some("spec.workloadSelector.app"));

    let d = load_error(&service_entry("{hosts: a.com}"));
    assert_eq!(d.field.as_deref(), Some("spec.hosts"));

    let d = load_error(&service_entry(
        "{hosts: [a.com], ports: [{number: '80', name: http}]}",
    ));
    assert_eq!(d.field.as_deref(), Some("spec.ports[0].number"));
}

/// Loads `yaml` in every served version: no errors, and the spec serializes back to the input.
fn round_trip(yaml: &str) -> Report {
    let mut last = Report::default();
    for v in ["v1alpha3", "v1beta1", "v1"] {
        let text = yaml.replace(
            "networking.istio.io/v1\n",
            &format!("networking.istio.io/{v}\n"),
        );
        last = check(&text);
        assert!(last.errors.is_empty(), "{v}: {:?}", last.errors);
        let out = crate::load::load_str(&text, "t.yaml", &crate::load::LoadOptions::default());
        let spec = out.resources[0]
            .as_service_entry()
            .expect("a service entry");
        let input = crate::yaml::parse_documents(&text)[0]
            .as_ref()
            .unwrap()
            .value["spec"]
            .clone();
        assert_eq!(serde_json::to_value(spec).unwrap(), input, "{v}");
    }
    last
}

#[test]
fn round_trip_httpbin_external() {
    let r = round_trip(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: httpbin-ext
spec:
  hosts:
  - httpbin.org
  ports:
  - number: 80
    name: http
    protocol: HTTP
  - number: 443
    name: https
    protocol: HTTPS
  resolution: DNS
  location: MESH_EXTERNAL
"#,
    );
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn round_trip_static_endpoints() {
    round_trip(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: external-svc-mongocluster
spec:
  hosts:
  - mymongodb.somedomain
  addresses:
  - 192.192.192.192/24
  ports:
  - number: 27018
    name: mongodb
    protocol: MONGO
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints:
  - address: 2.2.2.2
  - address: 3.3.3.3
    ports:
      mongodb: 27019
    labels:
      version: v2
    locality: us-west1/zone1
    weight: 20
  exportTo:
  - "."
  subjectAltNames:
  - spiffe://cluster.local/ns/mongo/sa/mongo
"#,
    );
}

#[test]
fn round_trip_workload_selector() {
    let r = round_trip(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: details-svc
spec:
  hosts:
  - details.bookinfo.com
  location: MESH_INTERNAL
  ports:
  - number: 80
    name: http
    protocol: HTTP
    targetPort: 8080
  resolution: STATIC
  workloadSelector:
    labels:
      app: details-legacy
"#,
    );
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn round_trip_dns_endpoints_and_unix_socket() {
    round_trip(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: external-svc-dns
spec:
  hosts:
  - foo.bar.com
  location: MESH_EXTERNAL
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: DNS
  endpoints:
  - address: us.foo.bar.com
    ports:
      http: 8080
  - address: uk.foo.bar.com
    ports:
      http: 9080
"#,
    );
    round_trip(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: unix-domain-socket-example
spec:
  hosts:
  - "example.unix.local"
  location: MESH_EXTERNAL
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: STATIC
  endpoints:
  - address: unix:///var/run/example/socket
"#,
    );
}
