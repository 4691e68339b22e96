//! Test helper: the RBAC protos this module generates, as proto3 JSON (camelCase, the form
//! of Istio's `authz/builder/testdata/*-out.yaml`), so that tests can compare with Istio's
//! golden files and read expectations as JSON. Covers the variants the generators emit.
//! Also included by `tests/authz_*.rs` (`#[path]`), so it only uses public crates.
#![allow(dead_code, deprecated)]

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::rbac::v3::permission::Rule;
use envoy_types::pb::envoy::config::rbac::v3::principal::Identifier;
use envoy_types::pb::envoy::config::rbac::v3::{Permission, Policy, Principal, Rbac};
use envoy_types::pb::envoy::config::route::v3::HeaderMatcher;
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::r#type::matcher::v3::metadata_matcher::path_segment::Segment;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    MetadataMatcher, StringMatcher, ValueMatcher, list_matcher, path_matcher, value_matcher,
};
use serde_json::{Map, Value, json};

/// A string matcher.
pub fn string_matcher(m: &StringMatcher) -> Value {
    let mut o = Map::new();
    match &m.match_pattern {
        Some(MatchPattern::Exact(v)) => o.insert("exact".into(), json!(v)),
        Some(MatchPattern::Prefix(v)) => o.insert("prefix".into(), json!(v)),
        Some(MatchPattern::Suffix(v)) => o.insert("suffix".into(), json!(v)),
        Some(MatchPattern::SafeRegex(r)) => {
            o.insert("safeRegex".into(), json!({ "regex": r.regex }))
        }
        other => o.insert("unsupported".into(), json!(format!("{other:?}"))),
    };
    if m.ignore_case {
        o.insert("ignoreCase".into(), json!(true));
    }
    Value::Object(o)
}

fn header(h: &HeaderMatcher) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(h.name));
    match &h.header_match_specifier {
        Some(HeaderMatchSpecifier::StringMatch(m)) => {
            o.insert("stringMatch".into(), string_matcher(m))
        }
        Some(HeaderMatchSpecifier::PresentMatch(b)) => o.insert("presentMatch".into(), json!(b)),
        other => o.insert("unsupported".into(), json!(format!("{other:?}"))),
    };
    Value::Object(o)
}

fn cidr(c: &CidrRange) -> Value {
    json!({ "addressPrefix": c.address_prefix, "prefixLen": c.prefix_len.as_ref().map_or(0, |l| l.value) })
}

/// A value matcher.
pub fn value_matcher(v: &ValueMatcher) -> Value {
    match &v.match_pattern {
        Some(value_matcher::MatchPattern::StringMatch(m)) => {
            json!({ "stringMatch": string_matcher(m) })
        }
        Some(value_matcher::MatchPattern::ListMatch(l)) => match &l.match_pattern {
            Some(list_matcher::MatchPattern::OneOf(v)) => {
                json!({ "listMatch": { "oneOf": value_matcher(v) } })
            }
            None => json!({ "listMatch": {} }),
        },
        Some(value_matcher::MatchPattern::OrMatch(o)) => json!({
            "orMatch": { "valueMatchers": o.value_matchers.iter().map(value_matcher).collect::<Vec<_>>() }
        }),
        other => json!({ "unsupported": format!("{other:?}") }),
    }
}

/// A metadata matcher.
pub fn metadata(m: &MetadataMatcher) -> Value {
    let path: Vec<Value> = m
        .path
        .iter()
        .map(|p| match &p.segment {
            Some(Segment::Key(k)) => json!({ "key": k }),
            None => json!({}),
        })
        .collect();
    json!({ "filter": m.filter, "path": path, "value": m.value.as_ref().map(value_matcher) })
}

/// A permission.
pub fn permission(p: &Permission) -> Value {
    match &p.rule {
        Some(Rule::AndRules(s)) => {
            json!({ "andRules": { "rules": s.rules.iter().map(permission).collect::<Vec<_>>() } })
        }
        Some(Rule::OrRules(s)) => {
            json!({ "orRules": { "rules": s.rules.iter().map(permission).collect::<Vec<_>>() } })
        }
        Some(Rule::Any(b)) => json!({ "any": b }),
        Some(Rule::Header(h)) => json!({ "header": header(h) }),
        Some(Rule::UrlPath(p)) => match &p.rule {
            Some(path_matcher::Rule::Path(m)) => {
                json!({ "urlPath": { "path": string_matcher(m) } })
            }
            None => json!({ "urlPath": {} }),
        },
        Some(Rule::DestinationIp(c)) => json!({ "destinationIp": cidr(c) }),
        Some(Rule::DestinationPort(n)) => json!({ "destinationPort": n }),
        Some(Rule::Metadata(m)) => json!({ "metadata": metadata(m) }),
        Some(Rule::NotRule(p)) => json!({ "notRule": permission(p) }),
        Some(Rule::RequestedServerName(m)) => json!({ "requestedServerName": string_matcher(m) }),
        Some(Rule::UriTemplate(t)) => json!({ "uriTemplate": { "name": t.name } }),
        other => json!({ "unsupported": format!("{other:?}") }),
    }
}

/// A principal.
pub fn principal(p: &Principal) -> Value {
    match &p.identifier {
        Some(Identifier::AndIds(s)) => {
            json!({ "andIds": { "ids": s.ids.iter().map(principal).collect::<Vec<_>>() } })
        }
        Some(Identifier::OrIds(s)) => {
            json!({ "orIds": { "ids": s.ids.iter().map(principal).collect::<Vec<_>>() } })
        }
        Some(Identifier::Any(b)) => json!({ "any": b }),
        Some(Identifier::Authenticated(a)) => json!({
            "authenticated": { "principalName": a.principal_name.as_ref().map(string_matcher) }
        }),
        Some(Identifier::DirectRemoteIp(c)) => json!({ "directRemoteIp": cidr(c) }),
        Some(Identifier::RemoteIp(c)) => json!({ "remoteIp": cidr(c) }),
        Some(Identifier::Header(h)) => json!({ "header": header(h) }),
        Some(Identifier::Metadata(m)) => json!({ "metadata": metadata(m) }),
        Some(Identifier::NotId(p)) => json!({ "notId": principal(p) }),
        other => json!({ "unsupported": format!("{other:?}") }),
    }
}

/// A policy.
pub fn policy(p: &Policy) -> Value {
    json!({
        "permissions": p.permissions.iter().map(permission).collect::<Vec<_>>(),
        "principals": p.principals.iter().map(principal).collect::<Vec<_>>(),
    })
}

/// An `envoy.config.rbac.v3.RBAC` (action omitted when ALLOW, policies when empty, as
/// proto3 JSON does).
pub fn rbac(r: &Rbac) -> Value {
    let mut o = Map::new();
    match r.action {
        1 => {
            o.insert("action".into(), json!("DENY"));
        }
        2 => {
            o.insert("action".into(), json!("LOG"));
        }
        _ => {}
    }
    if !r.policies.is_empty() {
        let policies: Map<String, Value> = r
            .policies
            .iter()
            .map(|(k, v)| (k.clone(), policy(v)))
            .collect();
        o.insert("policies".into(), Value::Object(policies));
    }
    Value::Object(o)
}
