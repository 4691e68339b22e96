//! Strict decoding of JSON values into typed resources, with the failing field's path and,
//! for unknown fields, the closest known field suggested — the messages a user of
//! `kubectl apply` with Istio's strict schema would expect.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A decoding failure at a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    /// Path relative to the decoded value (`http[1].route[0].weight`), empty at the root.
    pub field: String,
    /// What is wrong, with a suggestion for misspelt fields.
    pub message: String,
}

impl SchemaError {
    /// The full path with `prefix` prepended.
    pub fn path(&self, prefix: &str) -> String {
        join(prefix, &self.field)
    }

    /// The same error one level down, under `prefix`.
    pub fn under(self, prefix: &str) -> Self {
        Self {
            field: join(prefix, &self.field),
            message: self.message,
        }
    }
}

fn join(prefix: &str, field: &str) -> String {
    match (prefix.is_empty(), field.is_empty()) {
        (true, _) => field.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) if field.starts_with('[') => format!("{prefix}{field}"),
        (false, false) => format!("{prefix}.{field}"),
    }
}

/// Decodes `value` as `T`, reporting the path of the first failure.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, SchemaError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let inner = e.into_inner().to_string();
        match parse_unknown_field(&inner) {
            Some((field, expected)) => SchemaError {
                // serde_path_to_error already ends the path with the unknown key.
                field: if path.ends_with(field.as_str()) {
                    path
                } else {
                    join(&path, &field)
                },
                message: unknown_field_message(&field, &expected),
            },
            None => SchemaError {
                field: path,
                message: humanize(&inner),
            },
        }
    })
}

/// Rewrites Rust type names in serde's messages into words a YAML author knows.
fn humanize(msg: &str) -> String {
    const WORDS: &[(&str, &str)] = &[
        ("expected i64", "expected an integer"),
        ("expected i32", "expected an integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected u16", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected a list"),
        ("expected a map", "expected a mapping"),
    ];
    let mut out = msg.to_owned();
    for (from, to) in WORDS {
        if out.ends_with(from) {
            out.truncate(out.len() - from.len());
            out.push_str(to);
        }
    }
    out
}

/// serde's `unknown field `x`, expected one of `a`, `b`` → (x, [a, b]).
fn parse_unknown_field(msg: &str) -> Option<(String, Vec<String>)> {
    let rest = msg.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((field.to_owned(), expected))
}

/// "unknown field "weigth"; did you mean "weight"?" with the known fields listed.
pub fn unknown_field_message(field: &str, known: &[String]) -> String {
    let best = known
        .iter()
        .map(|k| {
            (
                strsim::jaro_winkler(&field.to_ascii_lowercase(), &k.to_ascii_lowercase()),
                k,
            )
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, k)) => format!("unknown field {field:?}; did you mean {k:?}?"),
        None if known.is_empty() => format!("unknown field {field:?}"),
        None => format!(
            "unknown field {field:?}; known fields: {}",
            known.join(", ")
        ),
    }
}

/// For types that accept unknown fields (Kubernetes' own), finds input keys that the typed
/// value dropped: they are unknown fields, reported as `kubectl apply --validate=strict` would.
pub fn check_no_unknown_fields<T: Serialize>(input: &Value, typed: &T) -> Result<(), SchemaError> {
    let kept = serde_json::to_value(typed).map_err(|e| SchemaError {
        field: String::new(),
        message: e.to_string(),
    })?;
    match first_dropped(input, &kept, "") {
        Some((path, key, siblings)) => Err(SchemaError {
            field: join(&path, &key),
            message: unknown_field_message(&key, &siblings),
        }),
        None => Ok(()),
    }
}

fn first_dropped(input: &Value, kept: &Value, path: &str) -> Option<(String, String, Vec<String>)> {
    match (input, kept) {
        (Value::Object(i), Value::Object(k)) => {
            for (key, v) in i {
                match k.get(key) {
                    None if !is_empty(v) => {
                        return Some((path.to_owned(), key.clone(), Vec::new()));
                    }
                    None => {}
                    Some(kv) => {
                        if let Some(found) = first_dropped(v, kv, &join(path, key)) {
                            return Some(found);
                        }
                    }
                }
            }
            None
        }
        (Value::Array(i), Value::Array(k)) => i
            .iter()
            .zip(k)
            .enumerate()
            .find_map(|(n, (a, b))| first_dropped(a, b, &format!("{path}[{n}]"))),
        _ => None,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// A short description of a value's type for messages ("a string", "a list").
pub fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Route {
        destination: Option<String>,
        weight: Option<i32>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Http {
        route: Vec<Route>,
    }

    #[test]
    fn unknown_field_has_path_and_suggestion() {
        let e =
            from_value::<Vec<Http>>(serde_json::json!([{"route": []}, {"route": [{"weigth": 1}]}]))
                .unwrap_err();
        assert_eq!(e.field, "[1].route[0].weigth");
        assert_eq!(
            e.message,
            "unknown field \"weigth\"; did you mean \"weight\"?"
        );
    }

    #[test]
    fn wrong_type_has_path() {
        let e = from_value::<Http>(serde_json::json!({"route": [{"weight": "x"}]})).unwrap_err();
        assert_eq!(e.field, "route[0].weight");
        assert_eq!(e.message, "invalid type: string \"x\", expected an integer");
    }
}
