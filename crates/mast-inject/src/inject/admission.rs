//! AdmissionReview v1 handlers for mastd's webhooks (pure: request JSON → response JSON).
//!
//! - [`inject`] (`/inject`, mutating): a Pod CREATE gets the sidecar as a base64 RFC 6902
//!   JSONPatch (`patchType: JSONPatch`); pods the policy skips are allowed unchanged; a pod
//!   with a bad injection annotation is denied with the annotation named.
//! - [`validate`] (`/validate`, validating): an Istio resource is decoded and validated with
//!   `mast_config` as `mastctl validate` does; errors deny it with `status.message` naming the
//!   resource and field (`configuration is invalid: …`), warnings go to `warnings`.

use base64::Engine as _;
use mast_config::{Diagnostic, Level, LoadOptions};
use serde_json::{Map, Value, json};

use super::{Decision, InjectConfig, Owner, patch, policy, template};

/// The AdmissionReview API version answered.
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// Why a request body is not an AdmissionReview (the server answers HTTP 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdmissionError {
    /// The body is not JSON.
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    /// A required field is missing or has the wrong type.
    #[error("not an AdmissionReview: {0}")]
    NotAReview(String),
}

/// The fields of `request` the handlers read.
struct Request<'a> {
    uid: &'a str,
    namespace: &'a str,
    operation: &'a str,
    object: Option<&'a Value>,
}

fn parse(body: &[u8]) -> Result<Value, AdmissionError> {
    serde_json::from_slice(body).map_err(|e| AdmissionError::NotJson(e.to_string()))
}

fn request(review: &Value) -> Result<Request<'_>, AdmissionError> {
    let missing = |f: &str| AdmissionError::NotAReview(format!("no {f}"));
    if review.get("kind").and_then(Value::as_str) != Some("AdmissionReview") {
        return Err(missing("kind: AdmissionReview"));
    }
    let req = review.get("request").ok_or_else(|| missing("request"))?;
    let s = |k: &str| req.get(k).and_then(Value::as_str);
    Ok(Request {
        uid: s("uid").ok_or_else(|| missing("request.uid"))?,
        namespace: s("namespace").unwrap_or_default(),
        operation: s("operation").unwrap_or_default(),
        object: req.get("object").filter(|o| o.is_object()),
    })
}

/// Wraps `response` (which gets `uid`) in an AdmissionReview, with the request's apiVersion.
fn review(uid: &str, mut response: Map<String, Value>) -> Value {
    response.insert("uid".into(), json!(uid));
    json!({ "apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response })
}

fn allowed() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("allowed".into(), json!(true));
    m
}

fn denied(code: u16, message: String) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("allowed".into(), json!(false));
    m.insert("status".into(), json!({ "code": code, "message": message }));
    m
}

/// The mutating webhook: injects a Pod in a CREATE request. `namespace_labels`: the pod's
/// namespace labels when the caller knows them (else the webhook configuration's namespace
/// selector is trusted).
pub fn inject(
    body: &[u8],
    cfg: &InjectConfig,
    namespace_labels: Option<&Map<String, Value>>,
) -> Result<Value, AdmissionError> {
    let review_value = parse(body)?;
    let req = request(&review_value)?;
    let Some(Value::Object(pod)) = req.object.cloned() else {
        return Ok(review(req.uid, allowed()));
    };
    if req.operation != "CREATE" || pod.get("kind").and_then(Value::as_str) != Some("Pod") {
        return Ok(review(req.uid, allowed()));
    }
    let owner = pod_owner(&pod, req.namespace);
    let decision = policy::decide(cfg, &pod, &owner.namespace, namespace_labels);
    if decision != Decision::Inject {
        tracing::debug!(pod = %owner.display(), %decision, "not injecting");
        return Ok(review(req.uid, allowed()));
    }
    let mut injected = pod.clone();
    if let Err(e) = template::inject_pod(&mut injected, cfg, &owner) {
        tracing::info!(pod = %owner.display(), "injection refused: {e}");
        return Ok(review(
            req.uid,
            denied(400, format!("injection failed: {e}")),
        ));
    }
    let ops = patch::diff(&Value::Object(pod), &Value::Object(injected));
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(serde_json::to_vec(&ops).unwrap_or_default());
    tracing::info!(pod = %owner.display(), "injected");
    let mut resp = allowed();
    resp.insert("patchType".into(), json!("JSONPatch"));
    resp.insert("patch".into(), json!(encoded));
    Ok(review(req.uid, resp))
}

/// A pod's owner for naming the workload: its Deployment (ReplicaSet owner without the
/// pod-template hash), other controller, `generateName`, or its own name.
fn pod_owner(pod: &Map<String, Value>, namespace: &str) -> Owner {
    let mut owner = Owner::of("Pod", pod);
    if owner.namespace.is_empty() {
        owner.namespace = namespace.to_owned();
    }
    let refs = pod
        .get("metadata")
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array);
    let controller = refs.and_then(|r| {
        r.iter()
            .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
            .or_else(|| r.first())
    });
    if let Some(c) = controller {
        let kind = c.get("kind").and_then(Value::as_str).unwrap_or_default();
        let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
        owner.name = match (kind, name.rsplit_once('-')) {
            ("ReplicaSet", Some((deployment, _))) => deployment.to_owned(),
            _ => name.to_owned(),
        };
    }
    owner
}

/// The validating webhook: validates the Istio resource in a CREATE or UPDATE request.
pub fn validate(body: &[u8]) -> Result<Value, AdmissionError> {
    let review_value = parse(body)?;
    let req = request(&review_value)?;
    let object = match (req.operation, req.object) {
        ("CREATE" | "UPDATE", Some(o)) => o,
        _ => return Ok(review(req.uid, allowed())),
    };
    let text = serde_json::to_string(object).unwrap_or_default();
    let opts = LoadOptions {
        default_namespace: if req.namespace.is_empty() {
            "default".into()
        } else {
            req.namespace.to_owned()
        },
    };
    let loaded = mast_config::load_str(&text, "admission", &opts);
    let mut diags = loaded.diagnostics;
    diags.extend(mast_config::validate::validate_all(&loaded.resources));
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.level == Level::Error)
        .map(message)
        .collect();
    let warnings: Vec<String> = diags
        .iter()
        .filter(|d| d.level == Level::Warning)
        .map(message)
        .collect();
    let mut resp = if errors.is_empty() {
        allowed()
    } else {
        denied(
            400,
            format!("configuration is invalid: {}", errors.join("; ")),
        )
    };
    if !warnings.is_empty() {
        resp.insert("warnings".into(), json!(warnings));
    }
    Ok(review(req.uid, resp))
}

/// A diagnostic without its file:line (the request has none): `VirtualService ns/name:
/// spec.http[0].route: message`.
fn message(d: &Diagnostic) -> String {
    let mut d = d.clone();
    d.origin = None;
    d.to_string()
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
