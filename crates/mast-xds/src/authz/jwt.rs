//! RequestAuthentication → `envoy.filters.http.jwt_authn` (Istio's `authn` policy applier,
//! `convertToEnvoyJwtConfig`).
//!
//! Every `jwtRules` entry of every RequestAuthentication that applies to the proxy, sorted by
//! issuer, becomes a provider `origins-<i>`: `issuer`, `audiences`, `forward`
//! (`forwardOriginalToken`), `forward_payload_header` (`outputPayloadToHeader`),
//! `claim_to_headers`, `from_headers` / `from_params` / `from_cookies` (left empty they mean
//! Envoy's defaults, `Authorization: Bearer` and `access_token`, as in Istio),
//! `payload_in_metadata: "payload"` (what the RBAC rules on request principals and claims
//! read) and `normalize_payload_in_metadata` splitting `permission` and `scope`.
//!
//! Keys are always inlined (`local_jwks`): the inline `jwks`, else the document mastd
//! fetched for `jwksUri` (or, without one, for the issuer's OpenID discovery URL; see
//! [`jwks_key`]) from `snapshot.options.jwks`. A document not (yet) fetched is replaced by
//! Istio's fake JWKS ([`fake_jwks`]), which no token verifies against: tokens are rejected
//! (401), never accepted.
//!
//! The requirement is Istio's: with one provider `requires_any [provider, allow_missing]`; with
//! several `requires_any [p1, ..., pn, requires_all [any(p1, allow_missing), ...]]`. A request
//! without a token passes; a request with an invalid token gets 401. Requiring a token is
//! the business of an AuthorizationPolicy (`requestPrincipals: ["*"]`).

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::core::v3::DataSource;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::route::v3::RouteMatch;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_provider::{
    JwksSourceSpecifier, NormalizePayload,
};
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_requirement::RequiresType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::requirement_rule::RequirementType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtClaimToHeader, JwtHeader, JwtProvider, JwtRequirement,
    JwtRequirementAndList, JwtRequirementOrList, RequirementRule,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use envoy_types::pb::google::protobuf::Empty;
use mast_config::security::request_authentication::JwtRule;
use mast_model::{MeshSnapshot, NodeType, ProxyNode};

use super::{matchers, pack, selection};

/// `envoy.filters.http.jwt_authn`.
pub const JWT_AUTHN_FILTER: &str = matchers::JWT_FILTER;

/// The suffix of an issuer's OpenID discovery document.
pub const OPENID_DISCOVERY_SUFFIX: &str = "/.well-known/openid-configuration";

/// Istio's `CreateFakeJwks`: a JWKS with one RSA key whose modulus is the URI's text, which
/// verifies no token.
pub fn fake_jwks(uri: &str) -> String {
    let n = base64url(format!("Error-IstiodFailedToFetchJwksUri-{uri}").as_bytes());
    format!(r#"{{"keys":[ {{"e":"AQAB","kid":"abc","kty":"RSA","n":"{n}"}}]}}"#)
}

/// Unpadded base64url (RFC 4648 §5).
fn base64url(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Where mastd must fetch the keys of `rule` from, as the key of `snapshot.options.jwks`:
/// `None` for inline `jwks`; the `jwksUri`; else the issuer's OpenID discovery URL
/// (`<issuer>/.well-known/openid-configuration`, whose `jwks_uri` the fetcher follows).
pub fn jwks_key(rule: &JwtRule) -> Option<String> {
    if rule.jwks.as_deref().is_some_and(|j| !j.is_empty()) {
        return None;
    }
    match rule.jwks_uri.as_deref().filter(|u| !u.is_empty()) {
        Some(uri) => Some(uri.to_owned()),
        None if rule.issuer.is_empty() => None,
        None => Some(format!(
            "{}{OPENID_DISCOVERY_SUFFIX}",
            rule.issuer.trim_end_matches('/')
        )),
    }
}

/// Every key mastd must fetch for the snapshot's RequestAuthentications ([`jwks_key`]).
pub fn jwks_keys(snapshot: &MeshSnapshot) -> BTreeSet<String> {
    snapshot
        .request_authentications()
        .iter()
        .flat_map(|c| c.spec.jwt_rules.iter().filter_map(jwks_key))
        .collect()
}

fn local_jwks(rule: &JwtRule, fetched: &BTreeMap<String, String>) -> JwksSourceSpecifier {
    let text = match jwks_key(rule) {
        None => rule.jwks.clone().unwrap_or_default(),
        Some(key) => match fetched.get(&key) {
            Some(doc) => doc.clone(),
            None => fake_jwks(rule.jwks_uri.as_deref().unwrap_or(&key)),
        },
    };
    JwksSourceSpecifier::LocalJwks(DataSource {
        specifier: Some(Specifier::InlineString(text)),
        ..Default::default()
    })
}

/// The provider for one rule.
fn provider(
    rule: &JwtRule,
    fetched: &BTreeMap<String, String>,
    clear_route_cache: bool,
) -> JwtProvider {
    JwtProvider {
        issuer: rule.issuer.clone(),
        audiences: rule.audiences.clone(),
        forward: rule.forward_original_token.unwrap_or(false),
        forward_payload_header: rule.output_payload_to_header.clone().unwrap_or_default(),
        payload_in_metadata: matchers::JWT_PAYLOAD_KEY.to_owned(),
        normalize_payload_in_metadata: Some(NormalizePayload {
            space_delimited_claims: vec!["permission".to_owned(), "scope".to_owned()],
        }),
        clear_route_cache,
        claim_to_headers: rule
            .output_claim_to_headers
            .iter()
            .map(|c| JwtClaimToHeader {
                header_name: c.header.clone(),
                claim_name: c.claim.clone(),
                ..Default::default()
            })
            .collect(),
        from_headers: rule
            .from_headers
            .iter()
            .map(|h| JwtHeader {
                name: h.name.clone(),
                value_prefix: h.prefix.clone().unwrap_or_default(),
            })
            .collect(),
        from_params: rule.from_params.clone(),
        from_cookies: rule.from_cookies.clone(),
        jwks_source_specifier: Some(local_jwks(rule, fetched)),
        ..Default::default()
    }
}

fn req(t: RequiresType) -> JwtRequirement {
    JwtRequirement {
        requires_type: Some(t),
    }
}

fn any_of(requirements: Vec<JwtRequirement>) -> JwtRequirement {
    req(RequiresType::RequiresAny(JwtRequirementOrList {
        requirements,
    }))
}

/// Istio's requirement tree over providers `names` (see the module doc).
fn requirement(names: &[String]) -> JwtRequirement {
    let optional = |n: &String| {
        any_of(vec![
            req(RequiresType::ProviderName(n.clone())),
            req(RequiresType::AllowMissing(Empty {})),
        ])
    };
    if let [one] = names {
        return optional(one);
    }
    let mut outer: Vec<JwtRequirement> = names
        .iter()
        .map(|n| req(RequiresType::ProviderName(n.clone())))
        .collect();
    outer.push(req(RequiresType::RequiresAll(JwtRequirementAndList {
        requirements: names.iter().map(optional).collect(),
    })));
    any_of(outer)
}

/// The jwt_authn config for `rules` (without its `providers` map, returned apart in name
/// order), or `None` when there are no rules.
pub fn authentication(
    rules: &[&JwtRule],
    fetched: &BTreeMap<String, String>,
    clear_route_cache: bool,
) -> Option<(JwtAuthentication, BTreeMap<String, JwtProvider>)> {
    if rules.is_empty() {
        return None;
    }
    let mut sorted = rules.to_vec();
    sorted.sort_by(|a, b| a.issuer.cmp(&b.issuer));
    let providers: BTreeMap<String, JwtProvider> = sorted
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                format!("origins-{i}"),
                provider(r, fetched, clear_route_cache),
            )
        })
        .collect();
    let names: Vec<String> = (0..sorted.len()).map(|i| format!("origins-{i}")).collect();
    let config = JwtAuthentication {
        rules: vec![RequirementRule {
            r#match: Some(RouteMatch {
                path_specifier: Some(PathSpecifier::Prefix("/".to_owned())),
                ..Default::default()
            }),
            requirement_type: Some(RequirementType::Requires(requirement(&names))),
        }],
        bypass_cors_preflight: true,
        ..Default::default()
    };
    Some((config, providers))
}

/// The `jwt_authn` HTTP filter for `proxy`, when a RequestAuthentication applies to it.
/// Gateways clear the route cache after authentication (routes may match on claims).
pub fn filter(snapshot: &MeshSnapshot, proxy: &ProxyNode) -> Option<HttpFilter> {
    let policies = selection::request_authentications(snapshot, proxy);
    let rules: Vec<&JwtRule> = policies
        .iter()
        .flat_map(|c| c.spec.jwt_rules.iter())
        .collect();
    let clear = proxy.node_type == NodeType::Router;
    let (config, providers) = authentication(&rules, &snapshot.options.jwks, clear)?;
    let value = pack::with_sorted_map(&config, 1, &providers);
    Some(HttpFilter {
        name: JWT_AUTHN_FILTER.to_owned(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack::any::<
            JwtAuthentication,
        >(value))),
        ..Default::default()
    })
}
