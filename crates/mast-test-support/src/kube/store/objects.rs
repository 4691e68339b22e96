//! What the API server does to an object on a write: the metadata it fills in or keeps
//! (uid, creationTimestamp, generation, managedFields), the status-subresource rules, the
//! checks of kind, name and namespace, and the failures it reports (`Status` bodies).

use serde_json::{Value, json};

use super::super::types::ApiType;
use super::super::util;
use super::Part;

/// A failed request, as the API server reports it (a `Status` with this code and reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// The HTTP status code.
    pub code: u16,
    /// The Status `reason` (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, …).
    pub reason: &'static str,
    /// The human-readable message.
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
        }
    }

    /// The `Status` body.
    pub fn status(&self) -> Value {
        util::status(self.code, self.reason, &self.message)
    }
}

/// The object as read in `version`.
pub fn view(t: &ApiType, version: &str, obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Some(m) = out.as_object_mut() {
        m.insert("apiVersion".into(), t.api_version(version).into());
        m.insert("kind".into(), t.kind.clone().into());
    }
    out
}

/// The new stored value of an object replaced by `new` (see [`Part`]).
pub(super) fn updated(t: &ApiType, old: &Value, new: Value, part: Part, version: &str) -> Value {
    let mut out = match part {
        Part::Status => {
            let mut out = old.clone();
            if let Some(m) = out.as_object_mut() {
                match new.get("status") {
                    Some(s) if !s.is_null() => m.insert("status".into(), s.clone()),
                    _ => m.remove("status"),
                };
            }
            return out;
        }
        Part::Main | Part::Raw => new,
    };
    if part == Part::Main
        && t.status
        && let Some(m) = out.as_object_mut()
    {
        match old.get("status") {
            Some(s) => m.insert("status".into(), s.clone()),
            None => m.remove("status"),
        };
    }
    let generation = old
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let bump = i64::from(strip(old) != strip(&out));
    if let Some(m) = out.as_object_mut() {
        m.insert("apiVersion".into(), t.api_version(version).into());
        m.insert("kind".into(), t.kind.clone().into());
    }
    let meta = meta_mut(&mut out);
    for field in ["uid", "creationTimestamp", "namespace"] {
        match old.pointer(&format!("/metadata/{field}")) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
    meta.insert("generation".into(), (generation + bump).into());
    out
}

/// The object without the parts that do not count for `metadata.generation`.
pub(super) fn strip(obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Some(m) = out.as_object_mut() {
        for k in ["metadata", "status", "apiVersion", "kind"] {
            m.remove(k);
        }
    }
    out
}

pub(super) fn meta_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let meta = &mut obj["metadata"];
    if !meta.is_object() {
        *meta = json!({});
    }
    match meta {
        Value::Object(m) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

/// The object's name, made from `generateName` when it has none.
pub(super) fn object_name(
    obj: &mut Value,
    uids: &mut u64,
    t: &ApiType,
) -> Result<String, ApiError> {
    if let Some(name) = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Ok(name.to_owned());
    }
    let Some(prefix) = obj
        .pointer("/metadata/generateName")
        .and_then(Value::as_str)
    else {
        let msg = format!(
            "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
            t.kind
        );
        return Err(ApiError::new(422, "Invalid", msg));
    };
    *uids += 1;
    let name = format!("{prefix}{:05x}", *uids);
    meta_mut(obj).insert("name".into(), name.clone().into());
    Ok(name)
}

pub(super) fn check_kind(t: &ApiType, obj: &Value) -> Result<(), ApiError> {
    match obj.get("kind").and_then(Value::as_str) {
        Some(k) if k != t.kind => Err(ApiError::new(
            400,
            "BadRequest",
            format!(
                "the object's kind {k} does not match the URL's resource {}",
                t.plural
            ),
        )),
        _ => Ok(()),
    }
}

pub(super) fn check_namespace(t: &ApiType, ns: &str, obj: &Value) -> Result<(), ApiError> {
    let given = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    if t.namespaced && !given.is_empty() && given != ns {
        let msg =
            "the namespace of the provided object does not match the namespace sent on the request";
        return Err(ApiError::new(400, "BadRequest", msg));
    }
    Ok(())
}

pub(super) fn record_manager(obj: &mut Value, manager: &str, api_version: &str) {
    let meta = meta_mut(obj);
    let mut fields: Vec<Value> = meta
        .get("managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    fields.retain(|f| f.get("manager").and_then(Value::as_str) != Some(manager));
    fields.push(json!({
        "manager": manager, "operation": "Apply", "apiVersion": api_version,
        "time": util::now_rfc3339(), "fieldsType": "FieldsV1", "fieldsV1": {},
    }));
    meta.insert("managedFields".into(), fields.into());
}

/// Marks a CRD `Established` and `NamesAccepted`, as the API server does once it serves it.
pub(super) fn crd_established(obj: &mut Value) {
    let now = util::now_rfc3339();
    let cond = |t: &str| json!({"type": t, "status": "True", "reason": t, "message": "", "lastTransitionTime": now});
    obj["status"] = json!({
        "conditions": [cond("NamesAccepted"), cond("Established")],
        "acceptedNames": obj.pointer("/spec/names").cloned().unwrap_or(Value::Null),
        "storedVersions": [obj.pointer("/spec/versions/0/name").cloned().unwrap_or(Value::Null)],
    });
}

pub(super) fn resource_name(t: &ApiType) -> String {
    if t.group.is_empty() {
        t.plural.clone()
    } else {
        format!("{}.{}", t.plural, t.group)
    }
}

pub(super) fn not_found(t: &ApiType, name: &str) -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        format!("{} {name:?} not found", resource_name(t)),
    )
}
