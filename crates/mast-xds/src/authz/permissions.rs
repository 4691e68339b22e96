//! RBAC permissions (what a request is to): `to.operation` fields (`hosts`, `methods`,
//! `paths`, `ports`) and the `when` keys about the destination (`destination.ip`,
//! `destination.port`, `connection.sni`, `experimental.envoy.filters.*`), as Istio's
//! `authz/model` generators build them.

use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
use envoy_types::pb::envoy::config::rbac::v3::Permission;
use envoy_types::pb::envoy::config::rbac::v3::permission::{Rule, Set};
use envoy_types::pb::envoy::extensions::path::r#match::uri_template::v3::UriTemplateMatchConfig;
use envoy_types::pb::envoy::r#type::matcher::v3::ValueMatcher;
use envoy_types::util::pack_any;

use super::matchers;
use super::model::{Cond, GenError, Key, Strictness, generate_cond};

fn rule(r: Rule) -> Permission {
    Permission { rule: Some(r) }
}

/// `any: true`.
pub(crate) fn any() -> Permission {
    rule(Rule::Any(true))
}

/// `and_rules`.
pub(crate) fn and(rules: Vec<Permission>) -> Permission {
    rule(Rule::AndRules(Set { rules }))
}

/// `or_rules`.
pub(crate) fn or(rules: Vec<Permission>) -> Permission {
    rule(Rule::OrRules(Set { rules }))
}

/// `not_rule`.
pub(crate) fn not(p: Permission) -> Permission {
    rule(Rule::NotRule(Box::new(p)))
}

/// The permissions one rule field contributes (its values' OR, then `not` of its not
/// values' OR), following `strict` for values the chain cannot evaluate.
pub(crate) fn for_cond(
    c: &Cond<'_>,
    for_tcp: bool,
    strict: Strictness,
) -> Result<Vec<Permission>, GenError> {
    generate_cond(
        c,
        strict,
        |v| one(&c.key, c.name, v, for_tcp),
        |vs| all(&c.key, vs),
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

/// Istio's `convertToPort`.
pub(crate) fn port(v: &str) -> Result<u32, GenError> {
    v.parse::<u32>()
        .ok()
        .filter(|p| *p <= 65535)
        .ok_or_else(|| GenError::Invalid(format!("invalid port {v}")))
}

fn one(key: &Key, name: &str, v: &str, for_tcp: bool) -> Result<Permission, GenError> {
    let r = match key {
        Key::DestIp => Rule::DestinationIp(matchers::cidr(v).map_err(GenError::Invalid)?),
        Key::DestPort => Rule::DestinationPort(port(v)?),
        Key::ConnSni => Rule::RequestedServerName(matchers::string(v)),
        Key::Host => {
            http_only(name, for_tcp)?;
            Rule::Header(matchers::host(":authority", v))
        }
        Key::Method => {
            http_only(name, for_tcp)?;
            Rule::Header(matchers::header(":method", v))
        }
        Key::Path => {
            http_only(name, for_tcp)?;
            return Ok(path(v));
        }
        _ => return Err(GenError::Unimplemented),
    };
    Ok(rule(r))
}

/// Whether `path` uses Istio's path template syntax (`{*}` or `{**}`).
fn is_template(path: &str) -> bool {
    path.contains("{*}") || path.contains("{**}")
}

/// A path permission: `url_path` with Istio's wildcard rules, or, for a template
/// (`/a/{*}/b`, `/{**}/x`), Envoy's `uri_template` matcher with `{*}` → `*` and `{**}` → `**`.
fn path(v: &str) -> Permission {
    if is_template(v) {
        let template = v.replace("{**}", "**").replace("{*}", "*");
        let config = UriTemplateMatchConfig {
            path_template: template,
        };
        return rule(Rule::UriTemplate(TypedExtensionConfig {
            name: "uri-template".to_owned(),
            typed_config: Some(pack_any(config)),
        }));
    }
    rule(Rule::UrlPath(matchers::path(v)))
}

/// The single permission of an "extended" key for all its values at once.
fn all(key: &Key, values: &[String]) -> Result<Permission, GenError> {
    let Key::EnvoyFilter { filter, key } = key else {
        return Err(GenError::Unimplemented);
    };
    let matchers: Vec<ValueMatcher> = values
        .iter()
        .map(
            |v| match v.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
                Some(inner) => {
                    matchers::value_list_one_of(matchers::value_string(matchers::string(inner)))
                }
                None => matchers::value_string(matchers::string(v)),
            },
        )
        .collect();
    let m = matchers::metadata(filter, &[key.as_str()], matchers::value_or(matchers));
    // The `metadata` form Istio emits (deprecated by Envoy for `sourced_metadata`, still
    // evaluated).
    #[allow(deprecated)]
    let r = Rule::Metadata(m);
    Ok(rule(r))
}
