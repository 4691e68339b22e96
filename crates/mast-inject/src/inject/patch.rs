//! RFC 6902 JSON patches: [`diff`] makes the patch turning one document into another (what
//! the mutating webhook returns), [`apply`] applies `add`, `remove`, `replace` and `test`
//! operations (tests, and anyone checking a webhook answer). Mappings are compared key by
//! key; lists are replaced whole.

use serde_json::{Value, json};

/// Why a patch could not be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatchError {
    /// An operation is malformed (no `op`/`path`, unknown `op`, no `value`).
    #[error("patch operation {index}: {message}")]
    BadOperation {
        /// The operation's index in the patch.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// The path does not lead anywhere in the document.
    #[error("patch operation {index}: path {path:?}: {message}")]
    BadPath {
        /// The operation's index in the patch.
        index: usize,
        /// The JSON pointer.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// The operations turning `from` into `to`.
pub fn diff(from: &Value, to: &Value) -> Vec<Value> {
    let mut ops = Vec::new();
    diff_at("", from, to, &mut ops);
    ops
}

fn diff_at(path: &str, from: &Value, to: &Value, ops: &mut Vec<Value>) {
    if from == to {
        return;
    }
    let (Value::Object(a), Value::Object(b)) = (from, to) else {
        ops.push(json!({ "op": "replace", "path": path, "value": to }));
        return;
    };
    for k in a.keys().filter(|k| !b.contains_key(*k)) {
        ops.push(json!({ "op": "remove", "path": format!("{path}/{}", escape(k)) }));
    }
    for (k, v) in b {
        let p = format!("{path}/{}", escape(k));
        match a.get(k) {
            None => ops.push(json!({ "op": "add", "path": p, "value": v })),
            Some(old) => diff_at(&p, old, v, ops),
        }
    }
}

/// Escapes one JSON pointer segment (`~` → `~0`, `/` → `~1`).
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// Applies `patch` (a list of operations) to `doc`.
pub fn apply(mut doc: Value, patch: &[Value]) -> Result<Value, PatchError> {
    for (index, op) in patch.iter().enumerate() {
        let bad = |message: &str| PatchError::BadOperation {
            index,
            message: message.to_owned(),
        };
        let name = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no op"))?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no path"))?;
        let value = op.get("value");
        let bad_path = |message: String| PatchError::BadPath {
            index,
            path: path.to_owned(),
            message,
        };
        match name {
            "add" | "replace" => {
                let v = value.ok_or_else(|| bad("no value"))?.clone();
                put(&mut doc, path, v, name == "add").map_err(bad_path)?;
            }
            "remove" => remove(&mut doc, path).map_err(bad_path)?,
            "test" => {
                let v = value.ok_or_else(|| bad("no value"))?;
                if pointer(&doc, path) != Some(v) {
                    return Err(bad_path("test failed".into()));
                }
            }
            other => return Err(bad(&format!("unsupported op {other:?}"))),
        }
    }
    Ok(doc)
}

fn pointer<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    doc.pointer(path)
}

/// The parent container of `path` and the last segment.
fn parent<'a>(doc: &'a mut Value, path: &str) -> Result<(&'a mut Value, String), String> {
    let (head, last) = path
        .rsplit_once('/')
        .ok_or_else(|| "must start with /".to_owned())?;
    let parent = doc
        .pointer_mut(head)
        .ok_or_else(|| format!("{head:?} does not exist"))?;
    Ok((parent, unescape(last)))
}

fn put(doc: &mut Value, path: &str, v: Value, add: bool) -> Result<(), String> {
    if path.is_empty() {
        *doc = v;
        return Ok(());
    }
    let (parent, key) = parent(doc, path)?;
    match parent {
        Value::Object(m) => {
            if !add && !m.contains_key(&key) {
                return Err("replace of a missing key".into());
            }
            m.insert(key, v);
        }
        Value::Array(a) => {
            let i = if key == "-" {
                a.len()
            } else {
                index(&key, a.len() + 1)?
            };
            if add {
                a.insert(i, v);
            } else {
                let slot = a.get_mut(i).ok_or("index out of range")?;
                *slot = v;
            }
        }
        _ => return Err("parent is not a mapping or list".into()),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<(), String> {
    let (parent, key) = parent(doc, path)?;
    let gone = match parent {
        Value::Object(m) => m.remove(&key).is_some(),
        Value::Array(a) => {
            let i = index(&key, a.len())?;
            a.remove(i);
            true
        }
        _ => false,
    };
    if gone {
        Ok(())
    } else {
        Err("nothing to remove".into())
    }
}

fn index(key: &str, limit: usize) -> Result<usize, String> {
    match key.parse::<usize>() {
        Ok(i) if i < limit => Ok(i),
        _ => Err(format!("bad list index {key:?}")),
    }
}
