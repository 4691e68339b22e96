//! Small pieces of the API server's behaviour the emulator needs: `Status` bodies, JSON
//! merge patch (RFC 7386), label and field selectors, query strings and timestamps.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

/// A `Status` object as the API server sends with a failure (`reason` such as `NotFound`,
/// `AlreadyExists`, `Conflict`, `Invalid`, `BadRequest`, `Expired`, `MethodNotAllowed`).
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

/// Applies a JSON merge patch (RFC 7386) to `target`: objects merge key by key, `null`
/// removes a key, anything else (arrays included) replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in patch {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// Decodes `application/x-www-form-urlencoded` text (`%XX` and `+`).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a query string into a map (the last value of a repeated key wins).
pub fn parse_query(query: Option<&str>) -> BTreeMap<String, String> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Whether a query flag is set (`1` or `true`).
pub fn flag(query: &BTreeMap<String, String>, key: &str) -> bool {
    matches!(query.get(key).map(String::as_str), Some("1" | "true"))
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
}

/// A label selector as the API server accepts in `labelSelector` (equality-based:
/// `a=b`, `a==b`, `a!=b`, `a`, `!a`, comma-separated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    /// Parses a selector; an empty one matches everything.
    pub fn parse(s: &str) -> Self {
        let reqs = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                if let Some((k, v)) = p.split_once("!=") {
                    Requirement::NotEquals(k.trim().into(), v.trim().into())
                } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
                    Requirement::Equals(k.trim().into(), v.trim().into())
                } else if let Some(k) = p.strip_prefix('!') {
                    Requirement::NotExists(k.trim().into())
                } else {
                    Requirement::Exists(p.into())
                }
            })
            .collect();
        Self(reqs)
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A field selector (`metadata.name=x`, `metadata.namespace!=y`, any dotted path of
/// string fields, comma-separated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses a selector; an empty one matches everything.
    pub fn parse(s: &str) -> Self {
        let reqs = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .filter_map(|p| {
                if let Some((k, v)) = p.split_once("!=") {
                    Some((k.trim().to_owned(), false, v.trim().to_owned()))
                } else {
                    let (k, v) = p.split_once("==").or_else(|| p.split_once('='))?;
                    Some((k.trim().to_owned(), true, v.trim().to_owned()))
                }
            })
            .collect();
        Self(reqs)
    }

    /// Whether the object's fields satisfy every requirement (a missing field is `""`).
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, equal, want)| {
            let pointer = format!("/{}", path.replace('.', "/"));
            let have = object
                .pointer(&pointer)
                .and_then(Value::as_str)
                .unwrap_or("");
            (have == want) == *equal
        })
    }
}

/// The current time as RFC 3339 in UTC with second precision, as Kubernetes writes
/// `creationTimestamp`.
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut target = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(
            &mut target,
            &json!({"a": "z", "c": {"f": null}, "l": [3], "n": 1}),
        );
        assert_eq!(target, json!({"a": "z", "c": {"d": "e"}, "l": [3], "n": 1}));
    }

    #[test]
    fn selectors_match_like_the_api_server() {
        let obj = json!({"metadata": {"name": "a", "labels": {"app": "x", "v": "1"}}});
        assert!(LabelSelector::parse("app=x,v").matches(&obj));
        assert!(LabelSelector::parse("app==x,!w,v!=2").matches(&obj));
        assert!(!LabelSelector::parse("app=y").matches(&obj));
        assert!(!LabelSelector::parse("w").matches(&obj));
        assert!(FieldSelector::parse("metadata.name=a").matches(&obj));
        assert!(!FieldSelector::parse("metadata.name!=a").matches(&obj));
        assert!(FieldSelector::parse("metadata.namespace=").matches(&obj));
    }

    #[test]
    fn query_strings_are_decoded() {
        let q = parse_query(Some("labelSelector=app%3Dx%2Cv&watch=1&x=a+b"));
        assert_eq!(q["labelSelector"], "app=x,v");
        assert!(flag(&q, "watch"));
        assert_eq!(q["x"], "a b");
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}
