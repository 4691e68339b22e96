//! Istio's `StringMatch`: exactly one of `exact`, `prefix` or `regex`. Regexes are compiled
//! at load time as RE2-compatible full matches (anchored at both ends, as Envoy's
//! `safe_regex` does), so a bad pattern is reported where it was written.

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A string match condition. `Any` is the empty match `{}` (for headers: "is present").
#[derive(Debug, Clone)]
pub enum StringMatch {
    /// The whole value equals this string.
    Exact(String),
    /// The value starts with this string.
    Prefix(String),
    /// The whole value matches this regular expression.
    Regex(MatchRegex),
    /// No condition was given.
    Any,
}

/// A regular expression kept with its source text, compiled as a full match.
#[derive(Debug, Clone)]
pub struct MatchRegex {
    source: String,
    compiled: Regex,
}

impl MatchRegex {
    /// Compiles `source` as an anchored RE2-compatible expression.
    pub fn new(source: &str) -> Result<Self, String> {
        let compiled = regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(1 << 20)
            .build()
            .map_err(|e| format!("invalid regex {source:?}: {}", first_line(&e.to_string())))?;
        Ok(Self {
            source: source.to_owned(),
            compiled,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `s` matches.
    pub fn is_match(&self, s: &str) -> bool {
        self.compiled.is_match(s)
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .filter(|l| l.starts_with("error:"))
        .map(|l| l.trim_start_matches("error: ").to_owned())
        .next()
        .unwrap_or_else(|| s.replace('\n', " "))
}

impl PartialEq for MatchRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl PartialEq for StringMatch {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Exact(a), Self::Exact(b)) | (Self::Prefix(a), Self::Prefix(b)) => a == b,
            (Self::Regex(a), Self::Regex(b)) => a == b,
            (Self::Any, Self::Any) => true,
            _ => false,
        }
    }
}

impl StringMatch {
    /// Whether `s` satisfies the condition.
    pub fn matches(&self, s: &str) -> bool {
        match self {
            Self::Exact(e) => s == e,
            Self::Prefix(p) => s.starts_with(p.as_str()),
            Self::Regex(r) => r.is_match(s),
            Self::Any => true,
        }
    }
}

impl fmt::Display for StringMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(s) => write!(f, "exact {s:?}"),
            Self::Prefix(s) => write!(f, "prefix {s:?}"),
            Self::Regex(r) => write!(f, "regex {:?}", r.as_str()),
            Self::Any => f.write_str("any"),
        }
    }
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(skip_serializing_if = "Option::is_none")]
    exact: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    regex: Option<String>,
}

impl<'de> Deserialize<'de> for StringMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = Raw::deserialize(d)?;
        match (raw.exact, raw.prefix, raw.regex) {
            (None, None, None) => Ok(Self::Any),
            (Some(e), None, None) => Ok(Self::Exact(e)),
            (None, Some(p), None) => Ok(Self::Prefix(p)),
            (None, None, Some(r)) => MatchRegex::new(&r)
                .map(Self::Regex)
                .map_err(D::Error::custom),
            _ => Err(D::Error::custom(
                "only one of `exact`, `prefix` or `regex` may be set",
            )),
        }
    }
}

impl Serialize for StringMatch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut raw = Raw::default();
        match self {
            Self::Exact(e) => raw.exact = Some(e.clone()),
            Self::Prefix(p) => raw.prefix = Some(p.clone()),
            Self::Regex(r) => raw.regex = Some(r.as_str().to_owned()),
            Self::Any => {}
        }
        raw.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> Result<StringMatch, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn regex_is_a_full_match() {
        let m = parse(serde_json::json!({"regex": "/api/v[0-9]+"})).unwrap();
        assert!(m.matches("/api/v12"));
        assert!(!m.matches("/api/v12/x"));
        assert!(!m.matches("x/api/v1"));
    }

    #[test]
    fn rejects_bad_input() {
        let e = parse(serde_json::json!({"regex": "a(b"})).unwrap_err();
        assert!(e.to_string().contains("invalid regex"), "{e}");
        assert!(
            parse(serde_json::json!({"regex": "(a)\\1"})).is_err(),
            "backreferences are not RE2"
        );
        assert!(parse(serde_json::json!({"exact": "a", "prefix": "b"})).is_err());
        assert!(parse(serde_json::json!({"exakt": "a"})).is_err());
    }

    #[test]
    fn round_trips() {
        for v in [
            serde_json::json!({"exact": "a"}),
            serde_json::json!({"prefix": "/"}),
            serde_json::json!({"regex": ".*"}),
            serde_json::json!({}),
        ] {
            let m = parse(v.clone()).unwrap();
            assert_eq!(serde_json::to_value(&m).unwrap(), v);
        }
    }
}
