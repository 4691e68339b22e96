//! Tests of `Sidecar` validation: one invalid case per rule (exact field path and
//! message) here; warnings, load-time failures and round trips of realistic resources in
//! every served API version in [`round_trip`].

mod round_trip;

use crate::validate::{Report, check, error_fields};

/// A `Sidecar` named `test` in namespace `default` with exactly `spec`.
fn sidecar(spec: &str) -> String {
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: test\n  namespace: default\nspec:\n{spec}"
    )
}

fn assert_error(report: &Report, field: &str, message: &str, case: &str) {
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.field == field && e.message.contains(message)),
        "case {case}: expected error at {field} containing {message:?}, got {:?}",
        report.errors
    );
}

const EGRESS: &str = "egress: [{hosts: [\"./*\"]}]";

#[test]
fn invalid_table() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "workloadSelector: {labels: {app: ratings}}",
            "spec",
            "sidecar: empty configuration provided",
        ),
        (
            &format!("workloadSelector: {{labels: {{app: \"r*\"}}}}\n{EGRESS}"),
            "spec.workloadSelector.labels.app",
            "wildcard is not supported in selector",
        ),
        (
            &format!("workloadSelector: {{labels: {{\"bad key\": x}}}}\n{EGRESS}"),
            "spec.workloadSelector.labels.bad key",
            "invalid label key",
        ),
        // Egress listeners.
        (
            "egress: [{hosts: [\"./*\"]}, {port: {number: 80}, hosts: [\"./*\"]}]",
            "spec.egress[0]",
            "the egress listener with empty port should be the last listener",
        ),
        (
            "egress: [{hosts: [\"./*\"]}, {hosts: [\"istio-system/*\"]}]",
            "spec.egress[1]",
            "egress can have only one listener with empty port",
        ),
        (
            "egress: [{port: {number: 80}}]",
            "spec.egress[0].hosts",
            "egress listener must contain at least one host",
        ),
        (
            "egress: [{hosts: [\"foo.com\"]}]",
            "spec.egress[0].hosts[0]",
            "must be of the form namespace/dnsName",
        ),
        (
            "egress: [{hosts: [\"Bad_NS/foo.com\"]}]",
            "spec.egress[0].hosts[0]",
            "invalid namespace",
        ),
        (
            "egress: [{hosts: [\"./reviews\"]}]",
            "spec.egress[0].hosts[0]",
            "short names (non FQDN) are not allowed",
        ),
        (
            "egress: [{hosts: [\"./*foo.com\"]}]",
            "spec.egress[0].hosts[0]",
            "partial wildcard \"*foo.com\" not allowed",
        ),
        (
            "egress: [{hosts: [\"./foo.*.com\"]}]",
            "spec.egress[0].hosts[0]",
            "invalid host",
        ),
        (
            "egress: [{hosts: [\"ns/\"]}]",
            "spec.egress[0].hosts[0]",
            "invalid host",
        ),
        (
            "egress: [{port: {number: 80}, hosts: [\"./*\"]}, {port: {number: 80, protocol: HTTP}, hosts: [\"./*\"]}]",
            "spec.egress[1].port.number",
            "ports on IP bound listeners must be unique",
        ),
        (
            "egress: [{port: {number: 70000}, hosts: [\"./*\"]}]",
            "spec.egress[0].port.number",
            "port number 70000 must be in the range 1..65535",
        ),
        (
            "egress: [{port: {number: 80, name: Http_Web}, hosts: [\"./*\"]}]",
            "spec.egress[0].port.name",
            "invalid port name: Http_Web",
        ),
        (
            "egress: [{port: {number: 80, protocol: HTTP3}, hosts: [\"./*\"]}]",
            "spec.egress[0].port.protocol",
            "unsupported protocol: HTTP3",
        ),
        (
            "egress: [{port: {number: 80, targetPort: 8080}, hosts: [\"./*\"]}]",
            "spec.egress[0].port.targetPort",
            "targetPort has no impact on Sidecars",
        ),
        (
            "egress: [{port: {number: 80}, bind: 10.0.0.300, hosts: [\"./*\"]}]",
            "spec.egress[0].bind",
            "10.0.0.300 is not a valid IP",
        ),
        (
            "egress: [{port: {number: 0}, bind: 127.0.0.1, hosts: [\"./*\"]}]",
            "spec.egress[0].bind",
            "ports with 0 value must have a unix domain socket bind address",
        ),
        (
            "egress: [{port: {number: 0}, bind: \"unix://relative\", hosts: [\"./*\"]}]",
            "spec.egress[0].bind",
            "relative is not an absolute path to a file",
        ),
        (
            "egress: [{port: {number: 0}, bind: \"unix:///var/run/a.sock\", captureMode: IPTABLES, hosts: [\"./*\"]}]",
            "spec.egress[0].captureMode",
            "captureMode must be DEFAULT/NONE for unix domain socket listeners",
        ),
        (
            "egress: [{port: {number: 0}, bind: \"unix:///a.sock\", hosts: [\"./*\"]}, {port: {number: 0}, bind: \"unix:///a.sock\", hosts: [\"./*\"]}]",
            "spec.egress[1].bind",
            "unix domain socket values for listeners must be unique",
        ),
        // Ingress listeners.
        (
            "ingress: [{defaultEndpoint: \"127.0.0.1:8080\"}]",
            "spec.ingress[0].port",
            "port is required for ingress listeners",
        ),
        (
            "ingress: [{port: {protocol: HTTP, name: http}, defaultEndpoint: \"127.0.0.1:8080\"}]",
            "spec.ingress[0].port.number",
            "port number 0 must be in the range 1..65535",
        ),
        (
            "ingress: [{port: {number: 9080, protocol: HTTP, name: http}, bind: not-an-ip}]",
            "spec.ingress[0].bind",
            "not-an-ip is not a valid IP",
        ),
        (
            "ingress: [{port: {number: 9080, targetPort: 9081}}]",
            "spec.ingress[0].port.targetPort",
            "targetPort has no impact on Sidecars",
        ),
        (
            "ingress: [{port: {number: 9080}}, {port: {number: 9080, name: other}}]",
            "spec.ingress[1].port.number",
            "ports on IP bound listeners must be unique",
        ),
        (
            "ingress: [{port: {number: 9080}, defaultEndpoint: \"10.1.1.1:8080\"}]",
            "spec.ingress[0].defaultEndpoint",
            "defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>",
        ),
        (
            "ingress: [{port: {number: 9080}, defaultEndpoint: \"127.0.0.1:http\"}]",
            "spec.ingress[0].defaultEndpoint",
            "defaultEndpoint port (http) is not a number",
        ),
        (
            "ingress: [{port: {number: 9080}, defaultEndpoint: \"127.0.0.1:0\"}]",
            "spec.ingress[0].defaultEndpoint",
            "port number 0 must be in the range",
        ),
        (
            "ingress: [{port: {number: 9080}, defaultEndpoint: \"127.0.0.1\"}]",
            "spec.ingress[0].defaultEndpoint",
            "missing port in address",
        ),
        (
            "ingress: [{port: {number: 9080}, defaultEndpoint: \"unix://\"}]",
            "spec.ingress[0].defaultEndpoint",
            "unix address must not be empty",
        ),
        (
            "ingress: [{port: {number: 9080}, connectionPool: {}}]",
            "spec.ingress[0].connectionPool",
            "connection pool must have at least one field",
        ),
        (
            "ingress: [{port: {number: 9080}, connectionPool: {tcp: {maxConnections: -1}}}]",
            "spec.ingress[0].connectionPool.tcp.maxConnections",
            "max connections must be non-negative",
        ),
        (
            "inboundConnectionPool: {http: {http1MaxPendingRequests: -1}}",
            "spec.inboundConnectionPool.http.http1MaxPendingRequests",
            "http1 max pending requests must be non-negative",
        ),
        // Ingress TLS.
        (
            "ingress: [{port: {number: 8443, protocol: HTTP}, tls: {mode: SIMPLE, serverCertificate: /c, privateKey: /k}}]",
            "spec.ingress[0].tls",
            "server cannot have TLS settings for non HTTPS/TLS ports",
        ),
        (
            "ingress: [{port: {number: 8443, protocol: HTTPS}, tls: {mode: ISTIO_MUTUAL}}]",
            "spec.ingress[0].tls.mode",
            "cannot set mode to ISTIO_MUTUAL in sidecar ingress tls",
        ),
        (
            "ingress: [{port: {number: 8443, protocol: HTTPS}, tls: {mode: SIMPLE, credentialName: cert}}]",
            "spec.ingress[0].tls.credentialName",
            "credentialName is not currently supported",
        ),
        (
            "ingress: [{port: {number: 8443, protocol: HTTPS}, tls: {mode: SIMPLE, serverCertificate: /c, privateKey: /k, subjectAltNames: [a]}}]",
            "spec.ingress[0].tls.subjectAltNames",
            "subjectAltNames is not supported in ingress tls",
        ),
        (
            "ingress: [{port: {number: 8443, protocol: HTTPS}, tls: {mode: SIMPLE, serverCertificate: /c, privateKey: /k, httpsRedirect: true}}]",
            "spec.ingress[0].tls.httpsRedirect",
            "httpsRedirect is not supported",
        ),
        (
            "ingress: [{port: {number: 8443, protocol: HTTPS}, tls: {mode: SIMPLE, privateKey: /k}}]",
            "spec.ingress[0].tls.serverCertificate",
            "SIMPLE TLS requires a server certificate",
        ),
        (
            "ingress: [{port: {number: 8443, protocol: HTTPS}, tls: {mode: SIMPLE, serverCertificate: /c}}]",
            "spec.ingress[0].tls.privateKey",
            "SIMPLE TLS requires a private key",
        ),
        (
            "ingress: [{port: {number: 8443, protocol: HTTPS}, tls: {mode: MUTUAL, serverCertificate: /c, privateKey: /k}}]",
            "spec.ingress[0].tls.caCertificates",
            "MUTUAL TLS requires a client CA bundle",
        ),
        (
            "ingress: [{port: {number: 8443, protocol: HTTPS}, tls: {mode: SIMPLE, serverCertificate: /c, privateKey: /k, caCrl: /crl}}]",
            "spec.ingress[0].tls.caCrl",
            "CRL is not supported with SIMPLE TLS",
        ),
        // Outbound traffic policy.
        (
            "outboundTrafficPolicy: {mode: REGISTRY_ONLY, egressProxy: {host: proxy.example.com, port: {number: 3128}}}",
            "spec.outboundTrafficPolicy.egressProxy",
            "egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode",
        ),
        (
            "outboundTrafficPolicy: {egressProxy: {host: proxy.example.com, port: {number: 3128}}}",
            "spec.outboundTrafficPolicy.egressProxy",
            "egress_proxy must be set only with ALLOW_ANY",
        ),
        (
            "outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: proxy.example.com}}",
            "spec.outboundTrafficPolicy.egressProxy.port",
            "egress_proxy port must be non-nil",
        ),
        (
            "outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: \"*\", port: {number: 3128}}}",
            "spec.outboundTrafficPolicy.egressProxy.host",
            "domain name \"*\" invalid",
        ),
        (
            "outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: proxy.example.com, subset: v1.0, port: {number: 3128}}}",
            "spec.outboundTrafficPolicy.egressProxy.subset",
            "subset name is invalid: v1.0",
        ),
        (
            "outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: proxy.example.com, port: {number: 0}}}",
            "spec.outboundTrafficPolicy.egressProxy.port.number",
            "port number 0 must be in the range",
        ),
    ];
    for (spec, field, message) in cases {
        assert_error(&check(&sidecar(spec)), field, message, spec);
    }
}

#[test]
fn rules_stay_on_their_field() {
    let report = check(&sidecar(
        "egress: [{port: {number: 80}, hosts: [\"./reviews\"]}]",
    ));
    assert_eq!(error_fields(&report), ["spec.egress[0].hosts[0]"]);
    // A partial wildcard is an error for sidecars, not also the generic warning.
    let report = check(&sidecar("egress: [{hosts: [\"./*foo.com\"]}]"));
    assert_eq!(error_fields(&report), ["spec.egress[0].hosts[0]"]);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}
