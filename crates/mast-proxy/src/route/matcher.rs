//! Route matching (`RouteMatch`): path (prefix, exact, safe_regex, path_separated_prefix,
//! connect_matcher), case sensitivity, headers ([`crate::matcher::HeaderMatch`], shared with
//! RBAC, reading the request's pseudo-headers), query parameters and `grpc`. Everything is
//! compiled at conversion; matching a request allocates only for multi-valued headers.

use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::query_parameter_matcher::QueryParameterMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, QueryParameterMatcher, RouteMatch};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher};
use regex::Regex;

use super::RequestHead;
use super::proto::{Ctx, join, set};
use crate::error::ConfigError;
use crate::matcher::{self, Failure, HeaderMatch, Pseudo};

/// A shared matcher's failure as this RouteConfiguration's error.
fn config_err(ctx: Ctx<'_>) -> impl Fn(Failure) -> ConfigError + '_ {
    move |(field, reason)| ctx.err(field, reason)
}

/// Refuses the deprecated `google_re2` engine options of the regex (if any) at `path`, as route
/// tables always have (the shared matchers accept them for RBAC).
fn deny_google_re2(ctx: Ctx<'_>, path: &str, r: Option<&RegexMatcher>) -> Result<(), ConfigError> {
    #[allow(deprecated)]
    let set = r.is_some_and(|r| r.engine_type.is_some());
    ctx.deny(path, &[("google_re2", set)])
}

/// The regex of a `StringMatcher`, if it is one.
fn string_regex(m: &StringMatcher) -> Option<&RegexMatcher> {
    match &m.match_pattern {
        Some(MatchPattern::SafeRegex(r)) => Some(r),
        _ => None,
    }
}

/// Compiles a whole-input regex ([`matcher::full_regex`] without `google_re2`).
fn full_regex(ctx: Ctx<'_>, path: &str, r: &RegexMatcher) -> Result<Regex, ConfigError> {
    deny_google_re2(ctx, path, Some(r))?;
    matcher::full_regex(path, r).map_err(config_err(ctx))
}

/// Converts a `HeaderMatcher` ([`HeaderMatch`] without `google_re2`; `host` is a header).
#[allow(deprecated)]
fn header_match(ctx: Ctx<'_>, path: &str, h: &HeaderMatcher) -> Result<HeaderMatch, ConfigError> {
    match &h.header_match_specifier {
        Some(HeaderMatchSpecifier::SafeRegexMatch(r)) => {
            deny_google_re2(ctx, &join(path, "safe_regex_match"), Some(r))?;
        }
        Some(HeaderMatchSpecifier::StringMatch(m)) => {
            deny_google_re2(ctx, &join(path, "string_match.safe_regex"), string_regex(m))?;
        }
        _ => {}
    }
    HeaderMatch::from_proto(path, h, false).map_err(config_err(ctx))
}

/// A compiled `StringMatcher` ([`matcher::StrMatch`] with route errors).
#[derive(Debug, Clone)]
pub(crate) struct StrMatch(matcher::StrMatch);

impl StrMatch {
    /// Converts a `StringMatcher`.
    pub fn from_proto(ctx: Ctx<'_>, path: &str, m: &StringMatcher) -> Result<Self, ConfigError> {
        deny_google_re2(ctx, &join(path, "safe_regex"), string_regex(m))?;
        matcher::StrMatch::from_proto(path, m)
            .map(StrMatch)
            .map_err(config_err(ctx))
    }

    /// Whether `v` matches (`ignore_case` is ASCII and has no effect on regexes, as in Envoy).
    pub fn matches(&self, v: &str) -> bool {
        self.0.matches(v)
    }
}

/// The path part of a request: up to the first `?` or `#`.
pub(crate) fn path_only(path: &str) -> &str {
    path.find(['?', '#']).map_or(path, |i| &path[..i])
}

/// The query part (after `?`, up to `#`), if any.
pub(crate) fn query_only(path: &str) -> Option<&str> {
    let q = &path[path.find('?')? + 1..];
    Some(q.find('#').map_or(q, |i| &q[..i]))
}

/// The first value of query parameter `name` (not decoded, as Envoy's `parseQueryString`);
/// a parameter without `=` has the empty value.
pub(crate) fn query_param<'a>(path: &'a str, name: &str) -> Option<&'a str> {
    query_only(path)?
        .split('&')
        .find_map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k == name).then_some(v),
            None => (kv == name).then_some(""),
        })
}

/// The path condition.
#[derive(Debug, Clone)]
pub(crate) enum PathMatch {
    Prefix(Box<str>),
    Exact(Box<str>),
    Regex(Regex),
    SeparatedPrefix(Box<str>),
    Connect,
}

/// A compiled `QueryParameterMatcher`.
#[derive(Debug, Clone)]
struct QueryMatch {
    name: Box<str>,
    cond: Option<StrMatch>,
    present: bool,
}

impl QueryMatch {
    fn matches(&self, path: &str) -> bool {
        let Some(v) = query_param(path, &self.name) else {
            return false;
        };
        match &self.cond {
            Some(m) => m.matches(v),
            None => self.present,
        }
    }
}

/// A compiled `RouteMatch`.
#[derive(Debug, Clone)]
pub(crate) struct RouteMatcher {
    pub path: PathMatch,
    case_sensitive: bool,
    headers: Vec<HeaderMatch>,
    query: Vec<QueryMatch>,
    grpc: bool,
}

impl RouteMatcher {
    /// Converts a `RouteMatch` at `path`.
    pub fn from_proto(ctx: Ctx<'_>, path: &str, m: &RouteMatch) -> Result<Self, ConfigError> {
        let RouteMatch {
            case_sensitive,
            runtime_fraction,
            headers,
            query_parameters,
            cookies,
            grpc,
            tls_context,
            dynamic_metadata,
            filter_state,
            path_specifier,
        } = m;
        ctx.deny(
            path,
            &[
                ("runtime_fraction", runtime_fraction.is_some()),
                ("cookies", !cookies.is_empty()),
                ("tls_context", set(tls_context)),
                ("dynamic_metadata", !dynamic_metadata.is_empty()),
                ("filter_state", !filter_state.is_empty()),
            ],
        )?;
        let path_match = match path_specifier {
            Some(PathSpecifier::Prefix(p)) => PathMatch::Prefix(p.as_str().into()),
            Some(PathSpecifier::Path(p)) => PathMatch::Exact(p.as_str().into()),
            Some(PathSpecifier::SafeRegex(r)) => {
                PathMatch::Regex(full_regex(ctx, &join(path, "safe_regex"), r)?)
            }
            Some(PathSpecifier::PathSeparatedPrefix(p)) => {
                if p.contains(['?', '#']) || p.ends_with('/') {
                    return Err(ctx.err(
                        join(path, "path_separated_prefix"),
                        "must not contain ? or # nor end with /",
                    ));
                }
                PathMatch::SeparatedPrefix(p.as_str().into())
            }
            Some(PathSpecifier::ConnectMatcher(_)) => PathMatch::Connect,
            Some(PathSpecifier::PathMatchPolicy(_)) => {
                return Err(ctx.err(
                    join(path, "path_match_policy"),
                    "not supported by mast-proxy",
                ));
            }
            None => return Err(ctx.err(path, "no path specifier")),
        };
        let headers = headers
            .iter()
            .enumerate()
            .map(|(i, h)| header_match(ctx, &format!("{path}.headers[{i}]"), h))
            .collect::<Result<_, _>>()?;
        let query = query_parameters
            .iter()
            .enumerate()
            .map(|(i, q)| query_match(ctx, &format!("{path}.query_parameters[{i}]"), q))
            .collect::<Result<_, _>>()?;
        Ok(RouteMatcher {
            path: path_match,
            case_sensitive: case_sensitive.as_ref().is_none_or(|b| b.value),
            headers,
            query,
            grpc: grpc.is_some(),
        })
    }

    /// Whether the request matches. `CONNECT` requests match only `connect_matcher` routes,
    /// and `connect_matcher` routes only `CONNECT` requests.
    pub fn matches(&self, req: &RequestHead<'_>) -> bool {
        let is_connect = req.method == http::Method::CONNECT;
        let path_ok = match &self.path {
            PathMatch::Connect => is_connect,
            _ if is_connect => false,
            p => self.path_matches(p, path_only(req.path)),
        };
        path_ok
            && (!self.grpc || is_grpc(req))
            && self.headers_match(req)
            && self.query.iter().all(|q| q.matches(req.path))
    }

    /// The header conditions; the pseudo-headers are always present except an empty `:path`.
    fn headers_match(&self, req: &RequestHead<'_>) -> bool {
        let pseudo = Pseudo {
            method: Some(req.method.as_str()),
            authority: Some(req.authority),
            scheme: Some(req.scheme),
            path: (!req.path.is_empty()).then_some(req.path),
        };
        self.headers.iter().all(|h| h.matches(&pseudo, req.headers))
    }

    fn path_matches(&self, m: &PathMatch, path: &str) -> bool {
        let cs = self.case_sensitive;
        match m {
            PathMatch::Prefix(p) => starts_with(path, p, cs),
            PathMatch::Exact(p) if cs => path == &**p,
            PathMatch::Exact(p) => path.eq_ignore_ascii_case(p),
            PathMatch::Regex(r) => r.is_match(path),
            PathMatch::SeparatedPrefix(p) => {
                starts_with(path, p, cs)
                    && (path.len() == p.len() || path.as_bytes()[p.len()] == b'/')
            }
            PathMatch::Connect => false,
        }
    }
}

fn starts_with(s: &str, prefix: &str, case_sensitive: bool) -> bool {
    s.len() >= prefix.len()
        && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
        && (!case_sensitive || s.as_bytes()[..prefix.len()] == *prefix.as_bytes())
}

/// Envoy's gRPC request check: `content-type` starts with `application/grpc`.
fn is_grpc(req: &RequestHead<'_>) -> bool {
    req.headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

fn query_match(
    ctx: Ctx<'_>,
    path: &str,
    q: &QueryParameterMatcher,
) -> Result<QueryMatch, ConfigError> {
    if q.name.is_empty() {
        return Err(ctx.err(join(path, "name"), "empty"));
    }
    let (cond, present) = match &q.query_parameter_match_specifier {
        Some(QueryParameterMatchSpecifier::StringMatch(s)) => (
            Some(StrMatch::from_proto(ctx, &join(path, "string_match"), s)?),
            true,
        ),
        Some(QueryParameterMatchSpecifier::PresentMatch(p)) => (None, *p),
        None => return Err(ctx.err(path, "no match specifier")),
    };
    Ok(QueryMatch {
        name: q.name.as_str().into(),
        cond,
        present,
    })
}
