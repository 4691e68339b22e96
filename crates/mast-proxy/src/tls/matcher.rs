//! Subject-alternative-name matchers (`match_typed_subject_alt_names`, and the deprecated
//! untyped `match_subject_alt_names` that matches any SAN type), applied to a peer certificate's
//! SANs as Envoy does: the certificate is accepted when any matcher matches any SAN of its type.

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::SubjectAltNameMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};

use super::peer::Sans;

/// Which SANs a matcher looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanKind {
    /// Every type (the deprecated untyped matchers).
    Any,
    /// rfc822Name.
    Email,
    /// dNSName.
    Dns,
    /// uniformResourceIdentifier.
    Uri,
    /// iPAddress.
    Ip,
}

/// A string pattern.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// Equal.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Ends with.
    Suffix(String),
    /// Contains.
    Contains(String),
    /// Matches the whole value.
    Regex(regex::Regex),
}

/// One SAN matcher.
#[derive(Debug, Clone)]
pub struct SanMatcher {
    /// The SAN type.
    pub kind: SanKind,
    /// The pattern.
    pub pattern: Pattern,
    /// Case-insensitive comparison (patterns are stored lower-case).
    pub ignore_case: bool,
}

impl PartialEq for SanMatcher {
    fn eq(&self, other: &Self) -> bool {
        let p = |m: &Pattern| match m {
            Pattern::Exact(s) => (0, s.clone()),
            Pattern::Prefix(s) => (1, s.clone()),
            Pattern::Suffix(s) => (2, s.clone()),
            Pattern::Contains(s) => (3, s.clone()),
            Pattern::Regex(r) => (4, r.as_str().to_owned()),
        };
        self.kind == other.kind
            && self.ignore_case == other.ignore_case
            && p(&self.pattern) == p(&other.pattern)
    }
}

impl SanMatcher {
    /// A typed matcher.
    pub fn typed(m: &SubjectAltNameMatcher) -> Result<Self, String> {
        let kind = match m.san_type {
            1 => SanKind::Email,
            2 => SanKind::Dns,
            3 => SanKind::Uri,
            4 => SanKind::Ip,
            5 => return Err("OTHER_NAME SANs are not supported".into()),
            _ => return Err("san_type is required".into()),
        };
        let matcher = m.matcher.as_ref().ok_or("matcher is required")?;
        Self::with(kind, matcher)
    }

    /// An untyped (deprecated) matcher: any SAN type.
    pub fn any(m: &StringMatcher) -> Result<Self, String> {
        Self::with(SanKind::Any, m)
    }

    fn with(kind: SanKind, m: &StringMatcher) -> Result<Self, String> {
        let case = |s: &str| {
            if m.ignore_case {
                s.to_ascii_lowercase()
            } else {
                s.to_owned()
            }
        };
        let pattern = match &m.match_pattern {
            Some(MatchPattern::Exact(s)) => Pattern::Exact(case(s)),
            Some(MatchPattern::Prefix(s)) => Pattern::Prefix(case(s)),
            Some(MatchPattern::Suffix(s)) => Pattern::Suffix(case(s)),
            Some(MatchPattern::Contains(s)) => Pattern::Contains(case(s)),
            Some(MatchPattern::SafeRegex(r)) => {
                let text = format!("^(?:{})$", r.regex);
                let re = regex::RegexBuilder::new(&text)
                    .case_insensitive(m.ignore_case)
                    .build()
                    .map_err(|e| format!("bad regex: {e}"))?;
                Pattern::Regex(re)
            }
            _ => {
                return Err(
                    "only exact, prefix, suffix, contains and safe_regex are supported".into(),
                );
            }
        };
        Ok(Self {
            kind,
            pattern,
            ignore_case: m.ignore_case,
        })
    }

    fn matches_value(&self, value: &str) -> bool {
        let lowered;
        let v = if self.ignore_case && !matches!(self.pattern, Pattern::Regex(_)) {
            lowered = value.to_ascii_lowercase();
            lowered.as_str()
        } else {
            value
        };
        match &self.pattern {
            Pattern::Exact(s) => v == s,
            Pattern::Prefix(s) => v.starts_with(s.as_str()),
            Pattern::Suffix(s) => v.ends_with(s.as_str()),
            Pattern::Contains(s) => v.contains(s.as_str()),
            Pattern::Regex(r) => r.is_match(v),
        }
    }

    /// Whether this matcher matches one of `sans`. DNS matchers also accept a wildcard SAN
    /// (`*.example.com`) covering an exact pattern, as Envoy does.
    pub fn matches(&self, sans: &Sans) -> bool {
        let check = |list: &[String]| list.iter().any(|s| self.matches_value(s));
        match self.kind {
            SanKind::Uri => check(&sans.uri),
            SanKind::Email => check(&sans.email),
            SanKind::Ip => check(&sans.ip),
            SanKind::Dns => check(&sans.dns) || sans.dns.iter().any(|s| self.wildcard(s)),
            SanKind::Any => {
                check(&sans.uri) || check(&sans.dns) || check(&sans.email) || check(&sans.ip)
            }
        }
    }

    fn wildcard(&self, san: &str) -> bool {
        let (Pattern::Exact(want), Some(suffix)) = (&self.pattern, san.strip_prefix('*')) else {
            return false;
        };
        want.ends_with(suffix)
            && want.len() > suffix.len()
            && !want[..want.len() - suffix.len()].contains('.')
    }
}

/// Whether any of `matchers` matches (true when there are none).
pub fn any_matches(matchers: &[SanMatcher], sans: &Sans) -> bool {
    matchers.is_empty() || matchers.iter().any(|m| m.matches(sans))
}
