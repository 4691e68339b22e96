//! Service host names as Istio treats them: fully qualified or short names,
//! `*`-prefixed wildcards, resolution of short names against a namespace, and
//! the wildcard match/subset relations used when configuration refers to hosts.

use std::fmt;

/// Why a string is not a valid host name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostnameError {
    /// The host is empty.
    #[error("host must not be empty")]
    Empty,
    /// A `*` appears anywhere but as the whole first label.
    #[error("wildcard is only allowed as the first label, as in `*.example.com`: {0:?}")]
    MisplacedWildcard(String),
    /// A DNS label is empty, too long or holds characters DNS does not allow.
    #[error("invalid DNS label {label:?} in host {host:?}")]
    BadLabel {
        /// The host given.
        host: String,
        /// The offending label.
        label: String,
    },
    /// The whole name is longer than 255 characters.
    #[error("host {0:?} is longer than 255 characters")]
    TooLong(String),
}

/// A host name as used in Istio configuration: `reviews`, `reviews.default.svc.cluster.local`,
/// `*.example.com` or `*`. Stored lower-cased.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Hostname(String);

impl Hostname {
    /// Parses and validates a host (wildcards allowed in the first label only).
    pub fn parse(s: &str) -> Result<Self, HostnameError> {
        validate_host(s)?;
        Ok(Self(s.to_ascii_lowercase()))
    }

    /// Wraps a string that is known to be a host without validating it.
    pub fn new_unchecked(s: impl Into<String>) -> Self {
        Self(s.into().to_ascii_lowercase())
    }

    /// The host as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the first label is a partial wildcard such as `*foo` (Istio warns about these).
    pub fn is_partial_wildcard(&self) -> bool {
        self.0.starts_with('*') && !self.0.starts_with("*.") && self.0 != "*"
    }

    /// Whether the host is a wildcard (`*` or `*.suffix`).
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with('*')
    }

    /// Qualifies a short name as Istio does: a name without dots becomes
    /// `<name>.<namespace>.svc.<suffix>`; names with dots and wildcards stay as they are.
    pub fn resolve(&self, namespace: &str, domain_suffix: &str) -> Hostname {
        if self.0.contains('.') || self.0 == "*" {
            return self.clone();
        }
        Hostname(format!("{}.{namespace}.svc.{domain_suffix}", self.0))
    }

    /// Whether two hosts overlap: some concrete name matches both.
    pub fn matches(&self, other: &Hostname) -> bool {
        self.subset_of(other) || other.subset_of(self)
    }

    /// Whether every name matching `self` also matches `other`
    /// (`a.example.com` ⊆ `*.example.com` ⊆ `*`).
    pub fn subset_of(&self, other: &Hostname) -> bool {
        if other.0 == "*" || self.0 == other.0 {
            return true;
        }
        match (self.0.strip_prefix('*'), other.0.strip_prefix('*')) {
            (_, None) => false,
            (None, Some(suffix)) => self.0.ends_with(suffix),
            (Some(mine), Some(suffix)) => mine.ends_with(suffix),
        }
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn validate_host(s: &str) -> Result<(), HostnameError> {
    if s.is_empty() {
        return Err(HostnameError::Empty);
    }
    if s.len() > 255 {
        return Err(HostnameError::TooLong(s.to_owned()));
    }
    if s == "*" {
        return Ok(());
    }
    // The first label may be `*` or, as Istio allows, a partial wildcard (`*foo`, `*-foo`).
    let rest = match s.strip_prefix('*') {
        Some(partial) => {
            let (first, rest) = partial.split_once('.').unwrap_or((partial, ""));
            let first = first.strip_prefix('-').unwrap_or(first);
            if rest.is_empty() || (!first.is_empty() && !is_dns1123_label(first)) {
                return Err(HostnameError::MisplacedWildcard(s.to_owned()));
            }
            rest
        }
        None => s,
    };
    // A trailing dot (absolute name) is allowed once.
    let rest = rest.strip_suffix('.').unwrap_or(rest);
    for label in rest.split('.') {
        if label.contains('*') {
            return Err(HostnameError::MisplacedWildcard(s.to_owned()));
        }
        if !is_dns1123_label(label) {
            return Err(HostnameError::BadLabel {
                host: s.to_owned(),
                label: label.to_owned(),
            });
        }
    }
    Ok(())
}

/// Whether `s` is a DNS-1123 label: 1–63 characters of `[a-z0-9-]` (upper case accepted),
/// starting and ending with an alphanumeric.
pub fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Hostname {
        Hostname::parse(s).unwrap()
    }

    #[test]
    fn parses_and_rejects() {
        assert!(Hostname::parse("reviews").is_ok());
        assert!(Hostname::parse("*.example.com").is_ok());
        assert!(Hostname::parse("*").is_ok());
        assert!(Hostname::parse("").is_err());
        assert!(Hostname::parse("foo.*.com").is_err());
        assert!(
            Hostname::parse("*foo.com").is_ok(),
            "partial wildcards are Istio's"
        );
        assert!(Hostname::parse("*foo").is_err());
        assert!(Hostname::parse("f*o.com").is_err());
        assert!(Hostname::parse("bad_name.com").is_err());
        assert!(Hostname::parse("-a.com").is_err());
    }

    #[test]
    fn resolves_short_names() {
        assert_eq!(
            h("reviews").resolve("bookinfo", "cluster.local").as_str(),
            "reviews.bookinfo.svc.cluster.local"
        );
        assert_eq!(h("a.b").resolve("x", "cluster.local").as_str(), "a.b");
        assert_eq!(h("*").resolve("x", "cluster.local").as_str(), "*");
    }

    #[test]
    fn wildcard_relations() {
        assert!(h("a.example.com").subset_of(&h("*.example.com")));
        assert!(h("*.a.example.com").subset_of(&h("*.example.com")));
        assert!(!h("*.example.com").subset_of(&h("a.example.com")));
        assert!(h("*.example.com").matches(&h("a.example.com")));
        assert!(!h("a.example.org").matches(&h("*.example.com")));
        assert!(h("anything").subset_of(&h("*")));
    }
}
