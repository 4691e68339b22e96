//! Tests of `RequestAuthentication` loading and validation.

use crate::validate::{check, error_fields, load_error};

fn ra(version: &str, spec: &str) -> String {
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "apiVersion: security.istio.io/{version}\nkind: RequestAuthentication\nmetadata:\n  name: jwt\n  namespace: foo\nspec:\n{spec}"
    )
}

const JWKS: &str = r#"{"keys":[{"kty":"RSA","e":"AQAB","n":"xAE7"}]}"#;

/// One invalid spec, the only error field it must give and a piece of its message.
const CASES: &[(&str, &str, &str)] = &[
    (
        "jwtRules:\n- jwksUri: https://example.com/jwks.json",
        "spec.jwtRules[0].issuer",
        "issuer must be non-empty",
    ),
    (
        "jwtRules:\n- issuer: a\n  audiences: ['']",
        "spec.jwtRules[0].audiences[0]",
        "audience must be non-empty",
    ),
    (
        "jwtRules:\n- issuer: a\n  jwksUri: ftp://example.com/jwks",
        "spec.jwtRules[0].jwksUri",
        "URI scheme \"ftp\" is not supported",
    ),
    (
        "jwtRules:\n- issuer: a\n  jwksUri: example.com/jwks",
        "spec.jwtRules[0].jwksUri",
        "must start with http:// or https://",
    ),
    (
        "jwtRules:\n- issuer: a\n  jwksUri: https:///jwks",
        "spec.jwtRules[0].jwksUri",
        "no host",
    ),
    (
        "jwtRules:\n- issuer: a\n  jwksUri: 'https://example.com:99999/jwks'",
        "spec.jwtRules[0].jwksUri",
        "port \"99999\"",
    ),
    (
        "jwtRules:\n- issuer: a\n  jwks: 'not json'",
        "spec.jwtRules[0].jwks",
        "jwks parse error",
    ),
    (
        "jwtRules:\n- issuer: a\n  jwks: '{\"keys\": [{\"e\": \"AQAB\"}]}'",
        "spec.jwtRules[0].jwks",
        "no \"kty\"",
    ),
    (
        "jwtRules:\n- issuer: a\n  fromHeaders:\n  - name: ''\n    prefix: 'Bearer '",
        "spec.jwtRules[0].fromHeaders[0].name",
        "header name must be non-empty",
    ),
    (
        "jwtRules:\n- issuer: a\n  fromParams: ['']",
        "spec.jwtRules[0].fromParams[0]",
        "location query must be non-empty",
    ),
    (
        "jwtRules:\n- issuer: a\n  fromCookies: ['']",
        "spec.jwtRules[0].fromCookies[0]",
        "cookie name must be non-empty",
    ),
    (
        "jwtRules:\n- issuer: a\n  outputClaimToHeaders:\n  - header: x-sub",
        "spec.jwtRules[0].outputClaimToHeaders[0].claim",
        "must be non-empty",
    ),
    (
        "jwtRules:\n- issuer: a\n  outputClaimToHeaders:\n  - {header: 'x_sub', claim: sub}",
        "spec.jwtRules[0].outputClaimToHeaders[0].header",
        "not a valid header name",
    ),
    (
        "jwtRules:\n- issuer: a\n  timeout: 0.5ms",
        "spec.jwtRules[0].timeout",
        "greater than 1ms",
    ),
    (
        "selector: {matchLabels: {app: a}}\ntargetRef: {kind: Service, name: a}",
        "spec.targetRef",
        "only one of",
    ),
    (
        "targetRef: {kind: Service, name: a, namespace: bar}",
        "spec.targetRef.namespace",
        "cross namespace",
    ),
    (
        "targetRefs:\n- {kind: Deployment, group: apps, name: a}",
        "spec.targetRefs[0].kind",
        "targetRef must be to one of",
    ),
    (
        "targetRefs:\n- {kind: Gateway, group: gateway.networking.k8s.io}",
        "spec.targetRefs[0].name",
        "name must be set",
    ),
    (
        "selector: {matchLabels: {'': a}}",
        "spec.selector.matchLabels.",
        "empty key",
    ),
];

#[test]
fn invalid_table() {
    for (spec, field, msg) in CASES {
        let rep = check(&ra("v1", spec));
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
fn jwks_with_jwks_uri_warns() {
    let spec =
        format!("jwtRules:\n- issuer: a\n  jwksUri: https://example.com/jwks\n  jwks: '{JWKS}'");
    let rep = check(&ra("v1", &spec));
    assert!(rep.is_valid(), "{:?}", rep.errors);
    assert_eq!(rep.warnings[0].field, "spec.jwtRules[0].jwks");
}

#[test]
fn load_failures() {
    let d = load_error(&ra(
        "v1",
        "jwtRules:\n- issuer: a\n  jwksURI: https://example.com/jwks",
    ));
    assert_eq!(d.field.as_deref(), Some("spec.jwtRules[0].jwksURI"));
    assert!(
        d.message.contains("did you mean \"jwksUri\""),
        "{}",
        d.message
    );
    let d = load_error(&ra(
        "v1",
        "jwtRules:\n- issuer: a\n  forwardOriginalToken: maybe",
    ));
    assert_eq!(
        d.field.as_deref(),
        Some("spec.jwtRules[0].forwardOriginalToken")
    );
    let d = load_error(&ra(
        "v1beta1",
        "jwtRules:\n- issuer: a\n  timeout: 5 seconds",
    ));
    assert_eq!(d.field.as_deref(), Some("spec.jwtRules[0].timeout"));
    assert!(d.message.contains("invalid duration"), "{}", d.message);
    let d = load_error(&ra("v1", "jwtRules: {issuer: a}"));
    assert_eq!(d.field.as_deref(), Some("spec.jwtRules"));
}

fn round_trip(yaml: &str) {
    let rep = check(yaml);
    assert!(rep.is_valid(), "{:?}", rep.errors);
    assert!(rep.warnings.is_empty(), "{:?}", rep.warnings);
    let out = crate::load::load_str(yaml, "t.yaml", &crate::load::LoadOptions::default());
    let crate::resource::Body::RequestAuthentication(spec) = &out.resources[0].body else {
        panic!("not a RequestAuthentication")
    };
    let input = crate::yaml::parse_documents(yaml)[0]
        .as_ref()
        .unwrap()
        .value["spec"]
        .clone();
    assert_eq!(serde_json::to_value(spec).unwrap(), input);
}

#[test]
fn round_trips() {
    for v in ["v1beta1", "v1"] {
        round_trip(&ra(
            v,
            "selector:\n  matchLabels:\n    app: httpbin\njwtRules:\n- issuer: \"testing@secure.istio.io\"\n  jwksUri: \"https://raw.githubusercontent.com/istio/istio/release-1.22/security/tools/jwt/samples/jwks.json\"\n  audiences: [httpbin]\n  fromHeaders:\n  - name: x-jwt-assertion\n    prefix: \"Bearer \"\n  fromParams: [my_token]\n  forwardOriginalToken: true\n  outputClaimToHeaders:\n  - header: x-jwt-sub\n    claim: sub\n  timeout: 5s",
        ));
        round_trip(&ra(
            v,
            &format!(
                "targetRef:\n  group: gateway.networking.k8s.io\n  kind: Gateway\n  name: ingress\njwtRules:\n- issuer: issuer-foo\n  jwks: '{JWKS}'\n  fromCookies: [session]\n  outputPayloadToHeader: x-jwt-payload"
            ),
        ));
    }
}
