//! More tests of `VirtualService` validation: HTTP route policies (one invalid input per
//! rule), warnings, inputs Istio accepts, Gateway API semantics and load-time failures.

use super::tests::{R, doc, has, http, report_of, routed};
use crate::validate::{check, load_error};

pub(super) fn policy_cases() -> Vec<(String, &'static str, &'static str)> {
    let big = "a".repeat(1_100_000);
    vec![
        (
            routed("retries: {attempts: -1}"),
            "spec.http[0].retries.attempts",
            "attempts cannot be negative",
        ),
        (
            routed("retries: {perTryTimeout: 2s}"),
            "spec.http[0].retries.attempts",
            "configured when attempts are set to 0",
        ),
        (
            routed("retries: {attempts: 3, retryOn: '5xx,bogus'}"),
            "spec.http[0].retries.retryOn",
            "\"bogus\" is not a valid retryOn policy",
        ),
        (
            routed("retries: {attempts: 3, retryOn: '999'}"),
            "spec.http[0].retries.retryOn",
            "\"999\" is not a valid retryOn policy",
        ),
        (
            routed("retries: {attempts: 3, perTryTimeout: 0s}"),
            "spec.http[0].retries.perTryTimeout",
            "greater than 1ms",
        ),
        (
            routed("retries: {attempts: 3, backoff: 0.1ms}"),
            "spec.http[0].retries.backoff",
            "greater than 1ms",
        ),
        (
            routed("fault: {}"),
            "spec.http[0].fault",
            "must have an abort and/or a delay",
        ),
        (
            routed("fault: {abort: {httpStatus: 700}}"),
            "spec.http[0].fault.abort.httpStatus",
            "HTTP status 700 is not in range 200-599",
        ),
        (
            routed("fault: {abort: {grpcStatus: NOPE}}"),
            "spec.http[0].fault.abort.grpcStatus",
            "gRPC status \"NOPE\" is not supported",
        ),
        (
            routed("fault: {abort: {http2Error: x}}"),
            "spec.http[0].fault.abort.http2Error",
            "HTTP/2 abort fault injection not supported",
        ),
        (
            routed("fault: {abort: {httpStatus: 500, grpcStatus: INTERNAL}}"),
            "spec.http[0].fault.abort",
            "only one of httpStatus",
        ),
        (
            routed("fault: {abort: {httpStatus: 500, percentage: {value: 150.0}}}"),
            "spec.http[0].fault.abort.percentage",
            "is neither 0.0",
        ),
        (
            routed("fault: {delay: {fixedDelay: 1s, percentage: {value: 0.00001}}}"),
            "spec.http[0].fault.delay.percentage",
            "[0.0001, 100.0]",
        ),
        (
            routed("fault: {delay: {fixedDelay: 1s, percent: 150}}"),
            "spec.http[0].fault.delay.percent",
            "percentage 150 is not in range 0..100",
        ),
        (
            routed("fault: {delay: {exponentialDelay: 1s}}"),
            "spec.http[0].fault.delay.exponentialDelay",
            "exponentialDelay not supported yet",
        ),
        (
            routed("fault: {delay: {fixedDelay: 1s, exponentialDelay: 1s}}"),
            "spec.http[0].fault.delay",
            "only one of fixedDelay",
        ),
        (
            routed("fault: {delay: {fixedDelay: 0s}}"),
            "spec.http[0].fault.delay.fixedDelay",
            "greater than 1ms",
        ),
        (
            routed("mirror: {host: m}, mirrorPercent: 150"),
            "spec.http[0].mirrorPercent",
            "mirror_percent must have a max value of 100",
        ),
        (
            routed("mirror: {host: m}, mirrorPercentage: {value: 150.0}"),
            "spec.http[0].mirrorPercentage",
            "mirror_percentage must have a max value",
        ),
        (
            routed("mirror: {host: m}, mirrorPercentage: {value: -1.0}"),
            "spec.http[0].mirrorPercentage",
            "must have a min value of 0",
        ),
        (
            routed("mirrors: [{destination: {host: m}, percentage: {value: 101.0}}]"),
            "spec.http[0].mirrors[0].percentage",
            "mirror percentage must have a max value",
        ),
        (
            routed("mirrors: [{destination: {host: '*'}}]"),
            "spec.http[0].mirrors[0].destination.host",
            "invalid destination host",
        ),
        (
            routed("mirror: {host: bad_host}"),
            "spec.http[0].mirror.host",
            "invalid (label",
        ),
        (
            routed("corsPolicy: {allowOrigins: [{exact: ''}]}"),
            "spec.http[0].corsPolicy.allowOrigins[0]",
            "is not a valid match type",
        ),
        (
            routed("corsPolicy: {allowMethods: [FOO]}"),
            "spec.http[0].corsPolicy.allowMethods[0]",
            "\"FOO\" is not a supported HTTP method",
        ),
        (
            routed("corsPolicy: {allowHeaders: ['bad header']}"),
            "spec.http[0].corsPolicy.allowHeaders[0]",
            "not a valid header name",
        ),
        (
            routed("corsPolicy: {exposeHeaders: ['']}"),
            "spec.http[0].corsPolicy.exposeHeaders[0]",
            "header name cannot be empty",
        ),
        (
            routed("corsPolicy: {maxAge: 1.5s}"),
            "spec.http[0].corsPolicy.maxAge",
            "accurate only to seconds precision",
        ),
        (
            http("redirect: {}"),
            "spec.http[0].redirect",
            "redirect must specify URI, authority, scheme, or port",
        ),
        (
            http("redirect: {uri: /a, redirectCode: 200}"),
            "spec.http[0].redirect.redirectCode",
            "200 is not a valid redirect code",
        ),
        (
            http("redirect: {scheme: ftp}"),
            "spec.http[0].redirect.scheme",
            "invalid redirect scheme",
        ),
        (
            http("redirect: {port: 70000}"),
            "spec.http[0].redirect.port",
            "port number 70000",
        ),
        (
            http("redirect: {port: 80, derivePort: FROM_REQUEST_PORT}"),
            "spec.http[0].redirect",
            "only one of port or derivePort",
        ),
        (
            http("directResponse: {status: 100}"),
            "spec.http[0].directResponse.status",
            "HTTP status 100 is not in range",
        ),
        (
            http("directResponse: {status: 200, body: {string: a, bytes: YQ==}}"),
            "spec.http[0].directResponse.body",
            "only one of string or bytes",
        ),
        (
            http("directResponse: {status: 200, body: {bytes: '!!!'}}"),
            "spec.http[0].directResponse.body.bytes",
            "base64",
        ),
        (
            http(&format!(
                "directResponse: {{status: 200, body: {{string: {big}}}}}"
            )),
            "spec.http[0].directResponse.body",
            "must be less than 1MB",
        ),
        (
            routed("rewrite: {uri: /a, uriRegexRewrite: {match: a, rewrite: b}}"),
            "spec.http[0].rewrite",
            "may only contain one of URI",
        ),
        (
            routed("rewrite: {}"),
            "spec.http[0].rewrite",
            "rewrite must specify at least one of",
        ),
        (
            routed("rewrite: {uriRegexRewrite: {match: ^/a}}"),
            "spec.http[0].rewrite.uriRegexRewrite",
            "requires both Rewrite and Match",
        ),
        (
            routed("rewrite: {uriRegexRewrite: {match: '(', rewrite: /}}"),
            "spec.http[0].rewrite.uriRegexRewrite.match",
            "RE2 style",
        ),
    ]
}

fn warning_cases() -> Vec<(String, &'static str, &'static str)> {
    let two = |a: &str, b: &str| format!("hosts: [r]\nhttp:\n- {{{R}{a}}}\n- {{{R}{b}}}");
    vec![
        (format!("hosts: [r]\ngateways: [gw.istio-system]\nhttp: [{{{R}}}]"), "spec.gateways[0]", "prefer the <namespace>/<name> format: \"istio-system/gw\""),
        (routed("match: [{headers: {End-User: {exact: jason}}}]"), "spec.http[0].match[0].headers.End-User", "must be lowercase"),
        (routed("mirror: {host: m}, mirrorPercent: 50"), "spec.http[0].mirrorPercent", "deprecated setting \"mirrorPercent\""),
        (routed("fault: {abort: {percentage: {value: 10.0}}}"), "spec.http[0].fault.abort", "abort configured, but error type not set"),
        (routed("fault: {delay: {fixedDelay: 1s, percent: 10}}"), "spec.http[0].fault.delay.percent", "deprecated setting \"percent\""),
        (routed("corsPolicy: {allowOrigin: [a.com]}"), "spec.http[0].corsPolicy.allowOrigin", "deprecated setting \"allowOrigin\""),
        (http(&format!("directResponse: {{status: 200, body: {{string: {}}}}}", "a".repeat(200_000))), "spec.http[0].directResponse.body", "may impact control plane performance"),
        (http("delegate: {}"), "spec.http[0].delegate.name", "delegate name is empty"),
        (
            "hosts: ['*.example.com']\ntls: [{match: [{sniHosts: [10.0.0.1]}], route: [{destination: {host: a}}]}]".to_owned(),
            "spec.tls[0].match[0].sniHosts[0]",
            "goes against SNI spec",
        ),
        (two("", ""), "spec.http[1]", "virtualService rule #1 not used (only the last rule can have no matches)"),
        (two("", ", match: [{uri: {exact: /a}}]"), "spec.http[1]", "rule #1 not used (route without matches defined before)"),
        (
            two(", match: [{uri: {exact: /a}}]", ", name: second, match: [{name: m, uri: {exact: /a}}]"),
            "spec.http[1].match[0]",
            "rule \"second\" match \"m\" is not used (duplicate/overlapping match in rule #0)",
        ),
        (two(", match: [{uri: {exact: /a}}]", ", match: [{uri: {exact: /a}}]"), "spec.http[1]", "rule #1 not used (all matches used by prior rules)"),
        (
            two(", match: [{uri: {prefix: /api}}]", ", match: [{uri: {prefix: /api/v1}}]"),
            "spec.http[1].match[0]",
            "match #0 of prefix /api/v1 is not used (duplicate/overlapping match in rule #0 of prefix /api on #0)",
        ),
        (
            "hosts: [db]\ntcp:\n- {match: [{port: 1}], route: [{destination: {host: a}}]}\n- {match: [{port: 1}], route: [{destination: {host: b}}]}".to_owned(),
            "spec.tcp[1].match[0]",
            "rule #1 match #0 is not used",
        ),
    ]
}

#[test]
fn warnings_report_their_field() {
    let mut failures = Vec::new();
    for (spec, field, msg) in &warning_cases() {
        let report = report_of(spec);
        if !has(&report.warnings, field, msg) || !report.errors.is_empty() {
            failures.push(format!("expected only a warning at {field} containing {msg:?}\nspec:\n{}\ngot: {report:#?}", &spec[..spec.len().min(300)]));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Inputs Istio accepts that a stricter reading might reject.
#[test]
fn accepts_what_istio_accepts() {
    let gw = "hosts: ['*.example.com', 10.1.2.3]\ngateways: [istio-system/gw]\n";
    let specs = [
        format!(
            "{gw}http: [{{match: [{{headers: {{'@request.auth.claims.group': {{exact: a}}}}}}], {R}}}]"
        ),
        format!(
            "hosts: [r]\nhttp: [{{match: [{{headers: {{':authority': {{exact: a}}, x-present: {{}}}}, uri: {{prefix: ''}}}}], {R}}}]"
        ),
        "hosts: ['*.example.com']\ngateways: [istio-system/gw]\ntls: [{match: [{sniHosts: [outbound_.80_._.a.example.com]}], route: [{destination: {host: a}}]}]"
            .to_owned(),
        routed(
            "retries: {attempts: 2, retryOn: '503,5xx,gateway-error,unavailable', perTryTimeout: 1s, backoff: 25ms}",
        ),
        routed(
            "headers: {request: {set: {x-host: '%HOSTNAME%', x-pct: '100%%', ':authority': a.com}}}",
        ),
        http("redirect: {port: 0}"),
        http("route: [{destination: {host: a}, weight: 0}, {destination: {host: b}, weight: 1}]"),
        format!("hosts: [r]\ngateways: [mesh]\nhttp: [{{{R}}}]"),
    ];
    for spec in &specs {
        let report = report_of(spec);
        assert!(
            report.errors.is_empty(),
            "spec:\n{spec}\nerrors: {:#?}",
            report.errors
        );
    }
}

#[test]
fn gateway_api_semantics_relax_names() {
    let text = doc("hosts: [r]\ngateways: [ns/Free-Form.Name]\nhttp: [{route: [{destination: {host: 'svc:80'}}]}]")
        .replace("  name: t\n", "  name: t\n  annotations:\n    internal.istio.io/route-semantics: gateway\n");
    let report = check(&text);
    assert!(report.errors.is_empty(), "{report:#?}");
}

#[test]
fn load_failures_name_the_field() {
    let e = load_error(&doc(
        "hosts: [r]\nhttp:\n- route:\n  - destination: {host: r}\n    weigth: 10",
    ));
    assert_eq!(e.field.as_deref(), Some("spec.http[0].route[0].weigth"));
    assert!(
        e.message.contains("did you mean \"weight\""),
        "{}",
        e.message
    );
    assert_eq!(e.origin.as_ref().map(|o| o.line), Some(11));

    let cases = [
        (
            "hosts: [r]\nhttp: [{route: [{destination: {host: r}, weight: heavy}]}]",
            "spec.http[0].route[0].weight",
            "invalid type",
        ),
        (
            "hosts: r\nhttp: [{route: [{destination: {host: r}}]}]",
            "spec.hosts",
            "invalid type",
        ),
        (
            "hosts: [r]\nhttp: [{route: [{destination: {host: r}}], timeout: 10 seconds}]",
            "spec.http[0].timeout",
            "invalid duration",
        ),
        (
            "hosts: [r]\nhttp: [{match: [{uri: {regex: 'a(b'}}], route: [{destination: {host: r}}]}]",
            "spec.http[0].match[0].uri",
            "invalid regex",
        ),
        (
            "hosts: [r]\nhttp: [{match: [{uri: {exact: a, prefix: b}}], route: [{destination: {host: r}}]}]",
            "spec.http[0].match[0].uri",
            "only one of",
        ),
        (
            "hosts: [r]\nhttp: [{redirect: {uri: /a, derivePort: SOMEHOW}}]",
            "spec.http[0].redirect.derivePort",
            "FROM_PROTOCOL_DEFAULT",
        ),
        (
            "hosts: [r]\nhttp: [{route: [{destination: {host: r}}], corsPolicy: {unmatchedPreflights: DROP}}]",
            "spec.http[0].corsPolicy.unmatchedPreflights",
            "IGNORE",
        ),
        (
            "hosts: [r]\nhttp: [{route: [{weight: 100}]}]",
            "spec.http[0].route[0]",
            "missing field `destination`",
        ),
        (
            "hosts: [r]\ntcp: [{route: [{destination: {subset: v1}}]}]",
            "spec.tcp[0].route[0].destination",
            "missing field `host`",
        ),
        (
            "hosts: [r]\ntls: [{match: [{sni_hosts: [a]}]}]",
            "spec.tls[0].match[0].sni_hosts",
            "did you mean \"sniHosts\"",
        ),
    ];
    for (spec, field, msg) in cases {
        let e = load_error(&doc(spec));
        assert_eq!(e.field.as_deref(), Some(field), "{spec}: {e:?}");
        assert!(e.message.contains(msg), "{spec}: {}", e.message);
    }
}
