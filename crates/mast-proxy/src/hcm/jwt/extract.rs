//! Where a provider finds its tokens (`from_headers` with `value_prefix`, `from_params`,
//! `from_cookies`; by default `Authorization: Bearer <token>` and `?access_token=`), and the
//! `RouteMatch` of the filter's `rules`.

use envoy_types::pb::envoy::config::route::v3::RouteMatch;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::JwtProvider;
use http::{HeaderMap, HeaderName, header};
use regex::Regex;

use crate::rbac::matchers::{HeaderMatch, full_regex};
use crate::rbac::policy::path_only;
use crate::rbac::{Failure, Subject, fail, join};

/// One place a token may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A header, with the prefix before the token (empty: the whole value).
    Header(HeaderName, Box<str>),
    /// `Authorization` with a case-insensitive `Bearer ` (Envoy's default).
    DefaultAuthorization,
    /// A query parameter.
    Param(Box<str>),
    /// A cookie.
    Cookie(Box<str>),
}

/// A token found in a request, and where.
#[derive(Debug, Clone)]
pub struct Found {
    /// The token text.
    pub token: String,
    /// Where it was.
    pub location: Location,
}

/// The locations of a provider.
pub fn locations(path: &str, p: &JwtProvider) -> Result<Vec<Location>, Failure> {
    let mut out = Vec::new();
    for (i, h) in p.from_headers.iter().enumerate() {
        let name = HeaderName::from_bytes(h.name.to_ascii_lowercase().as_bytes()).map_err(|e| {
            fail(
                format!("{path}.from_headers[{i}].name"),
                format!("invalid header name: {e}"),
            )
        })?;
        out.push(Location::Header(name, h.value_prefix.as_str().into()));
    }
    out.extend(
        p.from_params
            .iter()
            .map(|q| Location::Param(q.as_str().into())),
    );
    out.extend(
        p.from_cookies
            .iter()
            .map(|c| Location::Cookie(c.as_str().into())),
    );
    if out.is_empty() {
        out.push(Location::DefaultAuthorization);
        out.push(Location::Param("access_token".into()));
    }
    Ok(out)
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=' | '+' | '/')
}

/// The token after `prefix` in `value` (Envoy's `extractJWT`): the run of base64url
/// characters and dots.
fn after_prefix<'v>(value: &'v str, prefix: &str) -> Option<&'v str> {
    let rest = if prefix.is_empty() {
        value
    } else {
        &value[value.find(prefix)? + prefix.len()..]
    };
    let end = rest.find(|c| !is_token_char(c)).unwrap_or(rest.len());
    let token = &rest[..end];
    (!token.is_empty()).then_some(token)
}

fn query_param<'a>(path: &'a str, name: &str) -> Option<&'a str> {
    let q = &path[path.find('?')? + 1..];
    let q = q.find('#').map_or(q, |i| &q[..i]);
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name && !v.is_empty()).then_some(v)
    })
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name && !v.is_empty()).then(|| v.trim_matches('"'))
        })
}

/// The token at `loc`, if any.
pub fn find(loc: &Location, headers: &HeaderMap, path: &str) -> Option<String> {
    let token = match loc {
        Location::Header(name, prefix) => headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| after_prefix(v, prefix)),
        Location::DefaultAuthorization => headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let head = v.get(..7)?;
                head.eq_ignore_ascii_case("Bearer ")
                    .then(|| after_prefix(&v[7..], ""))?
            }),
        Location::Param(name) => query_param(path, name),
        Location::Cookie(name) => cookie(headers, name),
    };
    token.map(str::to_owned)
}

/// Removes the token at `loc` from the request (`forward: false`). Envoy removes header
/// tokens only.
pub fn remove(loc: &Location, headers: &mut HeaderMap) {
    match loc {
        Location::Header(name, _) => {
            headers.remove(name);
        }
        Location::DefaultAuthorization => {
            headers.remove(header::AUTHORIZATION);
        }
        Location::Param(_) | Location::Cookie(_) => {}
    }
}

#[derive(Debug, Clone)]
enum PathCond {
    Prefix(Box<str>),
    Exact(Box<str>),
    Regex(Regex),
    SeparatedPrefix(Box<str>),
}

/// A compiled `RequirementRule.match`.
#[derive(Debug, Clone)]
pub struct RuleMatch {
    path: PathCond,
    case_sensitive: bool,
    headers: Vec<HeaderMatch>,
}

impl RuleMatch {
    /// Converts a `RouteMatch` found at `path`.
    pub fn from_proto(path: &str, m: &RouteMatch) -> Result<Self, Failure> {
        let cond = match &m.path_specifier {
            Some(PathSpecifier::Prefix(p)) => PathCond::Prefix(p.as_str().into()),
            Some(PathSpecifier::Path(p)) => PathCond::Exact(p.as_str().into()),
            Some(PathSpecifier::SafeRegex(r)) => {
                PathCond::Regex(full_regex(&join(path, "safe_regex"), r)?)
            }
            Some(PathSpecifier::PathSeparatedPrefix(p)) => {
                PathCond::SeparatedPrefix(p.as_str().into())
            }
            _ => {
                return Err(fail(
                    path,
                    "only prefix, path, safe_regex and path_separated_prefix are supported",
                ));
            }
        };
        let unsupported = [
            ("query_parameters", !m.query_parameters.is_empty()),
            ("grpc", m.grpc.is_some()),
            ("runtime_fraction", m.runtime_fraction.is_some()),
            ("tls_context", m.tls_context.is_some()),
            ("dynamic_metadata", !m.dynamic_metadata.is_empty()),
        ];
        if let Some((f, _)) = unsupported.iter().find(|(_, set)| *set) {
            return Err(fail(join(path, f), "not supported by mast-proxy"));
        }
        let headers = m
            .headers
            .iter()
            .enumerate()
            .map(|(i, h)| HeaderMatch::from_proto(&format!("{path}.headers[{i}]"), h))
            .collect::<Result<_, _>>()?;
        Ok(RuleMatch {
            path: cond,
            case_sensitive: m.case_sensitive.is_none_or(|b| b.value),
            headers,
        })
    }

    /// Whether the request matches.
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        let p = path_only(s.path);
        let eq = |a: &str, b: &str| {
            if self.case_sensitive {
                a == b
            } else {
                a.eq_ignore_ascii_case(b)
            }
        };
        let path_ok = match &self.path {
            PathCond::Prefix(x) => p.get(..x.len()).is_some_and(|h| eq(h, x)),
            PathCond::Exact(x) => eq(p, x),
            PathCond::Regex(r) => r.is_match(p),
            PathCond::SeparatedPrefix(x) => {
                p.get(..x.len()).is_some_and(|h| eq(h, x))
                    && matches!(p.as_bytes().get(x.len()), None | Some(b'/'))
            }
        };
        path_ok && self.headers.iter().all(|h| h.matches(s))
    }
}
