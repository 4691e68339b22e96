//! Tests of `VirtualService` validation: one invalid input per rule, asserting the field
//! path and the message, for the resource, its HTTP routes and its TLS/TCP routes (route
//! policies are in `tests_more`). Holds the helpers the other test modules share.

use crate::validate::{FieldMessage, Report, check};

/// A whole VirtualService document around `spec` (YAML at column 0).
pub(super) fn doc(spec: &str) -> String {
    let body: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: t\n  namespace: default\nspec:\n{body}"
    )
}

pub(super) const R: &str = "route: [{destination: {host: r}}]";

/// A spec with host `r` and one HTTP route given as the body of a flow mapping.
pub(super) fn http(route: &str) -> String {
    format!("hosts: [r]\nhttp:\n- {{{route}}}")
}

/// As [`http`], with a valid `route` added.
pub(super) fn routed(extra: &str) -> String {
    http(&format!("{R}, {extra}"))
}

pub(super) fn has(msgs: &[FieldMessage], field: &str, msg: &str) -> bool {
    msgs.iter()
        .any(|e| e.field == field && e.message.contains(msg))
}

pub(super) fn report_of(spec: &str) -> Report {
    check(&doc(spec))
}

fn error_cases() -> Vec<(String, &'static str, &'static str)> {
    let mut cases = vs_level_cases();
    cases.extend(http_cases());
    cases.extend(super::tests_more::policy_cases());
    cases.extend(l4_cases());
    cases
}

fn vs_level_cases() -> Vec<(String, &'static str, &'static str)> {
    vec![
        (
            format!("hosts: [bad_host]\nhttp: [{{{R}}}]"),
            "spec.hosts[0]",
            "domain name \"bad_host\" invalid",
        ),
        (
            format!("hosts: ['*']\nhttp: [{{{R}}}]"),
            "spec.hosts[0]",
            "wildcard host * is not allowed",
        ),
        (
            format!("hosts: [a.example.com, '*.example.com']\nhttp: [{{{R}}}]"),
            "spec.hosts[1]",
            "duplicate hosts in virtual service",
        ),
        (
            "hosts: [r]".to_owned(),
            "spec",
            "http, tcp or tls must be provided",
        ),
        (
            format!("gateways: [gw]\nhttp: [{{{R}}}]"),
            "spec.gateways",
            "delegate virtual service must have no gateways",
        ),
        (
            "tls: [{match: [{sniHosts: [a]}], route: [{destination: {host: a}}]}]".to_owned(),
            "spec.tls",
            "must have no tls route",
        ),
        (
            "tcp: [{route: [{destination: {host: a}}]}]".to_owned(),
            "spec.tcp",
            "must have no tcp route",
        ),
        (
            format!("hosts: [r]\ngateways: [ns/Bad_Name]\nhttp: [{{{R}}}]"),
            "spec.gateways[0]",
            "invalid value for gateway name",
        ),
        (
            format!("hosts: [r]\ngateways: [bad_ns/gw]\nhttp: [{{{R}}}]"),
            "spec.gateways[0]",
            "invalid value for namespace",
        ),
        (
            format!("hosts: [r]\ngateways: [/gw]\nhttp: [{{{R}}}]"),
            "spec.gateways[0]",
            "cannot be empty",
        ),
        (
            format!("hosts: [r]\ngateways: [bad_gw]\nhttp: [{{{R}}}]"),
            "spec.gateways[0]",
            "label \"bad_gw\" invalid",
        ),
        (
            routed("match: [{headers: {'@request.auth.claims.group': {exact: a}}}]"),
            "spec.http[0].match[0].headers.@request.auth.claims.group",
            "JWT claim based routing",
        ),
        (
            format!("hosts: [r]\nhttp: [{{{R}}}]\nexportTo: ['.', '*']"),
            "spec.exportTo",
            "cannot have both",
        ),
    ]
}

fn http_cases() -> Vec<(String, &'static str, &'static str)> {
    vec![
        (
            routed("redirect: {uri: /a}"),
            "spec.http[0].route",
            "cannot contain both route and redirect",
        ),
        (
            http("redirect: {uri: /a}, fault: {abort: {httpStatus: 500}}"),
            "spec.http[0].fault",
            "both fault and redirect",
        ),
        (
            http("redirect: {uri: /a}, rewrite: {uri: /b}"),
            "spec.http[0].rewrite",
            "both rewrite and redirect",
        ),
        (
            http("redirect: {uri: /a}, directResponse: {status: 200}"),
            "spec.http[0].directResponse",
            "both direct_response and redirect",
        ),
        (
            routed("directResponse: {status: 200}"),
            "spec.http[0].route",
            "both route and direct_response",
        ),
        (
            http("directResponse: {status: 200}, fault: {abort: {httpStatus: 500}}"),
            "spec.http[0].fault",
            "both fault and direct_response",
        ),
        (
            http("directResponse: {status: 200}, rewrite: {uri: /b}"),
            "spec.http[0].rewrite",
            "both rewrite and direct_response",
        ),
        (
            http("name: empty"),
            "spec.http[0]",
            "HTTP route, redirect or direct_response is required",
        ),
        (
            routed("mirror: {host: m}, mirrors: [{destination: {host: m}}]"),
            "spec.http[0].mirrors",
            "both mirror and mirrors",
        ),
        (
            routed("delegate: {name: d}"),
            "spec.http[0].route",
            "root HTTP route  must not specify route",
        ),
        (
            http("name: root, delegate: {name: d}, redirect: {uri: /a}"),
            "spec.http[0].redirect",
            "root HTTP route root must not specify redirect",
        ),
        (
            format!("http: [{{{R}, delegate: {{name: d}}}}]"),
            "spec.http[0].delegate",
            "delegate HTTP route cannot contain delegate",
        ),
        (
            routed("match: [{headers: {'bad header': {exact: x}}}]"),
            "spec.http[0].match[0].headers.bad header",
            "is not a valid header name",
        ),
        (
            routed("match: [{headers: {x-a: {prefix: ''}}}]"),
            "spec.http[0].match[0].headers.x-a",
            "\"headers\": prefix string match should not be empty",
        ),
        (
            routed("match: [{uri: {regex: ''}}]"),
            "spec.http[0].match[0].uri",
            "\"uri\": regex string match should not be empty",
        ),
        (
            routed("match: [{method: {prefix: ''}}]"),
            "spec.http[0].match[0].method",
            "\"method\": prefix string match",
        ),
        (
            routed("match: [{authority: {prefix: ''}}]"),
            "spec.http[0].match[0].authority",
            "\"authority\": prefix string match",
        ),
        (
            routed("match: [{scheme: {regex: ''}}]"),
            "spec.http[0].match[0].scheme",
            "\"scheme\": regex string match",
        ),
        (
            routed("match: [{queryParams: {q: {prefix: ''}}}]"),
            "spec.http[0].match[0].queryParams.q",
            "\"queryParams\": prefix",
        ),
        (
            routed("match: [{withoutHeaders: {'x y': {exact: a}}}]"),
            "spec.http[0].match[0].withoutHeaders.x y",
            "not a valid header name",
        ),
        (
            routed(&format!(
                "match: [{{uri: {{regex: '{}'}}}}]",
                "a".repeat(1100)
            )),
            "spec.http[0].match[0].uri",
            "regex is too large",
        ),
        (
            routed("match: [{port: 70000}]"),
            "spec.http[0].match[0].port",
            "port number 70000 must be in the range",
        ),
        (
            routed("match: [{sourceLabels: {'bad key': x}}]"),
            "spec.http[0].match[0].sourceLabels.bad key",
            "invalid label key",
        ),
        (
            routed("match: [{gateways: [Bad_GW]}]"),
            "spec.http[0].match[0].gateways[0]",
            "invalid (label",
        ),
        (
            routed("match: [{sourceNamespace: Bad_NS}]"),
            "spec.http[0].match[0].sourceNamespace",
            "sourceNamespace match Bad_NS is invalid",
        ),
        (
            routed("headers: {request: {set: {':path': /x}}}"),
            "spec.http[0].headers.request.set.:path",
            "header cannot have \":\" prefix",
        ),
        (
            routed("headers: {response: {set: {Host: x}}}"),
            "spec.http[0].headers.response.set.Host",
            "cannot set Host header",
        ),
        (
            routed("headers: {request: {remove: ['']}}"),
            "spec.http[0].headers.request.remove[0]",
            "header name cannot be empty",
        ),
        (
            routed("headers: {request: {add: {x-a: '%abc'}}}"),
            "spec.http[0].headers.request.add.x-a",
            "Un-terminated variable expression",
        ),
        (
            routed("headers: {response: {add: {x-a: \"a\\x01b\"}}}"),
            "spec.http[0].headers.response.add.x-a",
            "header value configuration",
        ),
        (
            http("route: [{destination: {host: r}, headers: {response: {remove: [':status']}}}]"),
            "spec.http[0].route[0].headers.response.remove[0]",
            "header cannot have \":\" prefix",
        ),
        (
            routed("rewrite: {authority: a.com}, headers: {request: {set: {host: b.com}}}"),
            "spec.http[0].headers.request.set.host",
            "authority header cannot be set multiple times",
        ),
        (
            http(
                "route: [{destination: {host: r}, weight: 110}, {destination: {host: r}, weight: -10}]",
            ),
            "spec.http[0].route[1].weight",
            "weight -10 must not be negative",
        ),
        (
            http("route: [{destination: {host: r}, weight: 3000000000}]"),
            "spec.http[0].route[0].weight",
            "larger than the maximum",
        ),
        (
            http("route: [{destination: {host: a}}, {destination: {host: b}}]"),
            "spec.http[0].route",
            "total destination weight = 0",
        ),
        (
            http("route: [{destination: {host: '*'}}]"),
            "spec.http[0].route[0].destination.host",
            "invalid destination host *",
        ),
        (
            http("route: [{destination: {host: a..b}}]"),
            "spec.http[0].route[0].destination.host",
            "label \"\" invalid",
        ),
        (
            http("route: [{destination: {host: 10.0.0.1}}]"),
            "spec.http[0].route[0].destination.host",
            "cannot be all-numeric",
        ),
        (
            http("route: [{destination: {host: r, subset: V_1}}]"),
            "spec.http[0].route[0].destination.subset",
            "subset name is invalid: V_1",
        ),
        (
            http("route: [{destination: {host: r, port: {}}}]"),
            "spec.http[0].route[0].destination.port.number",
            "port number 0",
        ),
        (
            routed("timeout: 0.5ms"),
            "spec.http[0].timeout",
            "duration must be greater than 1ms",
        ),
        (
            routed("timeout: 1.0005s"),
            "spec.http[0].timeout",
            "only durations to ms precision",
        ),
    ]
}

fn l4_cases() -> Vec<(String, &'static str, &'static str)> {
    let tls = |m: &str, route: &str| {
        format!("hosts: ['*.example.com']\ntls: [{{match: [{m}], route: [{route}]}}]")
    };
    let tcp =
        |m: &str, route: &str| format!("hosts: [db]\ntcp: [{{match: [{m}], route: [{route}]}}]");
    let d = "{destination: {host: a}}";
    vec![
        (
            format!("hosts: [a.com]\ntls: [{{route: [{d}]}}]"),
            "spec.tls[0].match",
            "TLS route must have at least one match condition",
        ),
        (
            tls("{port: 443}", d),
            "spec.tls[0].match[0].sniHosts",
            "TLS match must have at least one SNI host",
        ),
        (
            tls("{sniHosts: [a.other.org]}", d),
            "spec.tls[0].match[0].sniHosts[0]",
            "is not a compatible subset of any of the virtual service hosts",
        ),
        (
            tls("{sniHosts: [bad_sni.example.com]}", d),
            "spec.tls[0].match[0].sniHosts[0]",
            "invalid (label",
        ),
        (
            tls("{sniHosts: [a.example.com]}", "").replace(", route: []", ""),
            "spec.tls[0].route",
            "TLS route is required",
        ),
        (
            tls(
                "{sniHosts: [a.example.com], destinationSubnets: [10.0.0.0/40]}",
                d,
            ),
            "spec.tls[0].match[0].destinationSubnets[0]",
            "not a valid CIDR block",
        ),
        (
            tls("{sniHosts: [a.example.com], port: -1}", d),
            "spec.tls[0].match[0].port",
            "port number -1",
        ),
        (
            tls("{sniHosts: [a.example.com], sourceNamespace: A_B}", d),
            "spec.tls[0].match[0].sourceNamespace",
            "is invalid",
        ),
        (
            tls(
                "{sniHosts: [a.example.com]}",
                "{destination: {host: a}, weight: -1}",
            ),
            "spec.tls[0].route[0].weight",
            "must not be negative",
        ),
        (
            "hosts: [db]\ntcp: [{match: [{port: 27017}]}]".to_owned(),
            "spec.tcp[0].route",
            "TCP route is required",
        ),
        (
            tcp("{destinationSubnets: [1.2.3]}", d),
            "spec.tcp[0].match[0].destinationSubnets[0]",
            "1.2.3 is not a valid IP",
        ),
        (
            tcp("{gateways: [ns/Bad_GW]}", d),
            "spec.tcp[0].match[0].gateways[0]",
            "invalid value for gateway name",
        ),
        (
            tcp("{sourceLabels: {app: 'bad value!'}}", d),
            "spec.tcp[0].match[0].sourceLabels.app",
            "invalid label value",
        ),
        (
            tcp(
                "{port: 1}",
                "{destination: {host: a}}, {destination: {host: b}}",
            ),
            "spec.tcp[0].route",
            "total destination weight = 0",
        ),
        (
            tcp("{port: 1}", "{destination: {host: a, port: {number: 0}}}"),
            "spec.tcp[0].route[0].destination.port.number",
            "port number 0",
        ),
    ]
}

#[test]
fn each_rule_reports_its_field() {
    let cases = error_cases();
    let mut failures = Vec::new();
    for (spec, field, msg) in &cases {
        let report = report_of(spec);
        if !has(&report.errors, field, msg) {
            let shown = if spec.len() > 300 { &spec[..300] } else { spec };
            failures.push(format!(
                "expected error at {field} containing {msg:?}\nspec:\n{shown}\ngot: {:#?}",
                report.errors
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
