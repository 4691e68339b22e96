//! Validation of `RequestAuthentication`, following Istio's `ValidateRequestAuthentication`
//! and `validateJwtRule` (`pkg/config/validation`) and the rules of its CRD: an issuer per
//! rule, an http(s) `jwksUri`, a parseable inline `jwks`, non-empty token locations, valid
//! claim-to-header names and a timeout of at least 1ms.

#[cfg(test)]
mod tests;

use serde_json::Value;

use super::Report;
use super::authorization_policy::shared;
use super::common;
use crate::resource::Resource;
use crate::security::RequestAuthentication;
use crate::security::request_authentication::JwtRule;

/// Checks a `RequestAuthentication`; `res` gives its name, namespace and API version.
pub(crate) fn validate(spec: &RequestAuthentication, res: &Resource, r: &mut Report) {
    shared::dry_run_annotation(r, res, None);
    shared::attachment(
        r,
        spec.selector.as_ref(),
        spec.target_ref.as_ref(),
        &spec.target_refs,
    );
    for (i, rule) in spec.jwt_rules.iter().enumerate() {
        jwt_rule(r, &format!("spec.jwtRules[{i}]"), rule);
    }
}

/// Checks one JWT rule at `f` (`spec.jwtRules[i]`).
fn jwt_rule(r: &mut Report, f: &str, rule: &JwtRule) {
    if rule.issuer.is_empty() {
        r.error(format!("{f}.issuer"), "issuer must be non-empty string");
    }
    for (k, a) in rule.audiences.iter().enumerate() {
        if a.is_empty() {
            r.error(
                format!("{f}.audiences[{k}]"),
                "audience must be non-empty string",
            );
        }
    }
    if let Some(uri) = &rule.jwks_uri
        && let Err(e) = jwks_uri(uri)
    {
        r.error(format!("{f}.jwksUri"), e);
    }
    if let Some(jwks) = &rule.jwks {
        if let Err(e) = jwks_document(jwks) {
            r.error(format!("{f}.jwks"), format!("jwks parse error: {e}"));
        }
        if rule.jwks_uri.is_some() {
            r.warn(
                format!("{f}.jwks"),
                "only one of jwks and jwksUri should be set; jwksUri is ignored when jwks is set",
            );
        }
    }
    locations(r, f, rule);
    for (k, c) in rule.output_claim_to_headers.iter().enumerate() {
        let fk = format!("{f}.outputClaimToHeaders[{k}]");
        if c.header.is_empty() || c.claim.is_empty() {
            let field = if c.header.is_empty() {
                "header"
            } else {
                "claim"
            };
            r.error(
                format!("{fk}.{field}"),
                "outputClaimToHeaders header and claim value must be non-empty string",
            );
        } else if !is_strict_header_name(&c.header) {
            r.error(
                format!("{fk}.header"),
                format!("header name {} is not a valid header name", c.header),
            );
        }
    }
    if let Some(t) = rule.timeout {
        common::duration(r, &format!("{f}.timeout"), t);
    }
}

/// Where the token is found: header names, query parameters and cookie names not empty.
fn locations(r: &mut Report, f: &str, rule: &JwtRule) {
    for (k, h) in rule.from_headers.iter().enumerate() {
        if h.name.is_empty() {
            r.error(
                format!("{f}.fromHeaders[{k}].name"),
                "location header name must be non-empty string",
            );
        }
    }
    for (k, p) in rule.from_params.iter().enumerate() {
        if p.is_empty() {
            r.error(
                format!("{f}.fromParams[{k}]"),
                "location query must be non-empty string",
            );
        }
    }
    for (k, c) in rule.from_cookies.iter().enumerate() {
        if c.is_empty() {
            r.error(
                format!("{f}.fromCookies[{k}]"),
                "cookie name must be non-empty string",
            );
        }
    }
}

/// Istio's strict header names: letters, digits and `-`.
fn is_strict_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A key set URL: `http://` or `https://`, a host, and a port number if one is given.
fn jwks_uri(uri: &str) -> Result<(), String> {
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "invalid jwksUri {uri:?}: must not contain spaces or control characters"
        ));
    }
    let scheme = uri
        .split_once(':')
        .map_or("", |(s, _)| s)
        .to_ascii_lowercase();
    let Some(rest) = uri
        .get(scheme.len()..)
        .and_then(|r| r.strip_prefix("://"))
        .filter(|_| matches!(scheme.as_str(), "http" | "https"))
    else {
        return Err(format!(
            "URI scheme {scheme:?} is not supported: jwksUri must start with http:// or https://"
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("invalid jwksUri {uri:?}: unclosed '[' in host"))?;
        (h, after.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err(format!("invalid jwksUri {uri:?}: no host"));
    }
    // Like Go's `url.Parse`, an empty port after the colon means the scheme's default.
    let port_ok = port.is_none_or(|p| {
        p.is_empty()
            || (p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|n| n > 0))
    });
    if port_ok {
        Ok(())
    } else {
        Err(format!(
            "invalid jwksUri {uri:?}: port {:?} must be a number in 1..65535",
            port.unwrap_or("")
        ))
    }
}

/// An inline JWKS: a JSON key set `{"keys": [...]}` or a single key, each with `kty`.
fn jwks_document(text: &str) -> Result<(), String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let has_kty = |k: &Value| k.get("kty").is_some_and(Value::is_string);
    match v.get("keys") {
        Some(Value::Array(keys)) => match keys.iter().position(|k| !has_kty(k)) {
            Some(i) => Err(format!("key {i} has no \"kty\"")),
            None => Ok(()),
        },
        Some(_) => Err("\"keys\" must be a list of keys".into()),
        None if v.is_object() && has_kty(&v) => Ok(()),
        None => {
            Err("expected a JSON key set {\"keys\": [...]} or a single key with \"kty\"".into())
        }
    }
}
