//! The leaf matchers RBAC (and the JWT filter's rules) use, compiled once at conversion:
//! `StringMatcher` and `safe_regex` (re-exported from [`crate::matcher`]), `HeaderMatcher`
//! (the shared one, reading a [`Subject`]), `CidrRange`, and `MetadataMatcher` /
//! `ValueMatcher` over dynamic metadata held as JSON (a protobuf `Struct` maps onto it).

use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::route::v3::HeaderMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::metadata_matcher::path_segment::Segment;
use envoy_types::pb::envoy::r#type::matcher::v3::value_matcher::MatchPattern as ValuePattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    MetadataMatcher, ValueMatcher, double_matcher, list_matcher,
};
use serde_json::Value;

use crate::matcher::{self, Pseudo};
pub use crate::matcher::{StrMatch, full_regex};

use super::{Failure, Metadata, Subject, fail, join};

/// A compiled route-API `HeaderMatcher` ([`matcher::HeaderMatch`] reading a [`Subject`]:
/// `host` means `:authority`, empty pseudo-headers are absent).
#[derive(Debug, Clone)]
pub struct HeaderMatch(matcher::HeaderMatch);

impl HeaderMatch {
    /// Converts a `HeaderMatcher` found at `path`.
    pub fn from_proto(path: &str, h: &HeaderMatcher) -> Result<Self, Failure> {
        matcher::HeaderMatch::from_proto(path, h, true).map(HeaderMatch)
    }

    /// Whether the request satisfies the condition.
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        fn present(v: &str) -> Option<&str> {
            (!v.is_empty()).then_some(v)
        }
        let pseudo = Pseudo {
            method: present(s.method),
            authority: present(s.authority),
            scheme: present(s.scheme),
            path: present(s.path),
        };
        self.0.matches(&pseudo, s.headers)
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
