//! The route-API `HeaderMatcher` (used by routes, RBAC and JWT rules): which value it reads
//! ([`HeaderSource`], with the request's pseudo-headers supplied by the caller as [`Pseudo`])
//! and the condition on that value ([`HeaderCond`]: present / string / deprecated exact /
//! range, with Envoy's `invert_match` and `treat_missing_header_as_empty`).

use std::borrow::Cow;

use envoy_types::pb::envoy::config::route::v3::HeaderMatcher;
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use http::{HeaderMap, HeaderName};

use super::string::{Pattern, StrMatch, full_regex};
use super::{Failure, fail, join};

/// Where a header condition reads its value.
#[derive(Debug, Clone)]
pub enum HeaderSource {
    /// `:method`.
    Method,
    /// `:authority` (and `host` where the caller asks for it).
    Authority,
    /// `:scheme`.
    Scheme,
    /// `:path`.
    Path,
    /// A regular header.
    Named(HeaderName),
}

impl HeaderSource {
    /// Parses `HeaderMatcher.name` (any case) found at `path`; `host_is_authority` reads `host`
    /// as `:authority`. Pseudo-headers other than the four above are refused.
    pub fn parse(path: &str, name: &str, host_is_authority: bool) -> Result<Self, Failure> {
        Ok(match name.to_ascii_lowercase().as_str() {
            ":method" => HeaderSource::Method,
            ":authority" => HeaderSource::Authority,
            "host" if host_is_authority => HeaderSource::Authority,
            ":scheme" => HeaderSource::Scheme,
            ":path" => HeaderSource::Path,
            n if n.starts_with(':') => {
                return Err(fail(
                    join(path, "name"),
                    format!("pseudo-header {n:?} is not supported"),
                ));
            }
            n => HeaderSource::Named(
                HeaderName::from_bytes(n.as_bytes())
                    .map_err(|e| fail(join(path, "name"), format!("invalid header name: {e}")))?,
            ),
        })
    }

    /// The value: a pseudo-header from `pseudo`, else the header's values in `headers`, joined
    /// with `,` when sent several times (as Envoy does; the only case that allocates).
    pub fn value<'r>(&self, pseudo: &Pseudo<'r>, headers: &'r HeaderMap) -> Option<Cow<'r, str>> {
        let name = match self {
            HeaderSource::Method => return pseudo.method.map(Cow::Borrowed),
            HeaderSource::Authority => return pseudo.authority.map(Cow::Borrowed),
            HeaderSource::Scheme => return pseudo.scheme.map(Cow::Borrowed),
            HeaderSource::Path => return pseudo.path.map(Cow::Borrowed),
            HeaderSource::Named(n) => n,
        };
        let mut values = headers.get_all(name).iter();
        let first = values.next()?;
        let mut out = String::from_utf8_lossy(first.as_bytes());
        for v in values {
            let o = out.to_mut();
            o.push(',');
            o.push_str(&String::from_utf8_lossy(v.as_bytes()));
        }
        Some(out)
    }
}

/// A request's pseudo-header values as the caller sees them (`None`: absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct Pseudo<'r> {
    /// `:method`.
    pub method: Option<&'r str>,
    /// `:authority`.
    pub authority: Option<&'r str>,
    /// `:scheme`.
    pub scheme: Option<&'r str>,
    /// `:path`.
    pub path: Option<&'r str>,
}

/// What a [`HeaderCond`] tests.
#[derive(Debug, Clone)]
enum Test {
    Present(bool),
    Str(StrMatch),
    /// Deprecated `exact_match`: the empty string matches any value (Envoy).
    ExactOrAny(Box<str>),
    Range(i64, i64),
}

/// The condition of a `HeaderMatcher` on its header's value.
#[derive(Debug, Clone)]
pub struct HeaderCond {
    test: Test,
    invert: bool,
    missing_as_empty: bool,
}

impl HeaderCond {
    /// Converts the specifier, `invert_match` and `treat_missing_header_as_empty` of the
    /// `HeaderMatcher` found at `path` (its `name` is the caller's).
    #[allow(deprecated)]
    pub fn from_proto(path: &str, h: &HeaderMatcher) -> Result<Self, Failure> {
        let s = |p: Pattern| Test::Str(StrMatch::plain(p));
        let test = match &h.header_match_specifier {
            Some(HeaderMatchSpecifier::PresentMatch(p)) => Test::Present(*p),
            Some(HeaderMatchSpecifier::StringMatch(m)) => {
                Test::Str(StrMatch::from_proto(&join(path, "string_match"), m)?)
            }
            Some(HeaderMatchSpecifier::ExactMatch(v)) => Test::ExactOrAny(v.as_str().into()),
            Some(HeaderMatchSpecifier::SafeRegexMatch(r)) => s(Pattern::Regex(full_regex(
                &join(path, "safe_regex_match"),
                r,
            )?)),
            Some(HeaderMatchSpecifier::PrefixMatch(v)) => s(Pattern::Prefix(v.as_str().into())),
            Some(HeaderMatchSpecifier::SuffixMatch(v)) => s(Pattern::Suffix(v.as_str().into())),
            Some(HeaderMatchSpecifier::ContainsMatch(v)) => s(Pattern::Contains(v.as_str().into())),
            Some(HeaderMatchSpecifier::RangeMatch(r)) => Test::Range(r.start, r.end),
            // Envoy: no specifier means "present".
            None => Test::Present(true),
        };
        Ok(HeaderCond {
            test,
            invert: h.invert_match,
            missing_as_empty: h.treat_missing_header_as_empty,
        })
    }

    /// Whether the header's value (`None`: absent) satisfies the condition.
    pub fn matches(&self, value: Option<&str>) -> bool {
        if let Test::Present(p) = self.test {
            return (p == value.is_some()) != self.invert;
        }
        let value = match value {
            Some(v) => v,
            None if self.missing_as_empty => "",
            None => return false,
        };
        let ok = match &self.test {
            Test::Str(m) => m.matches(value),
            Test::ExactOrAny(e) => e.is_empty() || **e == *value,
            Test::Range(start, end) => value.parse::<i64>().is_ok_and(|n| *start <= n && n < *end),
            Test::Present(_) => false,
        };
        ok != self.invert
    }
}

/// A compiled route-API `HeaderMatcher`.
#[derive(Debug, Clone)]
pub struct HeaderMatch {
    source: HeaderSource,
    cond: HeaderCond,
}

impl HeaderMatch {
    /// Converts the `HeaderMatcher` found at `path`; `host_is_authority` as in
    /// [`HeaderSource::parse`].
    pub fn from_proto(
        path: &str,
        h: &HeaderMatcher,
        host_is_authority: bool,
    ) -> Result<Self, Failure> {
        Ok(HeaderMatch {
            source: HeaderSource::parse(path, &h.name, host_is_authority)?,
            cond: HeaderCond::from_proto(path, h)?,
        })
    }

    /// Whether the request (its pseudo-headers and headers) satisfies the matcher.
    pub fn matches(&self, pseudo: &Pseudo<'_>, headers: &HeaderMap) -> bool {
        self.cond
            .matches(self.source.value(pseudo, headers).as_deref())
    }
}
