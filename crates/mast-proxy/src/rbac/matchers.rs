//! The leaf matchers RBAC (and the JWT filter's rules) use, compiled once at conversion:
//! `StringMatcher`, `HeaderMatcher` (route API), `CidrRange`, and `MetadataMatcher` /
//! `ValueMatcher` over dynamic metadata held as JSON (a protobuf `Struct` maps onto it).

use std::borrow::Cow;
use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::route::v3::HeaderMatcher;
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::r#type::matcher::v3::metadata_matcher::path_segment::Segment;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::value_matcher::MatchPattern as ValuePattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    MetadataMatcher, RegexMatcher, StringMatcher, ValueMatcher, double_matcher, list_matcher,
};
use http::HeaderName;
use regex::Regex;
use serde_json::Value;

use super::{Failure, Metadata, Subject, fail, join};

/// Compiles an RE2 pattern that must match the whole input (Envoy's `safe_regex`).
pub(crate) fn full_regex(path: &str, r: &RegexMatcher) -> Result<Regex, Failure> {
    Regex::new(&format!("^(?:{})$", r.regex))
        .map_err(|e| fail(join(path, "regex"), format!("invalid regex: {e}")))
}

/// A compiled `StringMatcher`.
#[derive(Debug, Clone)]
pub struct StrMatch {
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
    /// Converts a `StringMatcher` found at `path`.
    pub fn from_proto(path: &str, m: &StringMatcher) -> Result<Self, Failure> {
        let pattern = match &m.match_pattern {
            Some(MatchPattern::Exact(s)) => Pattern::Exact(s.as_str().into()),
            Some(MatchPattern::Prefix(s)) => Pattern::Prefix(s.as_str().into()),
            Some(MatchPattern::Suffix(s)) => Pattern::Suffix(s.as_str().into()),
            Some(MatchPattern::Contains(s)) => Pattern::Contains(s.as_str().into()),
            Some(MatchPattern::SafeRegex(r)) => {
                Pattern::Regex(full_regex(&join(path, "safe_regex"), r)?)
            }
            Some(MatchPattern::Custom(_)) => {
                return Err(fail(join(path, "custom"), "not supported by mast-proxy"));
            }
            None => return Err(fail(path, "no match_pattern")),
        };
        Ok(StrMatch {
            pattern,
            ignore_case: m.ignore_case,
        })
    }

    fn plain(pattern: Pattern) -> Self {
        StrMatch {
            pattern,
            ignore_case: false,
        }
    }

    /// Whether `v` matches (`ignore_case` is ASCII and does not apply to regexes, as Envoy).
    pub fn matches(&self, v: &str) -> bool {
        let ic = self.ignore_case;
        match &self.pattern {
            Pattern::Exact(p) => eq(v, p, ic),
            Pattern::Prefix(p) => v.get(..p.len()).is_some_and(|head| eq(head, p, ic)),
            Pattern::Suffix(p) => v
                .len()
                .checked_sub(p.len())
                .and_then(|start| v.get(start..))
                .is_some_and(|tail| eq(tail, p, ic)),
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
    needle.is_empty()
        || hay.windows(needle.len()).any(|w| {
            if ignore_case {
                w.eq_ignore_ascii_case(needle)
            } else {
                w == needle
            }
        })
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
    Range(i64, i64),
}

/// A compiled route-API `HeaderMatcher` (several values are joined with `,`, as Envoy).
#[derive(Debug, Clone)]
pub struct HeaderMatch {
    source: Source,
    cond: HeaderCond,
    invert: bool,
    missing_as_empty: bool,
}

impl HeaderMatch {
    /// Converts a `HeaderMatcher` found at `path`.
    #[allow(deprecated)]
    pub fn from_proto(path: &str, h: &HeaderMatcher) -> Result<Self, Failure> {
        let source = match h.name.to_ascii_lowercase().as_str() {
            ":method" => Source::Method,
            ":authority" | "host" => Source::Authority,
            ":scheme" => Source::Scheme,
            ":path" => Source::Path,
            n if n.starts_with(':') => {
                return Err(fail(join(path, "name"), format!("pseudo-header {n:?}")));
            }
            n => Source::Named(
                HeaderName::from_bytes(n.as_bytes())
                    .map_err(|e| fail(join(path, "name"), format!("invalid header name: {e}")))?,
            ),
        };
        let s = |p: Pattern| HeaderCond::Str(StrMatch::plain(p));
        let cond = match &h.header_match_specifier {
            Some(HeaderMatchSpecifier::PresentMatch(p)) => HeaderCond::Present(*p),
            Some(HeaderMatchSpecifier::StringMatch(m)) => {
                HeaderCond::Str(StrMatch::from_proto(&join(path, "string_match"), m)?)
            }
            Some(HeaderMatchSpecifier::ExactMatch(v)) => s(Pattern::Exact(v.as_str().into())),
            Some(HeaderMatchSpecifier::SafeRegexMatch(r)) => s(Pattern::Regex(full_regex(
                &join(path, "safe_regex_match"),
                r,
            )?)),
            Some(HeaderMatchSpecifier::PrefixMatch(v)) => s(Pattern::Prefix(v.as_str().into())),
            Some(HeaderMatchSpecifier::SuffixMatch(v)) => s(Pattern::Suffix(v.as_str().into())),
            Some(HeaderMatchSpecifier::ContainsMatch(v)) => s(Pattern::Contains(v.as_str().into())),
            Some(HeaderMatchSpecifier::RangeMatch(r)) => HeaderCond::Range(r.start, r.end),
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
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        let value = self.value(s);
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
            HeaderCond::Range(start, end) => {
                value.parse::<i64>().is_ok_and(|n| *start <= n && n < *end)
            }
            HeaderCond::Present(_) => false,
        };
        ok != self.invert
    }

    fn value<'r>(&self, s: &Subject<'r>) -> Option<Cow<'r, str>> {
        let pseudo = |v: &'r str| (!v.is_empty()).then_some(Cow::Borrowed(v));
        let name = match &self.source {
            Source::Method => return pseudo(s.method),
            Source::Authority => return pseudo(s.authority),
            Source::Scheme => return pseudo(s.scheme),
            Source::Path => return pseudo(s.path),
            Source::Named(n) => n,
        };
        let mut values = s.headers.get_all(name).iter();
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

/// A compiled `CidrRange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// Converts a `CidrRange` found at `path`.
    pub fn from_proto(path: &str, c: &CidrRange) -> Result<Self, Failure> {
        let addr: IpAddr = c.address_prefix.parse().map_err(|_| {
            fail(
                join(path, "address_prefix"),
                format!("{:?} is not an IP address", c.address_prefix),
            )
        })?;
        let len = c.prefix_len.map_or(0, |l| l.value);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(fail(
                join(path, "prefix_len"),
                format!("{len} is longer than the address ({max} bits)"),
            ));
        }
        Ok(Cidr {
            addr: canonical(addr),
            len: len as u8,
        })
    }

    /// Whether `ip` is inside the range (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(a), IpAddr::V4(b)) => prefix_eq(&a.octets(), &b.octets(), self.len),
            (IpAddr::V6(a), IpAddr::V6(b)) => prefix_eq(&a.octets(), &b.octets(), self.len),
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], len: u8) -> bool {
    let full = usize::from(len / 8);
    let rest = len % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

/// A compiled `ValueMatcher`.
#[derive(Debug, Clone)]
pub enum ValueMatch {
    /// `null_match`.
    Null,
    /// `double_match`: `[start, end)` range.
    Range(f64, f64),
    /// `double_match`: exact.
    Exact(f64),
    /// `string_match`.
    Str(StrMatch),
    /// `bool_match`.
    Bool(bool),
    /// `present_match`.
    Present(bool),
    /// `list_match.one_of`.
    OneOf(Box<ValueMatch>),
    /// `or_match`.
    Or(Vec<ValueMatch>),
}

impl ValueMatch {
    /// Converts a `ValueMatcher` found at `path`.
    pub fn from_proto(path: &str, v: &ValueMatcher) -> Result<Self, Failure> {
        Ok(match &v.match_pattern {
            Some(ValuePattern::NullMatch(_)) => ValueMatch::Null,
            Some(ValuePattern::DoubleMatch(d)) => match &d.match_pattern {
                Some(double_matcher::MatchPattern::Exact(x)) => ValueMatch::Exact(*x),
                Some(double_matcher::MatchPattern::Range(r)) => ValueMatch::Range(r.start, r.end),
                None => return Err(fail(join(path, "double_match"), "no match_pattern")),
            },
            Some(ValuePattern::StringMatch(s)) => {
                ValueMatch::Str(StrMatch::from_proto(&join(path, "string_match"), s)?)
            }
            Some(ValuePattern::BoolMatch(b)) => ValueMatch::Bool(*b),
            Some(ValuePattern::PresentMatch(b)) => ValueMatch::Present(*b),
            Some(ValuePattern::ListMatch(l)) => match &l.match_pattern {
                Some(list_matcher::MatchPattern::OneOf(inner)) => ValueMatch::OneOf(Box::new(
                    ValueMatch::from_proto(&join(path, "list_match.one_of"), inner)?,
                )),
                None => return Err(fail(join(path, "list_match"), "no match_pattern")),
            },
            Some(ValuePattern::OrMatch(o)) => ValueMatch::Or(
                o.value_matchers
                    .iter()
                    .enumerate()
                    .map(|(i, m)| {
                        ValueMatch::from_proto(&format!("{path}.or_match.value_matchers[{i}]"), m)
                    })
                    .collect::<Result<_, _>>()?,
            ),
            None => return Err(fail(path, "no match_pattern")),
        })
    }

    /// Whether `v` (None: absent) matches.
    pub fn matches(&self, v: Option<&Value>) -> bool {
        match (self, v) {
            (ValueMatch::Present(p), v) => *p == v.is_some(),
            (_, None) => false,
            (ValueMatch::Null, Some(v)) => v.is_null(),
            (ValueMatch::Exact(x), Some(v)) => v.as_f64().is_some_and(|n| n == *x),
            (ValueMatch::Range(a, b), Some(v)) => v.as_f64().is_some_and(|n| *a <= n && n < *b),
            (ValueMatch::Str(m), Some(v)) => v.as_str().is_some_and(|s| m.matches(s)),
            (ValueMatch::Bool(b), Some(v)) => v.as_bool() == Some(*b),
            (ValueMatch::OneOf(m), Some(v)) => v
                .as_array()
                .is_some_and(|items| items.iter().any(|i| m.matches(Some(i)))),
            (ValueMatch::Or(ms), Some(v)) => ms.iter().any(|m| m.matches(Some(v))),
        }
    }
}

/// A compiled `MetadataMatcher` over dynamic metadata.
#[derive(Debug, Clone)]
pub struct MetaMatch {
    filter: Box<str>,
    path: Vec<Box<str>>,
    value: ValueMatch,
    invert: bool,
}

impl MetaMatch {
    /// Converts a `MetadataMatcher` found at `path`.
    pub fn from_proto(path: &str, m: &MetadataMatcher) -> Result<Self, Failure> {
        let keys = m
            .path
            .iter()
            .enumerate()
            .map(|(i, s)| match &s.segment {
                Some(Segment::Key(k)) => Ok(k.as_str().into()),
                None => Err(fail(format!("{path}.path[{i}]"), "no key")),
            })
            .collect::<Result<Vec<Box<str>>, _>>()?;
        if keys.is_empty() {
            return Err(fail(join(path, "path"), "at least one key is required"));
        }
        let value = m
            .value
            .as_ref()
            .ok_or_else(|| fail(join(path, "value"), "required"))?;
        Ok(MetaMatch {
            filter: m.filter.as_str().into(),
            path: keys,
            value: ValueMatch::from_proto(&join(path, "value"), value)?,
            invert: m.invert,
        })
    }

    /// Whether the metadata matches.
    pub fn matches(&self, md: &Metadata) -> bool {
        let mut cur = md.get(&*self.filter);
        for key in &self.path {
            cur = cur.and_then(|v| v.as_object()).and_then(|o| o.get(&**key));
        }
        self.value.matches(cur) != self.invert
    }
}
