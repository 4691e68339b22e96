//! RBAC principals (who sends a request): `from.source` fields and the `when` keys about
//! the caller, as Istio's `authz/model` generators build them for a sidecar (the peer
//! identity is read from the mTLS certificate: `authenticated.principal_name`).
//!
//! Request principals, audiences, presenters and claims read the verified JWT payload that
//! `envoy.filters.http.jwt_authn` writes to dynamic metadata (`payload_in_metadata:
//! "payload"`), as Istio does today: `request.auth.principal` `<iss>/<sub>` is the AND of
//! two metadata matchers, `[payload, iss]` and `[payload, sub]`, so no Istio-specific
//! `istio_authn` filter is needed; a request without a (valid) token has no payload and
//! matches none of them.

use envoy_types::pb::envoy::config::rbac::v3::Principal;
use envoy_types::pb::envoy::config::rbac::v3::principal::{Authenticated, Identifier, Set};
use envoy_types::pb::envoy::r#type::matcher::v3::{MetadataMatcher, StringMatcher};

use super::matchers;
use super::model::{Cond, GenError, Key, Strictness, generate_cond};

fn id(i: Identifier) -> Principal {
    Principal {
        identifier: Some(i),
    }
}

/// `any: true`.
pub(crate) fn any() -> Principal {
    id(Identifier::Any(true))
}

/// `and_ids`.
pub(crate) fn and(ids: Vec<Principal>) -> Principal {
    id(Identifier::AndIds(Set { ids }))
}

/// `or_ids`.
pub(crate) fn or(ids: Vec<Principal>) -> Principal {
    id(Identifier::OrIds(Set { ids }))
}

/// `not_id`.
pub(crate) fn not(p: Principal) -> Principal {
    id(Identifier::NotId(Box::new(p)))
}

fn authenticated(m: StringMatcher) -> Principal {
    id(Identifier::Authenticated(Authenticated {
        principal_name: Some(m),
    }))
}

/// A dynamic-metadata principal, in the `metadata` form Istio emits (Envoy deprecates it
/// in favour of `sourced_metadata`, and still evaluates it).
#[allow(deprecated)]
fn metadata(m: MetadataMatcher) -> Principal {
    id(Identifier::Metadata(m))
}

/// The principals one rule field contributes (its values' OR, then `not` of its not
/// values' OR), following `strict` for values the chain cannot evaluate. `policy_ns` is the
/// default namespace of `serviceAccounts` values.
pub(crate) fn for_cond(
    c: &Cond<'_>,
    for_tcp: bool,
    strict: Strictness,
    policy_ns: &str,
) -> Result<Vec<Principal>, GenError> {
    generate_cond(
        c,
        strict,
        |v| one(&c.key, c.name, v, for_tcp, policy_ns),
        |vs| all(&c.key, c.name, vs, for_tcp),
        or,
        not,
    )
}

fn http_only(name: &str, for_tcp: bool) -> Result<(), GenError> {
    if for_tcp {
        return Err(GenError::HttpOnly(name.to_owned()));
    }
    Ok(())
}

/// Istio's `serviceAccountRegex`: `<sa>` (in the policy's namespace) or `<ns>/<sa>`, matching
/// `spiffe://<td>/ns/<ns>/[...]/sa/<sa>[/...]`.
pub(crate) fn service_account_regex(policy_ns: &str, v: &str) -> String {
    let (ns, sa) = v.split_once('/').unwrap_or((policy_ns, v));
    format!("spiffe://.+/ns/{ns}/(.+/|)sa/{sa}(/.+)?")
}

fn one(
    key: &Key,
    name: &str,
    v: &str,
    for_tcp: bool,
    policy_ns: &str,
) -> Result<Principal, GenError> {
    let p = match key {
        Key::SrcIp => id(Identifier::DirectRemoteIp(
            matchers::cidr(v).map_err(GenError::Invalid)?,
        )),
        Key::RemoteIp => id(Identifier::RemoteIp(
            matchers::cidr(v).map_err(GenError::Invalid)?,
        )),
        Key::SrcNamespace => {
            let ns = v.replace('*', ".*");
            authenticated(matchers::regex(&format!(".*/ns/{ns}/.*")))
        }
        Key::SrcServiceAccount => {
            authenticated(matchers::regex(&service_account_regex(policy_ns, v)))
        }
        Key::SrcPrincipal => authenticated(matchers::string_with_prefix(v, "spiffe://")),
        Key::RequestHeader(header) => {
            http_only(name, for_tcp)?;
            id(Identifier::Header(matchers::header(header, v)))
        }
        _ => return Err(GenError::Unimplemented),
    };
    Ok(p)
}

/// The single principal of an "extended" key (the JWT-based ones) for all its values.
fn all(key: &Key, name: &str, values: &[String], for_tcp: bool) -> Result<Principal, GenError> {
    http_only(name, for_tcp)?;
    let claim =
        |claims: &[String]| metadata(matchers::jwt_claims(claims, matchers::string_or(values)));
    match key {
        Key::RequestPrincipal => Ok(request_principals(values)),
        Key::RequestAudiences => Ok(claim(&["aud".to_owned()])),
        Key::RequestPresenter => Ok(claim(&["azp".to_owned()])),
        Key::RequestClaims(claims) => Ok(claim(claims)),
        _ => Err(GenError::Unimplemented),
    }
}

/// `<iss>/<sub>` values (split at the last `/`, issuers being URLs) with Istio's wildcards:
/// `*` any token; `*x` issuer `*`/suffix with exact subject, or any issuer with subject
/// suffix `x`; `x*` exact issuer with subject prefix (or any), or issuer prefix `x`.
fn request_principals(values: &[String]) -> Principal {
    let any = || matchers::regex(".+");
    let mut ors: Vec<Principal> = values
        .iter()
        .map(|value| {
            let (iss, sub, found) = match value.rfind('/') {
                Some(i) => (&value[..i], &value[i + 1..], true),
                None => (value.as_str(), "", false),
            };
            let (m_iss, m_sub) = if value == "*" {
                (any(), any())
            } else if let Some(rest) = value.strip_prefix('*') {
                if found {
                    let iss_m = match iss {
                        "*" => any(),
                        _ => matchers::suffix(iss.strip_prefix('*').unwrap_or(iss), false),
                    };
                    (iss_m, matchers::exact(sub, false))
                } else {
                    (any(), matchers::suffix(rest, false))
                }
            } else if let Some(rest) = value.strip_suffix('*') {
                if found {
                    let sub_m = match sub {
                        "*" => any(),
                        _ => matchers::prefix(sub.strip_suffix('*').unwrap_or(sub), false),
                    };
                    (matchers::exact(iss, false), sub_m)
                } else {
                    (matchers::prefix(rest, false), any())
                }
            } else {
                (matchers::exact(iss, false), matchers::exact(sub, false))
            };
            and(vec![
                metadata(matchers::jwt_claim_string("iss", m_iss)),
                metadata(matchers::jwt_claim_string("sub", m_sub)),
            ])
        })
        .collect();
    if ors.len() == 1
        && let Some(p) = ors.pop()
    {
        return p;
    }
    or(ors)
}
