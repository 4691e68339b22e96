//! `envoy.filters.http.jwt_authn` (`JwtAuthentication`): providers (issuer, audiences,
//! inline or remote JWKS, token locations, forwarding, payload to metadata / header, claims to
//! headers), requirement rules (`provider_name`, `provider_and_audiences`, `requires_any`,
//! `requires_all`, `allow_missing`, `allow_missing_or_failed`) with Envoy's verifier
//! semantics, and the 401/403 local replies. Verification itself is synchronous; remote keys
//! are made fresh first ([`JwtAuthn::prefetch`]).
//!
//! Submodules: `token` parses a JWT and holds Envoy's statuses; `keys` decodes JWKS and
//! verifies signatures with `ring`; `remote` fetches and caches `remote_jwks`; `extract`
//! finds tokens and matches rules.

mod eval;
pub mod extract;
pub mod keys;
pub mod remote;
pub mod token;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_provider::JwksSourceSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_requirement::RequiresType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::requirement_rule::RequirementType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtProvider, JwtRequirement, RequirementRule,
};
use envoy_types::pb::google::protobuf::Any;
use http::HeaderName;
use prost::Message;

use crate::rbac::{Failure, fail, join};
use extract::{Location, RuleMatch};
use keys::Jwks;
use remote::RemoteJwks;
pub use token::Status;

/// The filter's type URL.
pub const JWT_AUTHN_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication";

/// The filter's name, also the dynamic metadata namespace it writes.
pub const JWT_AUTHN_FILTER: &str = "envoy.filters.http.jwt_authn";

/// A converted provider.
#[derive(Debug)]
pub struct Provider {
    name: String,
    issuer: String,
    audiences: Vec<String>,
    keys: Keys,
    forward: bool,
    locations: Vec<Location>,
    payload_in_metadata: String,
    forward_payload_header: Option<HeaderName>,
    pad_forward_payload_header: bool,
    skew: i64,
    require_expiration: bool,
    space_delimited: Vec<String>,
    claim_to_headers: Vec<(HeaderName, Vec<String>)>,
    /// Tokens whose signature this provider verified (bounded; cleared when full), so a
    /// client reusing its token costs no signature check (Envoy's `jwt_cache_config`).
    verified: parking_lot::Mutex<std::collections::HashSet<Box<str>>>,
}

/// Where a provider's keys come from.
#[derive(Debug)]
enum Keys {
    /// `local_jwks`; `None` when the document was invalid (Envoy keeps the provider; its
    /// tokens fail).
    Local(Option<Arc<Jwks>>),
    /// `remote_jwks`, fetched and cached.
    Remote(Box<RemoteJwks>),
}

/// How many verified tokens a provider remembers.
const VERIFIED_CACHE: usize = 256;

impl Provider {
    /// The keys to verify with now (`None`: none usable or not fetched).
    fn keys(&self) -> Option<Arc<Jwks>> {
        match &self.keys {
            Keys::Local(k) => k.clone(),
            Keys::Remote(r) => r.current(),
        }
    }

    /// Whether `token`'s signature was verified before.
    fn seen(&self, token: &str) -> bool {
        self.verified.lock().contains(token)
    }

    /// Remembers a verified token.
    fn remember(&self, token: &str) {
        let mut set = self.verified.lock();
        if set.len() >= VERIFIED_CACHE {
            set.clear();
        }
        set.insert(token.into());
    }
}

/// A compiled requirement.
#[derive(Debug)]
pub enum Requirement {
    /// `provider_name` / `provider_and_audiences` (index, audience override).
    Provider(usize, Option<Vec<String>>),
    /// `requires_any`.
    Any {
        /// Verifying children.
        children: Vec<Requirement>,
        /// An `allow_missing` member.
        allow_missing: bool,
        /// An `allow_missing_or_failed` member.
        allow_failed: bool,
    },
    /// `requires_all`.
    All(Vec<Requirement>),
    /// `allow_missing` on its own.
    AllowMissing,
    /// `allow_missing_or_failed` on its own.
    AllowFailed,
    /// No requirement.
    AllowAll,
}

/// A converted `envoy.filters.http.jwt_authn`.
#[derive(Debug)]
pub struct JwtAuthn {
    providers: Vec<Provider>,
    rules: Vec<(RuleMatch, Requirement)>,
    bypass_cors_preflight: bool,
    strip_failure_response: bool,
    /// Every provider's locations, deduplicated (for `allow_missing*`).
    all_locations: Vec<Location>,
    /// Headers the filter sets, removed from incoming requests first.
    sanitize: Vec<HeaderName>,
    /// `jwt_authn.allowed`.
    pub allowed: AtomicU64,
    /// `jwt_authn.denied`.
    pub denied: AtomicU64,
}

impl JwtAuthn {
    /// Converts the typed config; the error is `(field, reason)` relative to it.
    pub fn from_any(any: &Any) -> Result<Self, Failure> {
        if any.type_url != JWT_AUTHN_TYPE {
            return Err(fail("type_url", format!("expected {JWT_AUTHN_TYPE}")));
        }
        let p = JwtAuthentication::decode(any.value.as_slice())
            .map_err(|e| fail("value", format!("cannot decode: {e}")))?;
        Self::from_proto(&p)
    }

    /// Converts the decoded config.
    pub fn from_proto(p: &JwtAuthentication) -> Result<Self, Failure> {
        if p.filter_state_rules.is_some() {
            return Err(fail("filter_state_rules", "not supported by mast-proxy"));
        }
        let mut names: Vec<&String> = p.providers.keys().collect();
        names.sort();
        let providers = names
            .iter()
            .map(|n| provider(n, &p.providers[*n]))
            .collect::<Result<Vec<_>, _>>()?;
        let index: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let rules = p
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| rule(&format!("rules[{i}]"), r, p, &index))
            .collect::<Result<Vec<_>, _>>()?;
        let mut all_locations: Vec<Location> = Vec::new();
        let mut sanitize = Vec::new();
        for pr in &providers {
            for l in &pr.locations {
                if !all_locations.contains(l) {
                    all_locations.push(l.clone());
                }
            }
            sanitize.extend(pr.forward_payload_header.iter().cloned());
            sanitize.extend(pr.claim_to_headers.iter().map(|(h, _)| h.clone()));
        }
        Ok(JwtAuthn {
            providers,
            rules,
            bypass_cors_preflight: p.bypass_cors_preflight,
            strip_failure_response: p.strip_failure_response,
            all_locations,
            sanitize,
            allowed: AtomicU64::new(0),
            denied: AtomicU64::new(0),
        })
    }

    fn count(&self, ok: bool) {
        let c = if ok { &self.allowed } else { &self.denied };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// One `RequirementRule` found at `path`.
fn rule(
    path: &str,
    r: &RequirementRule,
    p: &JwtAuthentication,
    index: &HashMap<&str, usize>,
) -> Result<(RuleMatch, Requirement), Failure> {
    let m = r
        .r#match
        .as_ref()
        .ok_or_else(|| fail(join(path, "match"), "required"))?;
    let m = RuleMatch::from_proto(&join(path, "match"), m)?;
    let req = match &r.requirement_type {
        Some(RequirementType::Requires(q)) => requirement(&join(path, "requires"), q, index)?,
        Some(RequirementType::RequirementName(n)) => {
            let q = p.requirement_map.get(n).ok_or_else(|| {
                fail(
                    join(path, "requirement_name"),
                    format!("{n:?} is not in requirement_map"),
                )
            })?;
            requirement(&format!("requirement_map[{n:?}]"), q, index)?
        }
        None => Requirement::AllowAll,
    };
    Ok((m, req))
}

fn provider(name: &str, p: &JwtProvider) -> Result<Provider, Failure> {
    let path = format!("providers[{name:?}]");
    #[allow(deprecated)]
    let unsupported = [
        ("subjects", p.subjects.is_some()),
        ("max_lifetime", p.max_lifetime.is_some()),
        ("header_in_metadata", !p.header_in_metadata.is_empty()),
        (
            "failed_status_in_metadata",
            !p.failed_status_in_metadata.is_empty(),
        ),
    ];
    if let Some((f, _)) = unsupported.iter().find(|(_, set)| *set) {
        return Err(fail(join(&path, f), "not supported by mast-proxy"));
    }
    let keys = jwks(&path, name, p)?;
    let forward_payload_header = (!p.forward_payload_header.is_empty())
        .then(|| header(&path, "forward_payload_header", &p.forward_payload_header))
        .transpose()?;
    let claim_to_headers = claim_headers(&path, p)?;
    Ok(Provider {
        name: name.to_owned(),
        issuer: p.issuer.clone(),
        audiences: p.audiences.clone(),
        keys,
        forward: p.forward,
        locations: extract::locations(&path, p)?,
        payload_in_metadata: p.payload_in_metadata.clone(),
        forward_payload_header,
        pad_forward_payload_header: p.pad_forward_payload_header,
        skew: if p.clock_skew_seconds == 0 {
            60
        } else {
            i64::from(p.clock_skew_seconds)
        },
        require_expiration: p.require_expiration,
        space_delimited: p
            .normalize_payload_in_metadata
            .as_ref()
            .map(|n| n.space_delimited_claims.clone())
            .unwrap_or_default(),
        claim_to_headers,
        verified: parking_lot::Mutex::new(std::collections::HashSet::new()),
    })
}

fn header(path: &str, field: &str, name: &str) -> Result<HeaderName, Failure> {
    HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
        .map_err(|e| fail(join(path, field), format!("invalid header name: {e}")))
}

/// `claim_to_headers`: header and claim path (`a.b` nests).
fn claim_headers(path: &str, p: &JwtProvider) -> Result<Vec<(HeaderName, Vec<String>)>, Failure> {
    p.claim_to_headers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let field = format!("claim_to_headers[{i}].header_name");
            let h = header(path, &field, &c.header_name)?;
            Ok((h, c.claim_name.split('.').map(str::to_owned).collect()))
        })
        .collect()
}

/// The provider's keys: `None` when the inline JWKS is invalid (Envoy keeps the provider).
fn jwks(path: &str, name: &str, p: &JwtProvider) -> Result<Keys, Failure> {
    let keys = match &p.jwks_source_specifier {
        Some(JwksSourceSpecifier::LocalJwks(ds)) => {
            let text = match &ds.specifier {
                Some(Specifier::InlineString(s)) => s.clone(),
                Some(Specifier::InlineBytes(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(Specifier::Filename(f)) => std::fs::read_to_string(f).map_err(|e| {
                    fail(
                        join(path, "local_jwks.filename"),
                        format!("cannot read {f}: {e}"),
                    )
                })?,
                _ => {
                    return Err(fail(
                        join(path, "local_jwks"),
                        "inline_string, inline_bytes or filename is required",
                    ));
                }
            };
            Keys::Local(
                Jwks::parse(&text)
                    .inspect_err(|e| tracing::warn!(provider = name, "invalid inline JWKS: {e}"))
                    .ok()
                    .map(Arc::new),
            )
        }
        Some(JwksSourceSpecifier::RemoteJwks(r)) => Keys::Remote(Box::new(RemoteJwks::from_proto(
            &join(path, "remote_jwks"),
            r,
        )?)),
        None => return Err(fail(path, "local_jwks or remote_jwks is required")),
    };
    Ok(keys)
}

fn requirement(
    path: &str,
    r: &JwtRequirement,
    index: &HashMap<&str, usize>,
) -> Result<Requirement, Failure> {
    let provider = |field: &str, name: &str| {
        index.get(name).copied().ok_or_else(|| {
            fail(
                join(path, field),
                format!("Required provider ['{name}'] is not configured."),
            )
        })
    };
    let list = |field: &str, rs: &[JwtRequirement]| {
        rs.iter()
            .enumerate()
            .map(|(i, q)| requirement(&format!("{path}.{field}.requirements[{i}]"), q, index))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(match &r.requires_type {
        Some(RequiresType::ProviderName(n)) => {
            Requirement::Provider(provider("provider_name", n)?, None)
        }
        Some(RequiresType::ProviderAndAudiences(pa)) => Requirement::Provider(
            provider("provider_and_audiences.provider_name", &pa.provider_name)?,
            (!pa.audiences.is_empty()).then(|| pa.audiences.clone()),
        ),
        Some(RequiresType::RequiresAny(any)) => {
            let all = list("requires_any", &any.requirements)?;
            let allow_missing = all.iter().any(|q| matches!(q, Requirement::AllowMissing));
            let allow_failed = all.iter().any(|q| matches!(q, Requirement::AllowFailed));
            let children = all
                .into_iter()
                .filter(|q| !matches!(q, Requirement::AllowMissing | Requirement::AllowFailed))
                .collect();
            Requirement::Any {
                children,
                allow_missing,
                allow_failed,
            }
        }
        Some(RequiresType::RequiresAll(all)) => {
            Requirement::All(list("requires_all", &all.requirements)?)
        }
        Some(RequiresType::AllowMissing(_)) => Requirement::AllowMissing,
        Some(RequiresType::AllowMissingOrFailed(_)) => Requirement::AllowFailed,
        Some(RequiresType::ExtractOnlyWithoutValidation(_)) => {
            return Err(fail(
                join(path, "extract_only_without_validation"),
                "not supported by mast-proxy",
            ));
        }
        None => Requirement::AllowAll,
    })
}
