//! Tests of the route kinds' validation: a table of invalid HTTPRoutes, GRPCRoute, TCPRoute
//! and TLSRoute rules, load failures, and round trips.

use super::tests::{assert_error, round_trip};
use crate::validate::load_error;

const HEAD: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
  namespace: default
spec:
  parentRefs:
  - name: gw
";

fn rule(body: &str) -> String {
    format!("{HEAD}  rules:\n  - {body}")
}

#[test]
fn http_route_rules() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "matches:\n    - path: {type: PathPrefix, value: foo}\n",
            "spec.rules[0].matches[0].path.value",
            "must be an absolute path",
        ),
        (
            "matches:\n    - path: {type: Exact, value: /a//b}\n",
            "spec.rules[0].matches[0].path.value",
            "must not contain '//'",
        ),
        (
            "matches:\n    - path: {type: Exact, value: /a/..}\n",
            "spec.rules[0].matches[0].path.value",
            "must not end with '/..'",
        ),
        (
            "matches:\n    - path: {type: RegularExpression, value: '/(a'}\n",
            "spec.rules[0].matches[0].path.value",
            "invalid regex",
        ),
        (
            "matches:\n    - method: FETCH\n",
            "spec.rules[0].matches[0].method",
            "must be one of",
        ),
        (
            "matches:\n    - headers: [{name: 'bad header', value: x}]\n",
            "spec.rules[0].matches[0].headers[0].name",
            "invalid header name",
        ),
        (
            "matches:\n    - headers: [{name: a, value: x}, {name: A, value: y}]\n",
            "spec.rules[0].matches[0].headers[1].name",
            "matched twice",
        ),
        (
            "matches:\n    - queryParams: [{name: q, value: '(', type: RegularExpression}]\n",
            "spec.rules[0].matches[0].queryParams[0].value",
            "invalid regex",
        ),
        (
            "backendRefs: [{name: svc}]\n",
            "spec.rules[0].backendRefs[0]",
            "Must have port for Service reference",
        ),
        (
            "backendRefs: [{name: svc, port: 80, weight: -1}]\n",
            "spec.rules[0].backendRefs[0].weight",
            "between 0 and 1000000",
        ),
        (
            "backendRefs: [{name: svc, port: 70000}]\n",
            "spec.rules[0].backendRefs[0].port",
            "between 1 and 65535",
        ),
        (
            "filters: [{type: RequestHeaderModifier}]\n",
            "spec.rules[0].filters[0].requestHeaderModifier",
            "must be specified for RequestHeaderModifier",
        ),
        (
            "filters: [{type: RequestHeaderModifier, requestHeaderModifier: {}, urlRewrite: {}}]\n",
            "spec.rules[0].filters[0].urlRewrite",
            "must be nil if the filter.type is not URLRewrite",
        ),
        (
            "filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {}}, {type: ResponseHeaderModifier, responseHeaderModifier: {}}]\n",
            "spec.rules[0].filters[1]",
            "cannot be repeated",
        ),
        (
            "filters: [{type: RequestRedirect, requestRedirect: {}}, {type: URLRewrite, urlRewrite: {}}]\n",
            "spec.rules[0].filters",
            "not both",
        ),
        (
            "filters: [{type: RequestRedirect, requestRedirect: {statusCode: 304}}]\n",
            "spec.rules[0].filters[0].requestRedirect.statusCode",
            "must be one of 301",
        ),
        (
            "filters: [{type: RequestRedirect, requestRedirect: {scheme: ftp}}]\n",
            "spec.rules[0].filters[0].requestRedirect.scheme",
            "http or https",
        ),
        (
            "filters: [{type: RequestRedirect, requestRedirect: {}}]\n    backendRefs: [{name: s, port: 80}]\n",
            "spec.rules[0].backendRefs",
            "must not be used together with backendRefs",
        ),
        (
            "filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath}}}]\n",
            "spec.rules[0].filters[0].urlRewrite.path.replaceFullPath",
            "must be specified when type is set to 'ReplaceFullPath'",
        ),
        (
            "filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /x}}}]\n    matches: [{path: {type: Exact, value: /a}}]\n",
            "spec.rules[0].filters",
            "exactly one PathPrefix match",
        ),
        (
            "filters: [{type: URLRewrite, urlRewrite: {hostname: 'UP'}}]\n",
            "spec.rules[0].filters[0].urlRewrite.hostname",
            "invalid hostname",
        ),
        (
            "filters: [{type: RequestMirror, requestMirror: {backendRef: {name: m, port: 80}, percent: 10, fraction: {numerator: 1}}}]\n",
            "spec.rules[0].filters[0].requestMirror",
            "Only one of percent or fraction",
        ),
        (
            "filters: [{type: RequestMirror, requestMirror: {backendRef: {name: m, port: 80}, percent: 101}}]\n",
            "spec.rules[0].filters[0].requestMirror.percent",
            "between 0 and 100",
        ),
        (
            "filters: [{type: RequestMirror, requestMirror: {backendRef: {name: m, port: 80}, fraction: {numerator: 5, denominator: 4}}}]\n",
            "spec.rules[0].filters[0].requestMirror.fraction",
            "less than or equal",
        ),
        (
            "filters: [{type: RequestMirror, requestMirror: {backendRef: {name: m}}}]\n",
            "spec.rules[0].filters[0].requestMirror.backendRef",
            "Must have port",
        ),
        (
            "filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: '1'}, {name: A, value: '2'}]}}]\n",
            "spec.rules[0].filters[0].requestHeaderModifier.set[1].name",
            "listed twice",
        ),
        (
            "filters: [{type: CORS, cors: {maxAge: 0}}]\n",
            "spec.rules[0].filters[0].cors.maxAge",
            "at least 1",
        ),
        (
            "timeouts: {request: 1.5s}\n",
            "spec.rules[0].timeouts.request",
            "invalid duration",
        ),
        (
            "timeouts: {request: 1s, backendRequest: 2s}\n",
            "spec.rules[0].timeouts.backendRequest",
            "cannot be longer than request",
        ),
        (
            "retry: {codes: [200]}\n",
            "spec.rules[0].retry.codes[0]",
            "between 400 and 599",
        ),
    ];
    for (body, field, text) in cases {
        assert_error(&rule(body), field, text);
    }
    let host = format!("{HEAD}  hostnames: ['*.Example.com']\n");
    assert_error(&host, "spec.hostnames[0]", "invalid hostname");
    let ip = format!("{HEAD}  hostnames: ['10.0.0.1']\n");
    assert_error(&ip, "spec.hostnames[0]", "must not be an IP address");
    let twice = format!("{HEAD}  - name: gw\n");
    assert_error(
        &twice,
        "spec.parentRefs[0]",
        "sectionName or port must be specified",
    );
    let same = HEAD.replace(
        "  - name: gw\n",
        "  - {name: gw, sectionName: a}\n  - {name: gw, sectionName: a}\n",
    );
    assert_error(&same, "spec.parentRefs[1]", "sectionName must be unique");
    let nameless = HEAD.replace("  - name: gw\n", "  - sectionName: a\n");
    assert_error(&nameless, "spec.parentRefs[0].name", "required");
}

#[test]
fn grpc_and_l4_rules() {
    let grpc = |m: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: g
spec:
  rules:
  - {m}
"
        )
    };
    assert_error(
        &grpc("matches: [{method: {type: Exact}}]"),
        "spec.rules[0].matches[0].method",
        "One or both",
    );
    assert_error(
        &grpc("matches: [{method: {service: 'a b'}}]"),
        "spec.rules[0].matches[0].method.service",
        "valid characters",
    );
    assert_error(
        &grpc("matches: [{method: {method: 'a.b'}}]"),
        "spec.rules[0].matches[0].method.method",
        "valid characters",
    );
    assert_error(
        &grpc("filters: [{type: URLRewrite, urlRewrite: {}}]"),
        "spec.rules[0].filters[0].type",
        "not supported",
    );
    let tcp = "apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata:
  name: t
spec:
  rules:
  - backendRefs: []
";
    assert_error(tcp, "spec.rules[0].backendRefs", "at least one backendRef");
    let tls = "apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata:
  name: t
spec:
  hostnames: [Bad]
";
    assert_error(tls, "spec.hostnames[0]", "invalid hostname");
    assert_error(tls, "spec.rules", "at least one rule");
}

#[test]
fn route_load_failures() {
    let d = load_error(&rule("matchs: []\n"));
    assert_eq!(d.field.as_deref(), Some("spec.rules[0].matchs"));
    assert!(d.message.contains("matches"), "{}", d.message);
    let d = load_error(&rule("filters: [{type: Rewrite}]\n"));
    assert_eq!(d.field.as_deref(), Some("spec.rules[0].filters[0].type"));
    assert!(d.message.contains("URLRewrite"), "{}", d.message);
    let d = load_error(&rule("matches: [{path: {type: Prefix}}]\n"));
    assert_eq!(
        d.field.as_deref(),
        Some("spec.rules[0].matches[0].path.type")
    );
    let d = load_error(&rule("backendRefs: [{name: s, port: '80'}]\n"));
    assert_eq!(
        d.field.as_deref(),
        Some("spec.rules[0].backendRefs[0].port")
    );
}

#[test]
fn route_round_trips() {
    round_trip(
        "apiVersion: gateway.networking.k8s.io/VERSION
kind: HTTPRoute
metadata:
  name: bookinfo
  namespace: default
spec:
  parentRefs:
  - name: gateway
    namespace: istio-ingress
    sectionName: default
  - group: \"\"
    kind: Service
    name: reviews
    port: 9080
  hostnames: [\"bookinfo.example.com\"]
  rules:
  - name: product
    matches:
    - path:
        type: Exact
        value: /productpage
    - path:
        type: PathPrefix
        value: /static
      headers:
      - name: x-canary
        value: \"true\"
      queryParams:
      - type: RegularExpression
        name: v
        value: \"[0-9]+\"
      method: GET
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set:
        - name: x-a
          value: b
        add:
        - name: x-c
          value: d
        remove: [x-e]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        remove: [server]
    - type: RequestMirror
      requestMirror:
        backendRef:
          name: shadow
          port: 9080
        percent: 10
    - type: URLRewrite
      urlRewrite:
        hostname: productpage.internal
        path:
          type: ReplaceFullPath
          replaceFullPath: /productpage
    - type: CORS
      cors:
        allowOrigins: [\"https://example.com\"]
        allowCredentials: true
        allowMethods: [GET, POST]
        allowHeaders: [x-a]
        exposeHeaders: [x-b]
        maxAge: 60
    backendRefs:
    - name: productpage
      port: 9080
      weight: 90
    - name: productpage-v2
      namespace: canary
      port: 9080
      weight: 10
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier:
          set:
          - name: x-v2
            value: \"1\"
    timeouts:
      request: 10s
      backendRequest: 2s
    retry:
      codes: [503]
      attempts: 2
      backoff: 100ms
  - filters:
    - type: RequestRedirect
      requestRedirect:
        scheme: https
        hostname: secure.example.com
        port: 443
        statusCode: 301
        path:
          type: ReplaceFullPath
          replaceFullPath: /login
",
        &["v1", "v1beta1"],
    );
    round_trip(
        "apiVersion: gateway.networking.k8s.io/VERSION
kind: GRPCRoute
metadata:
  name: grpc
spec:
  parentRefs:
  - name: gateway
  hostnames: [grpc.example.com]
  rules:
  - matches:
    - method:
        service: helloworld.Greeter
        method: SayHello
      headers:
      - name: x-user
        value: alice
    - method:
        type: RegularExpression
        service: \"helloworld\\\\..*\"
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        add:
        - name: x-grpc
          value: \"1\"
    backendRefs:
    - name: greeter
      port: 50051
",
        &["v1", "v1alpha2"],
    );
    round_trip(
        "apiVersion: gateway.networking.k8s.io/VERSION
kind: TCPRoute
metadata:
  name: tcp
spec:
  parentRefs:
  - name: gateway
    sectionName: tcp
  rules:
  - backendRefs:
    - name: db
      port: 5432
      weight: 1
",
        &["v1alpha2"],
    );
    round_trip(
        "apiVersion: gateway.networking.k8s.io/VERSION
kind: TLSRoute
metadata:
  name: tls
spec:
  parentRefs:
  - name: gateway
    sectionName: passthrough
  hostnames: [\"*.tls.example.com\"]
  rules:
  - name: only
    backendRefs:
    - name: backend
      port: 443
",
        &["v1alpha2"],
    );
}
