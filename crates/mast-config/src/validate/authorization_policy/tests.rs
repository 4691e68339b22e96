//! Tests of `AuthorizationPolicy` loading and validation.

use crate::validate::{check, error_fields, load_error};

fn ap(version: &str, spec: &str) -> String {
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "apiVersion: security.istio.io/{version}\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  namespace: foo\nspec:\n{spec}"
    )
}

/// One invalid spec, the only error field it must give and a piece of its message.
type Case = (&'static str, &'static str, &'static str);

const POLICY_CASES: &[Case] = &[
    (
        "action: CUSTOM\nprovider: {name: ext}\nrules: [{}]",
        "spec.action",
        "action CUSTOM is not supported by Mast yet; use ALLOW, DENY or AUDIT",
    ),
    ("action: DENY", "spec.rules", "DENY action without `rules`"),
    (
        "action: DENY\nprovider: {name: ext}\nrules: [{}]",
        "spec.provider",
        "`provider` must not be with non CUSTOM action, found DENY",
    ),
    ("provider: {name: ext}", "spec.provider", "found ALLOW"),
    (
        "selector: {matchLabels: {app: a}}\ntargetRefs: [{kind: Service, name: a}]",
        "spec.targetRefs",
        "only one of selector, targetRef or targetRefs",
    ),
    (
        "targetRef: {kind: Service, group: '', name: ''}",
        "spec.targetRef.name",
        "targetRef name must be set",
    ),
    (
        "targetRef: {kind: Pod, name: a}",
        "spec.targetRef.kind",
        "targetRef must be to one of",
    ),
    (
        "selector: {matchLabels: {app: 'a*'}}",
        "spec.selector.matchLabels.app",
        "wildcard is not supported in selector",
    ),
];

const RULE_CASES: &[Case] = &[
    (
        "rules:\n- from: []",
        "spec.rules[0].from",
        "`from` must not be empty",
    ),
    (
        "rules:\n- to: []",
        "spec.rules[0].to",
        "`to` must not be empty",
    ),
    (
        "rules:\n- when: []",
        "spec.rules[0].when",
        "`when` must not be empty",
    ),
    (
        "rules:\n- from:\n  - {}",
        "spec.rules[0].from[0].source",
        "`from.source` must be set",
    ),
    (
        "rules:\n- from:\n  - source: {}",
        "spec.rules[0].from[0].source",
        "`from.source` must not be empty",
    ),
    (
        "rules:\n- to:\n  - {}",
        "spec.rules[0].to[0].operation",
        "`to.operation` must be set",
    ),
    (
        "rules:\n- to:\n  - operation: {}",
        "spec.rules[0].to[0].operation",
        "`to.operation` must not be empty",
    ),
    (
        "rules:\n- from:\n  - source: {principals: ['']}",
        "spec.rules[0].from[0].source.principals[0]",
        "empty value not allowed, found in principals",
    ),
    (
        "rules:\n- from:\n  - source: {namespaces: [a, '']}",
        "spec.rules[0].from[0].source.namespaces[1]",
        "empty value not allowed",
    ),
    (
        "rules:\n- from:\n  - source: {ipBlocks: [10.0.0.1, 10.0.0.0/33]}",
        "spec.rules[0].from[0].source.ipBlocks[1]",
        "bad CIDR range (10.0.0.0/33)",
    ),
    (
        "rules:\n- from:\n  - source: {notRemoteIpBlocks: [300.1.1.1]}",
        "spec.rules[0].from[0].source.notRemoteIpBlocks[0]",
        "bad IP address (300.1.1.1)",
    ),
    (
        "rules:\n- from:\n  - source: {namespaces: [a], serviceAccounts: [b]}",
        "spec.rules[0].from[0].source.serviceAccounts",
        "cannot set serviceAccounts with namespaces or principals",
    ),
    (
        "rules:\n- from:\n  - source: {serviceAccounts: ['ns/*']}",
        "spec.rules[0].from[0].source.serviceAccounts[0]",
        "wildcard not allowed",
    ),
    (
        "rules:\n- from:\n  - source: {notServiceAccounts: [a/b/c]}",
        "spec.rules[0].from[0].source.notServiceAccounts[0]",
        "expected format",
    ),
    (
        "rules:\n- from:\n  - source: {serviceAccounts: [/sa]}",
        "spec.rules[0].from[0].source.serviceAccounts[0]",
        "empty namespace",
    ),
    (
        "rules:\n- to:\n  - operation: {ports: ['80', http]}",
        "spec.rules[0].to[0].operation.ports[1]",
        "bad port (http)",
    ),
    (
        "rules:\n- to:\n  - operation: {notPorts: ['0']}",
        "spec.rules[0].to[0].operation.notPorts[0]",
        "1..65535",
    ),
    (
        "rules:\n- to:\n  - operation: {methods: ['GET POST']}",
        "spec.rules[0].to[0].operation.methods[0]",
        "not a valid HTTP method token",
    ),
    (
        "rules:\n- to:\n  - operation: {hosts: ['']}",
        "spec.rules[0].to[0].operation.hosts[0]",
        "empty value not allowed, found in hosts",
    ),
    (
        "rules:\n- to:\n  - operation: {paths: ['/a/{**}/{*}']}",
        "spec.rules[0].to[0].operation.paths[0]",
        "{**} is not the last operator",
    ),
    (
        "rules:\n- to:\n  - operation: {notPaths: ['/a/{x}']}",
        "spec.rules[0].to[0].operation.notPaths[0]",
        "beyond a supported path template",
    ),
    (
        "rules:\n- to:\n  - operation: {paths: ['/a b/{*}']}",
        "spec.rules[0].to[0].operation.paths[0]",
        "invalid string literal",
    ),
];

const WHEN_CASES: &[Case] = &[
    (
        "rules:\n- when:\n  - values: [a]",
        "spec.rules[0].when[0].key",
        "`key` must not be empty",
    ),
    (
        "rules:\n- when:\n  - key: source.ip",
        "spec.rules[0].when[0]",
        "at least one of `values` or `notValues`",
    ),
    (
        "rules:\n- when:\n  - {key: request.user, values: [a]}",
        "spec.rules[0].when[0].key",
        "unknown attribute: request.user",
    ),
    (
        "rules:\n- when:\n  - {key: 'request.headers[]', values: [a]}",
        "spec.rules[0].when[0].key",
        "should have format a[b]",
    ),
    (
        "rules:\n- when:\n  - {key: request.auth.claims, values: [a]}",
        "spec.rules[0].when[0].key",
        "should have format a[b]",
    ),
    (
        "rules:\n- when:\n  - {key: destination.namespace, values: [a]}",
        "spec.rules[0].when[0].key",
        "replaced by the metadata.namespace",
    ),
    (
        "rules:\n- when:\n  - {key: 'destination.labels[app]', values: [a]}",
        "spec.rules[0].when[0].key",
        "replaced by the workload selector",
    ),
    (
        "rules:\n- when:\n  - {key: destination.user, values: [a]}",
        "spec.rules[0].when[0].key",
        "only supported in v1alpha1",
    ),
    (
        "rules:\n- when:\n  - {key: source.ip, values: [10.0.0.0/8, nope]}",
        "spec.rules[0].when[0].values[1]",
        "bad IP address (nope)",
    ),
    (
        "rules:\n- when:\n  - {key: destination.port, notValues: ['65536']}",
        "spec.rules[0].when[0].notValues[0]",
        "1..65535",
    ),
    (
        "rules:\n- when:\n  - {key: source.serviceAccount, values: ['*']}",
        "spec.rules[0].when[0].values[0]",
        "wildcard not allowed",
    ),
    (
        "rules:\n- when:\n  - {key: 'request.auth.claims[iss]', values: ['']}",
        "spec.rules[0].when[0].values[0]",
        "empty value not allowed",
    ),
];

const CUSTOM_CASES: &[(&str, &[&str])] = &[
    ("action: CUSTOM", &["spec.action", "spec.rules"]),
    (
        "action: CUSTOM\nrules: [{}]",
        &["spec.action", "spec.provider.name"],
    ),
    (
        "action: CUSTOM\nprovider: {name: ext}\nrules:\n- from:\n  - source: {principals: [a]}\n  when:\n  - {key: 'request.auth.claims[iss]', values: [a]}",
        &[
            "spec.action",
            "spec.rules[0].from[0].source.principals",
            "spec.rules[0].when[0].key",
        ],
    ),
];

fn run(cases: &[Case]) {
    for (spec, field, msg) in cases {
        let rep = check(&ap("v1", spec));
        assert_eq!(
            error_fields(&rep),
            [*field],
            "case {spec}: {:?}",
            rep.errors
        );
        assert!(
            rep.errors[0].message.contains(msg),
            "case {spec}: {}",
            rep.errors[0].message
        );
    }
}

#[test]
fn invalid_policies() {
    run(POLICY_CASES);
}

#[test]
fn invalid_rules() {
    run(RULE_CASES);
}

#[test]
fn invalid_conditions() {
    run(WHEN_CASES);
}

#[test]
fn custom_action() {
    for (spec, fields) in CUSTOM_CASES {
        let rep = check(&ap("v1", spec));
        assert_eq!(error_fields(&rep), *fields, "case {spec}: {:?}", rep.errors);
    }
}

#[test]
fn dry_run_annotation() {
    let with = |action: &str, value: &str| {
        let y = ap("v1", &format!("action: {action}\nrules: [{{}}]"));
        y.replace(
            "  namespace: foo\n",
            &format!("  namespace: foo\n  annotations:\n    istio.io/dry-run: '{value}'\n"),
        )
    };
    assert!(check(&with("DENY", "true")).is_valid());
    let rep = check(&with("DENY", "yes"));
    assert_eq!(
        error_fields(&rep),
        ["metadata.annotations.istio.io/dry-run"]
    );
    let rep = check(&with("AUDIT", "true"));
    assert!(
        rep.errors[0]
            .message
            .contains("only supports action ALLOW/DENY"),
        "{:?}",
        rep.errors
    );
}

#[test]
fn warnings() {
    let warned = |spec: &str| {
        let rep = check(&ap("v1", spec));
        assert!(rep.is_valid(), "case {spec}: {:?}", rep.errors);
        rep.warnings
            .into_iter()
            .map(|w| w.field)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        warned("action: DENY\nrules:\n- to:\n  - operation: {methods: [POST]}"),
        ["spec.rules[0]"]
    );
    assert!(
        warned("action: DENY\nrules:\n- to:\n  - operation: {methods: [POST], ports: ['8080']}")
            .is_empty()
    );
    assert_eq!(
        warned("action: DENY\nrules:\n- from:\n  - source: {requestPrincipals: ['*']}"),
        ["spec.rules[0]"]
    );
    assert!(warned("action: DENY\nrules:\n- from:\n  - source: {notNamespaces: [foo]}").is_empty());
    assert_eq!(
        warned("rules:\n- from:\n  - source: {principals: ['cluster.local/ns/*/sa/a']}"),
        ["spec.rules[0].from[0].source.principals[0]"]
    );
    assert_eq!(
        warned("rules:\n- to:\n  - operation: {methods: [get]}"),
        ["spec.rules[0].to[0].operation.methods[0]"]
    );
    assert_eq!(
        warned("rules:\n- to:\n  - operation: {paths: [api/*]}"),
        ["spec.rules[0].to[0].operation.paths[0]"]
    );
    assert_eq!(warned("selector: {}"), ["spec.selector"]);
}

#[test]
fn load_failures() {
    let d = load_error(&ap("v1", "rules:\n- from:\n  - source: {principal: [a]}"));
    assert_eq!(
        d.field.as_deref(),
        Some("spec.rules[0].from[0].source.principal")
    );
    assert!(
        d.message.contains("did you mean \"principals\""),
        "{}",
        d.message
    );
    let d = load_error(&ap("v1", "rules:\n- to:\n  - operation: {methods: GET}"));
    assert_eq!(
        d.field.as_deref(),
        Some("spec.rules[0].to[0].operation.methods")
    );
    let d = load_error(&ap("v1beta1", "action: ALOW"));
    assert_eq!(d.field.as_deref(), Some("spec.action"));
    assert!(d.message.contains("ALLOW"), "{}", d.message);
    let d = load_error(&ap(
        "v1",
        "rules:\n- from:\n  - source: {ipBlocks: [10.0.0.1, {cidr: 10.0.0.0/8}]}",
    ));
    assert_eq!(
        d.field.as_deref(),
        Some("spec.rules[0].from[0].source.ipBlocks[1]")
    );
    let d = load_error(&ap(
        "v1",
        "rules:\n- when:\n  - {key: source.ip, value: [10.0.0.1]}",
    ));
    assert!(
        d.message.contains("did you mean \"values\""),
        "{}",
        d.message
    );
}

fn round_trip(yaml: &str) {
    let rep = check(yaml);
    assert!(rep.is_valid(), "{:?}", rep.errors);
    assert!(rep.warnings.is_empty(), "{:?}", rep.warnings);
    let out = crate::load::load_str(yaml, "t.yaml", &crate::load::LoadOptions::default());
    let crate::resource::Body::AuthorizationPolicy(spec) = &out.resources[0].body else {
        panic!("not an AuthorizationPolicy")
    };
    let input = crate::yaml::parse_documents(yaml)[0]
        .as_ref()
        .unwrap()
        .value["spec"]
        .clone();
    assert_eq!(serde_json::to_value(spec).unwrap(), input);
}

const HTTPBIN_ALLOW: &str = r#"selector:
  matchLabels:
    app: httpbin
    version: v1
action: ALLOW
rules:
- from:
  - source:
      principals: ["cluster.local/ns/default/sa/sleep"]
  - source:
      namespaces: ["dev"]
  to:
  - operation:
      methods: ["GET", "POST"]
      paths: ["/info*", "/api/v1/{*}/status"]
  when:
  - key: request.auth.claims[iss]
    values: ["https://accounts.google.com"]"#;

const DENY_FOREIGN: &str = r#"action: DENY
rules:
- from:
  - source:
      notNamespaces: ["foo"]
      ipBlocks: ["10.1.0.0/16", "192.168.7.3"]
  to:
  - operation:
      ports: ["8080"]
      notPaths: ["/healthz"]
- from:
  - source:
      requestPrincipals: ["*"]
  to:
  - operation:
      notPorts: ["15021"]
      hosts: ["*.example.com"]
  when:
  - key: request.headers[User-Agent]
    notValues: ["curl/*"]
  - key: source.ip
    values: ["10.0.0.0/8"]"#;

#[test]
fn round_trips() {
    for v in ["v1beta1", "v1"] {
        round_trip(&ap(v, HTTPBIN_ALLOW));
        round_trip(&ap(v, DENY_FOREIGN));
        round_trip(&ap(
            v,
            "targetRefs:\n- kind: Gateway\n  group: gateway.networking.k8s.io\n  name: waypoint\naction: AUDIT\nrules:\n- to:\n  - operation:\n      ports: ['443']",
        ));
        round_trip(&ap(v, "{}"));
    }
}
