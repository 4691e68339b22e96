//! Gateway validation tests: one invalid case per rule, warnings, load failures and round
//! trips of Istio's documented gateways in every served API version.

use crate::validate::{Report, check, error_fields, load_error};

const VERSIONS: [&str; 3] = ["v1alpha3", "v1beta1", "v1"];

/// A Gateway named `name` whose spec is `spec` (flow YAML).
fn gateway(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: {name}\n  namespace: default\nspec: {spec}\n"
    )
}

/// One HTTPS server on 443 named `https` with the given `tls` (flow YAML).
fn https(tls: &str) -> String {
    format!(
        "{{servers: [{{port: {{number: 443, name: https, protocol: HTTPS}}, hosts: [a.example.com], tls: {tls}}}]}}"
    )
}

fn has(r: &Report, field: &str, msg: &str, warning: bool) -> bool {
    let list = if warning { &r.warnings } else { &r.errors };
    list.iter()
        .any(|m| m.field == field && m.message.contains(msg))
}

#[test]
fn invalid_gateways() {
    let http = |port: &str| format!("{{servers: [{{port: {port}, hosts: ['*']}}]}}");
    let s0 = "spec.servers[0]";
    let cases: Vec<(String, String, &str)> = vec![
        ("{}".into(), "spec.servers".into(), "at least one server"),
        ("{servers: [{port: {number: 80, name: http, protocol: HTTP}}]}".into(), format!("{s0}.hosts"), "at least one host"),
        ("{servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [bad_host.com]}]}".into(), format!("{s0}.hosts[0]"), "invalid"),
        ("{servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [~/a.com]}]}".into(), format!("{s0}.hosts[0]"), "invalid namespace value"),
        ("{servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [Bad_NS/a.com]}]}".into(), format!("{s0}.hosts[0]"), "invalid namespace"),
        ("{servers: [{hosts: ['*']}]}".into(), format!("{s0}.port"), "port is required"),
        (http("{number: 80, name: http, protocol: HTTPX}"), format!("{s0}.port.protocol"), "invalid protocol \"HTTPX\""),
        (http("{number: 80, name: http}"), format!("{s0}.port.protocol"), "invalid protocol \"\""),
        (http("{number: 0, name: http, protocol: HTTP}"), format!("{s0}.port.number"), "1..65535"),
        (http("{number: 70000, name: http, protocol: HTTP}"), format!("{s0}.port.number"), "1..65535"),
        (http("{number: 80, name: http, protocol: HTTP, targetPort: 8080}"), format!("{s0}.port.targetPort"), "no impact on Gateways"),
        (http("{number: 80, protocol: HTTP}"), format!("{s0}.port.name"), "port name must be set"),
        ("{servers: [{port: {number: 80, name: http, protocol: HTTP}, bind: not-an-ip, hosts: ['*']}]}".into(), format!("{s0}.bind"), "not a valid IP"),
        ("{servers: [{port: {number: 0, name: http, protocol: HTTP}, bind: 'unix://rel/gw.sock', hosts: ['*']}]}".into(), format!("{s0}.bind"), "absolute path"),
        ("{servers: [{port: {number: 80, name: http, protocol: HTTP}, bind: 'unix:///var/run/gw.sock', hosts: ['*']}]}".into(), format!("{s0}.port.number"), "must be 0 for unix domain socket"),
        ("{servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: ['*']}]}".into(), format!("{s0}.tls"), "must have TLS settings"),
        ("{servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*'], tls: {mode: SIMPLE, credentialName: c}}]}".into(), format!("{s0}.tls"), "plain text HTTP ports"),
        ("{servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*'], tls: {httpsRedirect: true, serverCertificate: /c.pem}}]}".into(), format!("{s0}.tls"), "plain text HTTP ports"),
        ("{servers: [{port: {number: 31400, name: tcp, protocol: TCP}, hosts: ['*'], tls: {mode: PASSTHROUGH}}]}".into(), format!("{s0}.tls"), "non HTTPS/TLS ports"),
        (https("{mode: SIMPLE}"), format!("{s0}.tls.serverCertificate"), "SIMPLE TLS requires a server certificate"),
        (https("{mode: SIMPLE, serverCertificate: /c.pem}"), format!("{s0}.tls.privateKey"), "SIMPLE TLS requires a private key"),
        (https("{mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem}"), format!("{s0}.tls.caCertificates"), "MUTUAL TLS requires a client CA bundle"),
        (https("{mode: OPTIONAL_MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem}"), format!("{s0}.tls.caCertificates"), "client CA bundle"),
        (https("{mode: SIMPLE, tlsCertificates: [{serverCertificate: /c.pem}]}"), format!("{s0}.tls.tlsCertificates[0].privateKey"), "requires a private key"),
        (https("{mode: SIMPLE, credentialName: c, serverCertificate: /c.pem, privateKey: /k.pem}"), format!("{s0}.tls"), "only one of credentialName"),
        (https("{mode: ISTIO_MUTUAL, credentialName: c}"), format!("{s0}.tls.credentialName"), "ISTIO_MUTUAL TLS cannot have associated credentialName"),
        (https("{mode: ISTIO_MUTUAL, serverCertificate: /c.pem}"), format!("{s0}.tls.serverCertificate"), "ISTIO_MUTUAL TLS cannot have associated server certificate"),
        (https("{mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem, caCrl: /crl.pem}"), format!("{s0}.tls.caCrl"), "CRL is not supported with SIMPLE TLS"),
        (https("{mode: PASSTHROUGH, credentialName: c, caCrl: /crl.pem}"), format!("{s0}.tls.caCrl"), "not supported with credentialName"),
        (https("{mode: SIMPLE, credentialName: c, minProtocolVersion: TLSV1_3, maxProtocolVersion: TLSV1_2}"), format!("{s0}.tls.minProtocolVersion"), "higher than maxProtocolVersion"),
        (
            "{servers: [{port: {number: 80, name: web, protocol: HTTP}, hosts: ['*']}, {port: {number: 8080, name: web, protocol: HTTP}, hosts: ['*']}]}".into(),
            "spec.servers[1].port.name".into(),
            "port names in servers must be unique: duplicate name web",
        ),
        ("{selector: {istio: 'bad value'}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]}".into(), "spec.selector.istio".into(), "invalid label value"),
        ("{selector: {istio: '*'}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]}".into(), "spec.selector.istio".into(), "wildcard"),
    ];
    for (spec, field, msg) in &cases {
        let r = check(&gateway("gw", spec));
        assert!(
            has(&r, field, msg, false),
            "spec {spec}: expected error at {field} containing {msg:?}, got {:?}",
            r.errors
        );
    }
    let r = check(&gateway(
        "my.gateway",
        "{servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]}",
    ));
    assert_eq!(error_fields(&r), ["metadata.name"]);
    assert!(r.errors[0].message.contains("invalid gateway name"));
}

#[test]
fn gateway_warnings() {
    let s0 = "spec.servers[0]";
    let cases = [
        (
            https("{httpsRedirect: true, mode: SIMPLE, credentialName: c}"),
            format!("{s0}.tls.httpsRedirect"),
            "only be used with http servers",
        ),
        (
            https("{mode: SIMPLE, credentialName: c, minProtocolVersion: TLSV1_0}"),
            format!("{s0}.tls.minProtocolVersion"),
            "below TLSV1_2",
        ),
        (
            https("{mode: SIMPLE, credentialName: c, cipherSuites: [NOT-A-CIPHER]}"),
            format!("{s0}.tls.cipherSuites[0]"),
            "invalid cipher suite",
        ),
        (
            https("{mode: SIMPLE, credentialName: c, cipherSuites: [AES128-SHA, AES128-SHA]}"),
            format!("{s0}.tls.cipherSuites[1]"),
            "duplicate cipher suite",
        ),
        (
            https(
                "{mode: SIMPLE, credentialName: c, cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256, AES256-GCM-SHA384]}",
            ),
            format!("{s0}.tls.cipherSuites[1]"),
            "not supported by mast-proxy",
        ),
        (
            https("{mode: PASSTHROUGH, credentialName: c}"),
            format!("{s0}.tls.mode"),
            "PASSTHROUGH mode does not use certificates",
        ),
        (
            https(
                "{mode: SIMPLE, tlsCertificates: [{serverCertificate: a, privateKey: b}, {serverCertificate: c, privateKey: d}, {serverCertificate: e, privateKey: f}]}",
            ),
            format!("{s0}.tls.tlsCertificates"),
            "up to 2 server certificates",
        ),
    ];
    for (spec, field, msg) in &cases {
        let r = check(&gateway("gw", spec));
        assert!(
            r.errors.is_empty(),
            "spec {spec}: unexpected errors {:?}",
            r.errors
        );
        assert!(
            has(&r, field, msg, true),
            "spec {spec}: expected warning at {field} containing {msg:?}, got {:?}",
            r.warnings
        );
    }
}

#[test]
fn accepted_edge_cases() {
    let specs = [
        // An HTTP server may carry a passthrough TLS block just to redirect to HTTPS.
        "{servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*'], tls: {httpsRedirect: true}}]}",
        // Protocols are case-insensitive; hosts may be namespaced.
        "{servers: [{port: {number: 80, name: http, protocol: http}, hosts: ['prod/*.example.com', './a.example.com', '*/b.example.com']}]}",
        // A Unix domain socket listener has port number 0.
        "{servers: [{port: {number: 0, name: uds, protocol: HTTP}, bind: 'unix:///var/run/gw.sock', hosts: ['*']}]}",
        "{servers: [{port: {number: 8080, name: http, protocol: GRPC-WEB}, bind: 10.0.0.1, hosts: ['*']}]}",
        "{servers: [{port: {number: 443, name: tls, protocol: TLS}, hosts: ['*'], tls: {mode: ISTIO_MUTUAL}}]}",
        "{servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: ['*'], tls: {mode: SIMPLE, credentialNames: [rsa, ecdsa]}}]}",
    ];
    for spec in specs {
        let r = check(&gateway("gw", spec));
        assert!(r.errors.is_empty(), "spec {spec}: {:?}", r.errors);
    }
}

#[test]
fn load_failures() {
    let doc = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: gw\nspec:\n  servers:\n  - port:\n      nubmer: 80\n      name: http\n      protocol: HTTP\n    hosts: ['*']\n";
    let d = load_error(doc);
    assert_eq!(d.field.as_deref(), Some("spec.servers[0].port.nubmer"));
    assert!(
        d.message.contains("did you mean \"number\""),
        "{}",
        d.message
    );
    assert_eq!(d.origin.map(|o| o.line), Some(8));

    let d = load_error(&gateway(
        "gw",
        "{servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: '*'}]}",
    ));
    assert_eq!(d.field.as_deref(), Some("spec.servers[0].hosts"));

    let d = load_error(&gateway(
        "gw",
        "{servers: [{port: {number: eighty, name: http, protocol: HTTP}, hosts: ['*']}]}",
    ));
    assert_eq!(d.field.as_deref(), Some("spec.servers[0].port.number"));

    let d = load_error(&gateway("gw", &https("{mode: SIMPEL}")));
    assert_eq!(d.field.as_deref(), Some("spec.servers[0].tls.mode"));
    assert!(
        d.message.contains("SIMPEL") && d.message.contains("SIMPLE"),
        "{}",
        d.message
    );

    let d = load_error(&gateway(
        "gw",
        &https("{mode: SIMPLE, minProtocolVersion: TLSV1_4}"),
    ));
    assert_eq!(
        d.field.as_deref(),
        Some("spec.servers[0].tls.minProtocolVersion")
    );
}

/// Loads `yaml` in every served version: no errors, and the spec serializes back to the input.
fn round_trip(yaml: &str) {
    for v in VERSIONS {
        let text = yaml.replace(
            "networking.istio.io/v1\n",
            &format!("networking.istio.io/{v}\n"),
        );
        let r = check(&text);
        assert!(r.errors.is_empty(), "{v}: {:?}", r.errors);
        let out = crate::load::load_str(&text, "t.yaml", &crate::load::LoadOptions::default());
        let spec = out.resources[0].as_gateway().expect("a gateway");
        let input = crate::yaml::parse_documents(&text)[0]
            .as_ref()
            .unwrap()
            .value["spec"]
            .clone();
        assert_eq!(serde_json::to_value(spec).unwrap(), input, "{v}");
    }
}

#[test]
fn round_trip_bookinfo_gateway() {
    round_trip(
        r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: bookinfo-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - "*"
"#,
    );
}

#[test]
fn round_trip_https_gateways() {
    round_trip(
        r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: mygateway
  namespace: istio-system
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - httpbin.example.com
    tls:
      httpsRedirect: true
  - port:
      number: 443
      name: https
      protocol: HTTPS
    hosts:
    - httpbin.example.com
    tls:
      mode: SIMPLE
      credentialName: httpbin-credential
      minProtocolVersion: TLSV1_2
      maxProtocolVersion: TLSV1_3
      cipherSuites:
      - ECDHE-RSA-AES256-GCM-SHA384
  - port:
      number: 8443
      name: https-mutual
      protocol: HTTPS
    hosts:
    - "prod/helloworld.example.com"
    tls:
      mode: MUTUAL
      credentialName: helloworld-credential
      subjectAltNames:
      - spiffe://cluster.local/ns/sleep/sa/sleep
  - port:
      number: 9443
      name: https-files
      protocol: HTTPS
    hosts:
    - files.example.com
    tls:
      mode: MUTUAL
      serverCertificate: /etc/certs/servercert.pem
      privateKey: /etc/certs/privatekey.pem
      caCertificates: /etc/certs/caCertificates.pem
"#,
    );
}

#[test]
fn round_trip_egress_gateway_passthrough() {
    round_trip(
        r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: istio-egressgateway
spec:
  selector:
    istio: egressgateway
  servers:
  - port:
      number: 443
      name: tls
      protocol: TLS
    hosts:
    - edition.cnn.com
    tls:
      mode: PASSTHROUGH
  - port:
      number: 15443
      name: tls-cross
      protocol: TLS
    hosts:
    - "*.local"
    tls:
      mode: AUTO_PASSTHROUGH
"#,
    );
}
