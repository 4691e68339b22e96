//! `StringMatcher` and `safe_regex` (RE2 syntax, whole-input match), compiled once.

use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher};
use regex::Regex;

use super::{Failure, fail, join};

/// Compiles the `RegexMatcher` found at `path` so that it must match the whole input (Envoy's
/// `safe_regex`). The deprecated `google_re2` engine options are not looked at (RBAC accepts
/// them, as Istio sets them); route tables refuse them before calling this.
pub fn full_regex(path: &str, r: &RegexMatcher) -> Result<Regex, Failure> {
    Regex::new(&format!("^(?:{})$", r.regex)).map_err(|e| {
        fail(
            join(path, "regex"),
            format!("invalid regex: {}", one_line(&e)),
        )
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

/// A compiled `StringMatcher`.
#[derive(Debug, Clone)]
pub struct StrMatch {
    pattern: Pattern,
    ignore_case: bool,
}

/// What a [`StrMatch`] compares with.
#[derive(Debug, Clone)]
pub(super) enum Pattern {
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

    /// A case-sensitive matcher (the `HeaderMatcher` shortcuts such as `prefix_match`).
    pub(super) fn plain(pattern: Pattern) -> Self {
        StrMatch {
            pattern,
            ignore_case: false,
        }
    }

    /// The value of an `exact` matcher.
    pub fn exact(&self) -> Option<&str> {
        match &self.pattern {
            Pattern::Exact(p) => Some(p),
            _ => None,
        }
    }

    /// Whether comparisons ignore ASCII case.
    pub fn ignore_case(&self) -> bool {
        self.ignore_case
    }

    /// Whether `v` matches (`ignore_case` is ASCII and does not apply to regexes, as in Envoy).
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

/// Equal when they match the same way (regexes compare by their source).
impl PartialEq for StrMatch {
    fn eq(&self, other: &Self) -> bool {
        let same = match (&self.pattern, &other.pattern) {
            (Pattern::Exact(a), Pattern::Exact(b))
            | (Pattern::Prefix(a), Pattern::Prefix(b))
            | (Pattern::Suffix(a), Pattern::Suffix(b))
            | (Pattern::Contains(a), Pattern::Contains(b)) => a == b,
            (Pattern::Regex(a), Pattern::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        };
        same && self.ignore_case == other.ignore_case
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
