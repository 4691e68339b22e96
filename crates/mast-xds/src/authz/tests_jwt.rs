//! Unit tests: RequestAuthentication → `jwt_authn` (providers, requirement tree, JWKS
//! sources, filter position).

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_provider::JwksSourceSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_requirement::RequiresType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::requirement_rule::RequirementType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtProvider, JwtRequirement,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter;
use mast_model::MeshSnapshot;
use prost::Message;
use serde_json::json;

use super::inbound_http_filters;
use super::jwt::{fake_jwks, jwks_key, jwks_keys};
use super::tests::{proxy, snapshot};

fn ra(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{spec}\n"
    )
}

fn jwt_config(snap: &MeshSnapshot) -> JwtAuthentication {
    let filters = inbound_http_filters(snap, &proxy("foo", json!({ "app": "httpbin" })), 80);
    let f = filters
        .iter()
        .find(|f| f.name == "envoy.filters.http.jwt_authn")
        .expect("jwt_authn filter");
    let Some(http_filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        panic!("typed config");
    };
    JwtAuthentication::decode(any.value.as_slice()).expect("decodes")
}

fn provider<'a>(c: &'a JwtAuthentication, name: &str) -> &'a JwtProvider {
    c.providers.get(name).expect("provider")
}

fn inline(p: &JwtProvider) -> &str {
    match &p.jwks_source_specifier {
        Some(JwksSourceSpecifier::LocalJwks(ds)) => match &ds.specifier {
            Some(Specifier::InlineString(s)) => s,
            other => panic!("inline string expected: {other:?}"),
        },
        other => panic!("local jwks expected: {other:?}"),
    }
}

fn name(r: &JwtRequirement) -> &str {
    match &r.requires_type {
        Some(RequiresType::ProviderName(n)) => n,
        other => panic!("provider name expected: {other:?}"),
    }
}

fn any_list(r: &JwtRequirement) -> &[JwtRequirement] {
    match &r.requires_type {
        Some(RequiresType::RequiresAny(l)) => &l.requirements,
        other => panic!("requires_any expected: {other:?}"),
    }
}

fn top(c: &JwtAuthentication) -> &JwtRequirement {
    assert_eq!(c.rules.len(), 1);
    match &c.rules[0].requirement_type {
        Some(RequirementType::Requires(r)) => r,
        other => panic!("requires expected: {other:?}"),
    }
}

const JWKS: &str = r#"{"keys":[{"kty":"RSA","e":"AQAB","n":"xyz"}]}"#;

#[test]
fn one_provider_fields_and_optional_requirement() {
    let spec = format!(
        "  jwtRules:\n  - issuer: https://issuer.example.com\n    audiences: [api]\n    jwks: '{JWKS}'\n    fromHeaders:\n    - name: x-jwt\n      prefix: 'Bearer '\n    fromParams: [token]\n    forwardOriginalToken: true\n    outputPayloadToHeader: x-payload\n    outputClaimToHeaders:\n    - header: x-sub\n      claim: sub"
    );
    let c = jwt_config(&snapshot(&ra("foo", "jwt", &spec)));
    let p = provider(&c, "origins-0");
    assert_eq!(p.issuer, "https://issuer.example.com");
    assert_eq!(p.audiences, ["api"]);
    assert!(p.forward);
    assert_eq!(p.forward_payload_header, "x-payload");
    assert_eq!(p.payload_in_metadata, "payload");
    assert_eq!(p.from_headers[0].name, "x-jwt");
    assert_eq!(p.from_headers[0].value_prefix, "Bearer ");
    assert_eq!(p.from_params, ["token"]);
    assert_eq!(p.claim_to_headers[0].header_name, "x-sub");
    assert_eq!(
        p.normalize_payload_in_metadata
            .as_ref()
            .map(|n| n.space_delimited_claims.clone()),
        Some(vec!["permission".to_owned(), "scope".to_owned()])
    );
    assert_eq!(inline(p), JWKS);
    assert!(!p.clear_route_cache, "sidecars keep the route cache");
    assert!(c.bypass_cors_preflight);
    let any = any_list(top(&c));
    assert_eq!(name(&any[0]), "origins-0");
    assert!(matches!(
        any[1].requires_type,
        Some(RequiresType::AllowMissing(_))
    ));
}

#[test]
fn several_providers_sorted_by_issuer_with_istio_tree() {
    let yaml = [
        ra(
            "foo",
            "b",
            &format!("  jwtRules:\n  - issuer: zeta\n    jwks: '{JWKS}'"),
        ),
        ra(
            "istio-system",
            "a",
            &format!("  jwtRules:\n  - issuer: alpha\n    jwks: '{JWKS}'"),
        ),
        ra(
            "bar",
            "c",
            &format!("  jwtRules:\n  - issuer: other-ns\n    jwks: '{JWKS}'"),
        ),
    ]
    .join("---\n");
    let c = jwt_config(&snapshot(&yaml));
    assert_eq!(c.providers.len(), 2, "not the other namespace's");
    assert_eq!(provider(&c, "origins-0").issuer, "alpha");
    assert_eq!(provider(&c, "origins-1").issuer, "zeta");
    let outer = any_list(top(&c));
    assert_eq!(outer.len(), 3);
    assert_eq!(name(&outer[0]), "origins-0");
    assert_eq!(name(&outer[1]), "origins-1");
    let Some(RequiresType::RequiresAll(all)) = &outer[2].requires_type else {
        panic!("requires_all expected");
    };
    let inner: Vec<&str> = all
        .requirements
        .iter()
        .map(|r| name(&any_list(r)[0]))
        .collect();
    assert_eq!(inner, ["origins-0", "origins-1"]);
}

#[test]
fn jwks_uri_uses_the_fetched_document_else_a_fake_that_rejects_tokens() {
    let yaml = ra(
        "foo",
        "jwt",
        "  jwtRules:\n  - issuer: a\n    jwksUri: https://a.example.com/jwks\n  - issuer: b\n    jwksUri: https://b.example.com/jwks",
    );
    let mut snap = snapshot(&yaml);
    let mut fetched = BTreeMap::new();
    fetched.insert("https://a.example.com/jwks".to_owned(), JWKS.to_owned());
    snap.options.jwks = Arc::new(fetched);
    let c = jwt_config(&snap);
    assert_eq!(inline(provider(&c, "origins-0")), JWKS);
    let fake = inline(provider(&c, "origins-1"));
    assert_eq!(fake, fake_jwks("https://b.example.com/jwks"));
    let v: serde_json::Value = serde_json::from_str(fake).expect("fake JWKS is JSON");
    assert_eq!(v["keys"][0]["kty"], "RSA");
    assert_eq!(
        jwks_keys(&snap).into_iter().collect::<Vec<_>>(),
        ["https://a.example.com/jwks", "https://b.example.com/jwks"]
    );
}

#[test]
fn fake_jwks_matches_istio() {
    // Istio: base64.RawURLEncoding of "Error-IstiodFailedToFetchJwksUri-" + uri.
    assert_eq!(
        fake_jwks("x"),
        r#"{"keys":[ {"e":"AQAB","kid":"abc","kty":"RSA","n":"RXJyb3ItSXN0aW9kRmFpbGVkVG9GZXRjaEp3a3NVcmkteA"}]}"#
    );
}

#[test]
fn issuer_without_jwks_is_resolved_by_openid_discovery() {
    let snap = snapshot(&ra(
        "foo",
        "jwt",
        "  jwtRules:\n  - issuer: https://accounts.example.com/",
    ));
    let rule = &snap.request_authentications()[0].spec.jwt_rules[0];
    assert_eq!(
        jwks_key(rule).as_deref(),
        Some("https://accounts.example.com/.well-known/openid-configuration")
    );
}

#[test]
fn jwt_authn_runs_before_rbac() {
    let yaml = [
        ra("foo", "jwt", &format!("  jwtRules:\n  - issuer: a\n    jwks: '{JWKS}'")),
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  namespace: foo\nspec:\n  rules:\n  - from:\n    - source:\n        requestPrincipals: [\"*\"]\n".to_owned(),
    ]
    .join("---\n");
    let snap = snapshot(&yaml);
    let filters = inbound_http_filters(&snap, &proxy("foo", json!({})), 80);
    let names: Vec<&str> = filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["envoy.filters.http.jwt_authn", "envoy.filters.http.rbac"]
    );
}
