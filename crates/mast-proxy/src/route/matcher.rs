//! Route matching (`RouteMatch`): path (prefix, exact, safe_regex, path_separated_prefix,
//! connect_matcher), case sensitivity, headers (with Envoy's `invert_match` and
//! `treat_missing_header_as_empty`), query parameters and `grpc`. Everything is compiled at
//! conversion; matching a request allocates only for multi-valued headers.

use std::borrow::Cow;

use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::query_parameter_matcher::QueryParameterMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, QueryParameterMatcher, RouteMatch};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher};
use http::HeaderName;
use regex::Regex;

use super::RequestHead;
use super::proto::{Ctx, join, set};
use crate::error::ConfigError;

/// Compiles an RE2 pattern that must match the whole input (Envoy's `safe_regex` semantics).
pub(crate) fn full_regex(ctx: Ctx<'_>, path: &str, r: &RegexMatcher) -> Result<Regex, ConfigError> {
    #[allow(deprecated)]
    ctx.deny(path, &[("google_re2", r.engine_type.is_some())])?;
    Regex::new(&format!("^(?:{})$", r.regex)).map_err(|e| {
        ctx.err(
            join(path, "regex"),
            format!("invalid regex: {}", one_line(&e)),
        )
    })
}

/// A compiled `StringMatcher`.
#[derive(Debug, Clone)]
pub(crate) struct StrMatch {
    pattern: Pattern,
    ignore_case: bool,
}

#[derive(Debug, Clone)]
enum Pattern {
    Exact(Box<str>),
    Prefix(Box<str>),
    Suffix(Box<str>),
    Contains(Box<str>),
    Regex(Regex),
}

impl StrMatch {
    /// Converts a `StringMatcher`.
    pub fn from_proto(ctx: Ctx<'_>, path: &str, m: &StringMatcher) -> Result<Self, ConfigError> {
        let pattern = match &m.match_pattern {
            Some(MatchPattern::Exact(s)) => Pattern::Exact(s.as_str().into()),
            Some(MatchPattern::Prefix(s)) => Pattern::Prefix(s.as_str().into()),
            Some(MatchPattern::Suffix(s)) => Pattern::Suffix(s.as_str().into()),
            Some(MatchPattern::Contains(s)) => Pattern::Contains(s.as_str().into()),
            Some(MatchPattern::SafeRegex(r)) => {
                Pattern::Regex(full_regex(ctx, &join(path, "safe_regex"), r)?)
            }
            Some(MatchPattern::Custom(_)) => {
                return Err(ctx.err(join(path, "custom"), "not supported by mast-proxy"));
            }
            None => return Err(ctx.err(path, "no match_pattern")),
        };
        Ok(StrMatch {
            pattern,
            ignore_case: m.ignore_case,
        })
    }

    /// Whether `v` matches (`ignore_case` is ASCII and has no effect on regexes, as in Envoy).
    pub fn matches(&self, v: &str) -> bool {
        let ic = self.ignore_case;
        match &self.pattern {
            Pattern::Exact(p) => eq(v, p, ic),
            Pattern::Prefix(p) => {
                v.len() >= p.len() && v.is_char_boundary(p.len()) && eq(&v[..p.len()], p, ic)
            }
            Pattern::Suffix(p) => {
                let start = v.len().wrapping_sub(p.len());
                v.len() >= p.len() && v.is_char_boundary(start) && eq(&v[start..], p, ic)
            }
            Pattern::Contains(p) => contains(v.as_bytes(), p.as_bytes(), ic),
            Pattern::Regex(r) => r.is_match(v),
        }
    }
}

fn eq(a: &str, b: &str, ignore_case: bool) -> bool {
    if ignore_case {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

fn contains(hay: &[u8], needle: &[u8], ignore_case: bool) -> bool {
    if needle.is_empty() {
        return true;
    }
    hay.windows(needle.len()).any(|w| {
        if ignore_case {
            w.eq_ignore_ascii_case(needle)
        } else {
            w == needle
        }
    })
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

/// Where a header condition reads its value.
#[derive(Debug, Clone)]
enum Source {
    Method,
    Authority,
    Scheme,
    Path,
    Named(HeaderName),
}

#[derive(Debug, Clone)]
enum HeaderCond {
    Present(bool),
    Str(StrMatch),
    /// Deprecated `exact_match`: the empty string matches any value.
    ExactOrAny(Box<str>),
    Range(i64, i64),
}

/// A compiled `HeaderMatcher`.
#[derive(Debug, Clone)]
pub(crate) struct HeaderMatch {
    source: Source,
    cond: HeaderCond,
    invert: bool,
    missing_as_empty: bool,
}

impl HeaderMatch {
    /// Converts a `HeaderMatcher` (also used by other filters).
    #[allow(deprecated)]
    pub fn from_proto(ctx: Ctx<'_>, path: &str, h: &HeaderMatcher) -> Result<Self, ConfigError> {
        let source =
            match h.name.to_ascii_lowercase().as_str() {
                ":method" => Source::Method,
                ":authority" => Source::Authority,
                ":scheme" => Source::Scheme,
                ":path" => Source::Path,
                n if n.starts_with(':') => {
                    return Err(ctx.err(
                        join(path, "name"),
                        format!("pseudo-header {n:?} is not supported"),
                    ));
                }
                n => Source::Named(HeaderName::from_bytes(n.as_bytes()).map_err(|e| {
                    ctx.err(join(path, "name"), format!("invalid header name: {e}"))
                })?),
            };
        let cond = match &h.header_match_specifier {
            Some(HeaderMatchSpecifier::PresentMatch(p)) => HeaderCond::Present(*p),
            Some(HeaderMatchSpecifier::StringMatch(s)) => {
                HeaderCond::Str(StrMatch::from_proto(ctx, &join(path, "string_match"), s)?)
            }
            Some(HeaderMatchSpecifier::ExactMatch(s)) => HeaderCond::ExactOrAny(s.as_str().into()),
            Some(HeaderMatchSpecifier::SafeRegexMatch(r)) => {
                let re = full_regex(ctx, &join(path, "safe_regex_match"), r)?;
                HeaderCond::Str(StrMatch {
                    pattern: Pattern::Regex(re),
                    ignore_case: false,
                })
            }
            Some(HeaderMatchSpecifier::PrefixMatch(s)) => HeaderCond::Str(StrMatch {
                pattern: Pattern::Prefix(s.as_str().into()),
                ignore_case: false,
            }),
            Some(HeaderMatchSpecifier::SuffixMatch(s)) => HeaderCond::Str(StrMatch {
                pattern: Pattern::Suffix(s.as_str().into()),
                ignore_case: false,
            }),
            Some(HeaderMatchSpecifier::ContainsMatch(s)) => HeaderCond::Str(StrMatch {
                pattern: Pattern::Contains(s.as_str().into()),
                ignore_case: false,
            }),
            Some(HeaderMatchSpecifier::RangeMatch(r)) => HeaderCond::Range(r.start, r.end),
            // Envoy: no specifier means "present".
            None => HeaderCond::Present(true),
        };
        Ok(HeaderMatch {
            source,
            cond,
            invert: h.invert_match,
            missing_as_empty: h.treat_missing_header_as_empty,
        })
    }

    /// Whether the request satisfies the condition.
    pub fn matches(&self, req: &RequestHead<'_>) -> bool {
        let value = self.value(req);
        if let HeaderCond::Present(p) = self.cond {
            return (p == value.is_some()) != self.invert;
        }
        let value = match value {
            Some(v) => v,
            None if self.missing_as_empty => Cow::Borrowed(""),
            None => return false,
        };
        let ok = match &self.cond {
            HeaderCond::Str(m) => m.matches(&value),
            HeaderCond::ExactOrAny(e) => e.is_empty() || **e == *value,
            HeaderCond::Range(start, end) => {
                value.parse::<i64>().is_ok_and(|n| *start <= n && n < *end)
            }
            HeaderCond::Present(_) => false,
        };
        ok != self.invert
    }

    /// The header's value; several values are joined with `,` as Envoy does.
    fn value<'r>(&self, req: &RequestHead<'r>) -> Option<Cow<'r, str>> {
        let name = match &self.source {
            Source::Method => return Some(Cow::Borrowed(req.method.as_str())),
            Source::Authority => return Some(Cow::Borrowed(req.authority)),
            Source::Scheme => return Some(Cow::Borrowed(req.scheme)),
            Source::Path => return (!req.path.is_empty()).then_some(Cow::Borrowed(req.path)),
            Source::Named(n) => n,
        };
        let mut values = req.headers.get_all(name).iter();
        let first = values.next()?;
        let mut out = String::from_utf8_lossy(first.as_bytes());
        for v in values {
            let s = out.to_mut();
            s.push(',');
            s.push_str(&String::from_utf8_lossy(v.as_bytes()));
        }
        Some(out)
    }
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
            .map(|(i, h)| HeaderMatch::from_proto(ctx, &format!("{path}.headers[{i}]"), h))
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
            && self.headers.iter().all(|h| h.matches(req))
            && self.query.iter().all(|q| q.matches(req.path))
    }

    fn path_matches(&self, m: &PathMatch, path: &str) -> bool {
        let cs = self.case_sensitive;
        match m {
            PathMatch::Prefix(p) => starts_with(path, p, cs),
            PathMatch::Exact(p) => eq(path, p, !cs),
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

/// An error message on one line (regex errors draw a caret diagram over several lines; a
/// NACK's `error_detail` reads better without it).
fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
