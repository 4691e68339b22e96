//! Subject-alternative-name matchers (`match_typed_subject_alt_names`, and the deprecated
//! untyped `match_subject_alt_names` that matches any SAN type), applied to a peer certificate's
//! SANs as Envoy does: the certificate is accepted when any matcher matches any SAN of its type.

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::SubjectAltNameMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;

use super::peer::Sans;
use crate::matcher::StrMatch;

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

/// One SAN matcher: a string matcher ([`StrMatch`], shared with routes and RBAC) on the SANs
/// of one type.
#[derive(Debug, Clone, PartialEq)]
pub struct SanMatcher {
    /// The SAN type.
    pub kind: SanKind,
    /// The string matcher.
    pub pattern: StrMatch,
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
        Self::with(kind, matcher, "matcher")
    }

    /// An untyped (deprecated) matcher: any SAN type.
    pub fn any(m: &StringMatcher) -> Result<Self, String> {
        Self::with(SanKind::Any, m, "")
    }

    fn with(kind: SanKind, m: &StringMatcher, path: &str) -> Result<Self, String> {
        let pattern = StrMatch::from_proto(path, m).map_err(|(field, reason)| {
            if field.is_empty() {
                reason
            } else {
                format!("{field}: {reason}")
            }
        })?;
        Ok(Self { kind, pattern })
    }

    /// Whether this matcher matches one of `sans`. DNS matchers also accept a wildcard SAN
    /// (`*.example.com`) covering an exact pattern, as Envoy does.
    pub fn matches(&self, sans: &Sans) -> bool {
        let check = |list: &[String]| list.iter().any(|s| self.pattern.matches(s));
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
        let (Some(want), Some(suffix)) = (self.pattern.exact(), san.strip_prefix('*')) else {
            return false;
        };
        let Some(cut) = want.len().checked_sub(suffix.len()).filter(|c| *c > 0) else {
            return false;
        };
        let (Some(head), Some(tail)) = (want.get(..cut), want.get(cut..)) else {
            return false;
        };
        let same = if self.pattern.ignore_case() {
            tail.eq_ignore_ascii_case(suffix)
        } else {
            tail == suffix
        };
        same && !head.contains('.')
    }
}

/// Whether any of `matchers` matches (true when there are none).
pub fn any_matches(matchers: &[SanMatcher], sans: &Sans) -> bool {
    matchers.is_empty() || matchers.iter().any(|m| m.matches(sans))
}
