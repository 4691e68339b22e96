//! RBAC `Permission` and `Principal` trees: conversion (every kind mastd can emit; the rest
//! refused with its field) and evaluation against a [`Subject`], with Envoy's semantics
//! (an empty `and` matches, an empty `or` does not).

use envoy_types::pb::envoy::config::rbac::v3::permission::Rule;
use envoy_types::pb::envoy::config::rbac::v3::principal::Identifier;
use envoy_types::pb::envoy::config::rbac::v3::{Permission, Policy, Principal};
use envoy_types::pb::envoy::r#type::matcher::v3::path_matcher;

use super::matchers::{Cidr, HeaderMatch, MetaMatch, StrMatch};
use super::{Failure, Subject, fail, join};

/// A compiled `Permission`.
#[derive(Debug, Clone)]
pub enum Perm {
    /// `any: true`.
    Any,
    /// `and_rules`.
    And(Vec<Perm>),
    /// `or_rules`.
    Or(Vec<Perm>),
    /// `not_rule`.
    Not(Box<Perm>),
    /// `header`.
    Header(HeaderMatch),
    /// `url_path`: the path without query and fragment.
    UrlPath(StrMatch),
    /// `destination_ip`.
    DestinationIp(Cidr),
    /// `destination_port`.
    DestinationPort(u16),
    /// `destination_port_range`: `[start, end)`.
    DestinationPortRange(i32, i32),
    /// `metadata`.
    Metadata(MetaMatch),
    /// `requested_server_name` (SNI, empty without one).
    Sni(StrMatch),
    /// `uri_template`: a path template, on the path without query.
    UriTemplate(regex::Regex),
}

/// A compiled `Principal`.
#[derive(Debug, Clone)]
pub enum Id {
    /// `any: true`.
    Any,
    /// `and_ids`.
    And(Vec<Id>),
    /// `or_ids`.
    Or(Vec<Id>),
    /// `not_id`.
    Not(Box<Id>),
    /// `authenticated`: a TLS peer; with a matcher, one of its URI SANs, DNS SANs or subject.
    Authenticated(Option<StrMatch>),
    /// `source_ip` and `direct_remote_ip`: the connection's peer.
    DirectRemoteIp(Cidr),
    /// `remote_ip`: the downstream remote address (x-forwarded-for aware).
    RemoteIp(Cidr),
    /// `header`.
    Header(HeaderMatch),
    /// `url_path`.
    UrlPath(StrMatch),
    /// `metadata`.
    Metadata(MetaMatch),
}

fn url_path(
    path: &str,
    p: &envoy_types::pb::envoy::r#type::matcher::v3::PathMatcher,
) -> Result<StrMatch, Failure> {
    match &p.rule {
        Some(path_matcher::Rule::Path(m)) => StrMatch::from_proto(&join(path, "path"), m),
        None => Err(fail(path, "no rule")),
    }
}

impl Perm {
    /// Converts a `Permission` found at `path`.
    #[allow(deprecated)]
    pub fn from_proto(path: &str, p: &Permission) -> Result<Self, Failure> {
        let set = |field: &str, rules: &[Permission]| -> Result<Vec<Perm>, Failure> {
            rules
                .iter()
                .enumerate()
                .map(|(i, r)| Perm::from_proto(&format!("{path}.{field}.rules[{i}]"), r))
                .collect()
        };
        Ok(match &p.rule {
            Some(Rule::Any(true)) => Perm::Any,
            Some(Rule::Any(false)) => return Err(fail(join(path, "any"), "must be true")),
            Some(Rule::AndRules(s)) => Perm::And(set("and_rules", &s.rules)?),
            Some(Rule::OrRules(s)) => Perm::Or(set("or_rules", &s.rules)?),
            Some(Rule::NotRule(r)) => {
                Perm::Not(Box::new(Perm::from_proto(&join(path, "not_rule"), r)?))
            }
            Some(Rule::Header(h)) => {
                Perm::Header(HeaderMatch::from_proto(&join(path, "header"), h)?)
            }
            Some(Rule::UrlPath(u)) => Perm::UrlPath(url_path(&join(path, "url_path"), u)?),
            Some(Rule::DestinationIp(c)) => {
                Perm::DestinationIp(Cidr::from_proto(&join(path, "destination_ip"), c)?)
            }
            Some(Rule::DestinationPort(port)) => match u16::try_from(*port) {
                Ok(port) => Perm::DestinationPort(port),
                Err(_) => {
                    return Err(fail(
                        join(path, "destination_port"),
                        "must be at most 65535",
                    ));
                }
            },
            Some(Rule::DestinationPortRange(r)) => Perm::DestinationPortRange(r.start, r.end),
            Some(Rule::Metadata(m)) => {
                Perm::Metadata(MetaMatch::from_proto(&join(path, "metadata"), m)?)
            }
            Some(Rule::RequestedServerName(m)) => Perm::Sni(StrMatch::from_proto(
                &join(path, "requested_server_name"),
                m,
            )?),
            Some(Rule::Matcher(_)) => return Err(unsupported(path, "matcher")),
            Some(Rule::UriTemplate(t)) => {
                Perm::UriTemplate(super::template::from_proto(&join(path, "uri_template"), t)?)
            }
            Some(Rule::SourcedMetadata(_)) => return Err(unsupported(path, "sourced_metadata")),
            None => return Err(fail(path, "no rule")),
        })
    }

    /// Whether the request (or connection) has this permission.
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        match self {
            Perm::Any => true,
            Perm::And(v) => v.iter().all(|p| p.matches(s)),
            Perm::Or(v) => v.iter().any(|p| p.matches(s)),
            Perm::Not(p) => !p.matches(s),
            Perm::Header(h) => h.matches(s),
            Perm::UrlPath(m) => !s.path.is_empty() && m.matches(path_only(s.path)),
            Perm::DestinationIp(c) => c.contains(s.local.ip()),
            Perm::DestinationPort(p) => s.local.port() == *p,
            Perm::DestinationPortRange(a, b) => {
                let p = i32::from(s.local.port());
                *a <= p && p < *b
            }
            Perm::Metadata(m) => m.matches(s.metadata),
            Perm::Sni(m) => m.matches(s.tls.and_then(|t| t.sni.as_deref()).unwrap_or("")),
            Perm::UriTemplate(re) => !s.path.is_empty() && re.is_match(path_only(s.path)),
        }
    }
}

impl Id {
    /// Converts a `Principal` found at `path`.
    #[allow(deprecated)]
    pub fn from_proto(path: &str, p: &Principal) -> Result<Self, Failure> {
        let set = |field: &str, ids: &[Principal]| -> Result<Vec<Id>, Failure> {
            ids.iter()
                .enumerate()
                .map(|(i, r)| Id::from_proto(&format!("{path}.{field}.ids[{i}]"), r))
                .collect()
        };
        Ok(match &p.identifier {
            Some(Identifier::Any(true)) => Id::Any,
            Some(Identifier::Any(false)) => return Err(fail(join(path, "any"), "must be true")),
            Some(Identifier::AndIds(s)) => Id::And(set("and_ids", &s.ids)?),
            Some(Identifier::OrIds(s)) => Id::Or(set("or_ids", &s.ids)?),
            Some(Identifier::NotId(r)) => {
                Id::Not(Box::new(Id::from_proto(&join(path, "not_id"), r)?))
            }
            Some(Identifier::Authenticated(a)) => Id::Authenticated(
                a.principal_name
                    .as_ref()
                    .map(|m| StrMatch::from_proto(&join(path, "authenticated.principal_name"), m))
                    .transpose()?,
            ),
            #[allow(deprecated)]
            Some(Identifier::SourceIp(c)) => {
                Id::DirectRemoteIp(Cidr::from_proto(&join(path, "source_ip"), c)?)
            }
            Some(Identifier::DirectRemoteIp(c)) => {
                Id::DirectRemoteIp(Cidr::from_proto(&join(path, "direct_remote_ip"), c)?)
            }
            Some(Identifier::RemoteIp(c)) => {
                Id::RemoteIp(Cidr::from_proto(&join(path, "remote_ip"), c)?)
            }
            Some(Identifier::Header(h)) => {
                Id::Header(HeaderMatch::from_proto(&join(path, "header"), h)?)
            }
            Some(Identifier::UrlPath(u)) => Id::UrlPath(url_path(&join(path, "url_path"), u)?),
            Some(Identifier::Metadata(m)) => {
                Id::Metadata(MetaMatch::from_proto(&join(path, "metadata"), m)?)
            }
            Some(Identifier::FilterState(_)) => return Err(unsupported(path, "filter_state")),
            Some(Identifier::SourcedMetadata(_)) => {
                return Err(unsupported(path, "sourced_metadata"));
            }
            Some(Identifier::Custom(_)) => return Err(unsupported(path, "custom")),
            None => return Err(fail(path, "no identifier")),
        })
    }

    /// Whether the downstream is this principal.
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        match self {
            Id::Any => true,
            Id::And(v) => v.iter().all(|p| p.matches(s)),
            Id::Or(v) => v.iter().any(|p| p.matches(s)),
            Id::Not(p) => !p.matches(s),
            Id::Authenticated(m) => authenticated(m.as_ref(), s),
            Id::DirectRemoteIp(c) => c.contains(s.peer.ip()),
            Id::RemoteIp(c) => c.contains(s.remote_ip),
            Id::Header(h) => h.matches(s),
            Id::UrlPath(m) => !s.path.is_empty() && m.matches(path_only(s.path)),
            Id::Metadata(m) => m.matches(s.metadata),
        }
    }
}

/// Envoy's `AuthenticatedMatcher`: TLS is required; a matcher is tried on every URI SAN,
/// then every DNS SAN, then the subject.
fn authenticated(m: Option<&StrMatch>, s: &Subject<'_>) -> bool {
    let Some(tls) = s.tls else {
        return false;
    };
    let Some(m) = m else {
        return true;
    };
    tls.peer_uri_sans.iter().any(|u| m.matches(u))
        || tls.peer_dns_sans.iter().any(|d| m.matches(d))
        || m.matches(&tls.peer_subject)
}

fn unsupported(path: &str, field: &str) -> Failure {
    fail(join(path, field), "not supported by mast-proxy")
}

/// The path without query string and fragment (Envoy's `PathUtil::removeQueryAndFragment`).
pub fn path_only(path: &str) -> &str {
    path.find(['?', '#']).map_or(path, |i| &path[..i])
}

/// A compiled `Policy`: it matches when any permission and any principal match.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    permissions: Vec<Perm>,
    principals: Vec<Id>,
}

impl CompiledPolicy {
    /// Converts a `Policy` found at `path`.
    pub fn from_proto(path: &str, p: &Policy) -> Result<Self, Failure> {
        if p.condition.is_some() || p.checked_condition.is_some() {
            return Err(unsupported(path, "condition"));
        }
        if p.cel_config.is_some() {
            return Err(unsupported(path, "cel_config"));
        }
        let permissions = p
            .permissions
            .iter()
            .enumerate()
            .map(|(i, x)| Perm::from_proto(&format!("{path}.permissions[{i}]"), x))
            .collect::<Result<Vec<_>, _>>()?;
        let principals = p
            .principals
            .iter()
            .enumerate()
            .map(|(i, x)| Id::from_proto(&format!("{path}.principals[{i}]"), x))
            .collect::<Result<Vec<_>, _>>()?;
        if permissions.is_empty() {
            return Err(fail(
                join(path, "permissions"),
                "at least one permission is required",
            ));
        }
        if principals.is_empty() {
            return Err(fail(
                join(path, "principals"),
                "at least one principal is required",
            ));
        }
        Ok(CompiledPolicy {
            permissions,
            principals,
        })
    }

    /// Whether the policy applies to the request.
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        self.permissions.iter().any(|p| p.matches(s))
            && self.principals.iter().any(|p| p.matches(s))
    }
}
