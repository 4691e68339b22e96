//! The Envoy matchers authorization rules are made of, written as Istio's
//! `pilot/pkg/security/authz/matcher` writes them: string matchers with Istio's `*` wildcard
//! rules (`*` → regex `.+`, `x*` → prefix, `*x` → suffix, else exact), header, host and path
//! matchers, CIDR ranges and the dynamic-metadata matchers that read JWT claims.

use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::route::v3::HeaderMatcher;
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::r#type::matcher::v3::metadata_matcher::PathSegment;
use envoy_types::pb::envoy::r#type::matcher::v3::metadata_matcher::path_segment::Segment;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    ListMatcher, MetadataMatcher, OrMatcher, PathMatcher, RegexMatcher, StringMatcher,
    ValueMatcher, list_matcher, path_matcher, value_matcher,
};
use envoy_types::pb::google::protobuf::UInt32Value;

/// The dynamic metadata namespace `envoy.filters.http.jwt_authn` writes verified payloads to.
pub const JWT_FILTER: &str = "envoy.filters.http.jwt_authn";
/// The key under [`JWT_FILTER`] holding the verified payload (`payload_in_metadata`), as
/// Istio's `filters.EnvoyJwtFilterPayload`.
pub const JWT_PAYLOAD_KEY: &str = "payload";

fn pattern(p: MatchPattern, ignore_case: bool) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(p),
        ignore_case,
    }
}

/// A `safe_regex` string matcher (RE2, full match).
pub fn regex(re: &str) -> StringMatcher {
    pattern(
        MatchPattern::SafeRegex(RegexMatcher {
            regex: re.to_owned(),
            ..Default::default()
        }),
        false,
    )
}

/// An exact string matcher.
pub fn exact(v: &str, ignore_case: bool) -> StringMatcher {
    pattern(MatchPattern::Exact(v.to_owned()), ignore_case)
}

/// A prefix string matcher.
pub fn prefix(v: &str, ignore_case: bool) -> StringMatcher {
    pattern(MatchPattern::Prefix(v.to_owned()), ignore_case)
}

/// A suffix string matcher.
pub fn suffix(v: &str, ignore_case: bool) -> StringMatcher {
    pattern(MatchPattern::Suffix(v.to_owned()), ignore_case)
}

/// Istio's `StringMatcher(v)`: `*` → regex `.+`, `*x` → suffix `x`, `x*` → prefix `x`, else
/// exact.
pub fn string(v: &str) -> StringMatcher {
    string_with_prefix(v, "")
}

/// Istio's `StringMatcherWithPrefix(v, prefix)`: as [`string`] with `prefix` put in front of
/// the value; `*` stays `.+` (the prefix is not required) and `*x` becomes the regex
/// `<prefix>.*x` (Istio does not escape either part).
pub fn string_with_prefix(v: &str, pre: &str) -> StringMatcher {
    if v == "*" {
        regex(".+")
    } else if let Some(rest) = v.strip_prefix('*') {
        if pre.is_empty() {
            suffix(rest, false)
        } else {
            regex(&format!("{pre}.*{rest}"))
        }
    } else if let Some(rest) = v.strip_suffix('*') {
        prefix(&format!("{pre}{rest}"), false)
    } else {
        exact(&format!("{pre}{v}"), false)
    }
}

fn header_with(name: &str, spec: HeaderMatchSpecifier) -> HeaderMatcher {
    HeaderMatcher {
        name: name.to_owned(),
        header_match_specifier: Some(spec),
        ..Default::default()
    }
}

/// Istio's `HeaderMatcher(k, v)`: `*` → the header is present, else [`string`].
pub fn header(name: &str, v: &str) -> HeaderMatcher {
    if v == "*" {
        return header_with(name, HeaderMatchSpecifier::PresentMatch(true));
    }
    header_with(name, HeaderMatchSpecifier::StringMatch(string(v)))
}

/// Istio's `HostMatcher(k, v)`: as [`header`], case-insensitive.
pub fn host(name: &str, v: &str) -> HeaderMatcher {
    if v == "*" {
        return header_with(name, HeaderMatchSpecifier::PresentMatch(true));
    }
    let mut m = string(v);
    m.ignore_case = true;
    header_with(name, HeaderMatchSpecifier::StringMatch(m))
}

/// Istio's `PathMatcher(path)`: `url_path { path: StringMatcher(path) }`.
pub fn path(v: &str) -> PathMatcher {
    PathMatcher {
        rule: Some(path_matcher::Rule::Path(string(v))),
    }
}

/// Istio's `AddrStrToCidrRange`: `a.b.c.d` → /32 (`/128` for IPv6), `addr/len` kept as
/// written. Errors name the bad value.
pub fn cidr(v: &str) -> Result<CidrRange, String> {
    let (addr, len) = match v.split_once('/') {
        Some((a, l)) => {
            let len: u32 = l
                .parse()
                .map_err(|_| format!("invalid CIDR prefix length in {v:?}"))?;
            (a, Some(len))
        }
        None => (v, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("invalid IP address {v:?}"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    if len > max {
        return Err(format!("invalid CIDR prefix length in {v:?}"));
    }
    Ok(CidrRange {
        address_prefix: ip.to_string(),
        prefix_len: Some(UInt32Value { value: len }),
    })
}

/// A value matcher holding a string matcher.
pub fn value_string(m: StringMatcher) -> ValueMatcher {
    ValueMatcher {
        match_pattern: Some(value_matcher::MatchPattern::StringMatch(m)),
    }
}

/// Istio's `OrMatcher`: the single matcher itself, else an `or_match` of them.
pub fn value_or(mut matchers: Vec<ValueMatcher>) -> ValueMatcher {
    if matchers.len() == 1
        && let Some(m) = matchers.pop()
    {
        return m;
    }
    ValueMatcher {
        match_pattern: Some(value_matcher::MatchPattern::OrMatch(OrMatcher {
            value_matchers: matchers,
        })),
    }
}

/// Istio's `StringOrMatcher`: [`value_or`] of [`string`] matchers.
pub fn string_or(values: &[String]) -> ValueMatcher {
    value_or(values.iter().map(|v| value_string(string(v))).collect())
}

/// A list matcher: one element of the list matches `value`.
pub fn value_list_one_of(value: ValueMatcher) -> ValueMatcher {
    ValueMatcher {
        match_pattern: Some(value_matcher::MatchPattern::ListMatch(Box::new(
            ListMatcher {
                match_pattern: Some(list_matcher::MatchPattern::OneOf(Box::new(value))),
            },
        ))),
    }
}

/// A metadata matcher on `filter` at the key path `keys`.
pub fn metadata(filter: &str, keys: &[&str], value: ValueMatcher) -> MetadataMatcher {
    MetadataMatcher {
        filter: filter.to_owned(),
        path: keys
            .iter()
            .map(|k| PathSegment {
                segment: Some(Segment::Key((*k).to_owned())),
            })
            .collect(),
        value: Some(value),
        ..Default::default()
    }
}

/// Istio's `MetadataStringMatcherForJWTClaim`: the verified JWT payload's `claim` (a string)
/// matches `m`.
pub fn jwt_claim_string(claim: &str, m: StringMatcher) -> MetadataMatcher {
    metadata(JWT_FILTER, &[JWT_PAYLOAD_KEY, claim], value_string(m))
}

/// Istio's `MetadataListValueMatcherForJWTClaims` (with `useExtendedJwt`): the claim at the
/// nested path `claims` matches `value` either as a string or as one element of a list.
pub fn jwt_claims(claims: &[String], value: ValueMatcher) -> MetadataMatcher {
    let mut keys = vec![JWT_PAYLOAD_KEY];
    keys.extend(claims.iter().map(String::as_str));
    let either = value_or(vec![value_list_one_of(value.clone()), value]);
    metadata(JWT_FILTER, &keys, either)
}
