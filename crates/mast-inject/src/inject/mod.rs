//! Sidecar injection: adds `istio-init` and `istio-proxy` to a workload's pod template, as
//! `istioctl kube-inject` and istiod's mutating webhook do.
//!
//! Owns the transform of one Kubernetes object ([`inject`]: Pod, Deployment, ReplicaSet,
//! DaemonSet, StatefulSet, Job, CronJob, ReplicationController, and `List`s of them; any other
//! kind passes through unchanged), the injection policy ([`policy`]), the sidecar template
//! ([`template`]) with the per-pod annotations ([`annotations`]), application probe rewriting ([`probes`]), RFC 6902 JSON patches ([`patch`])
//! and the AdmissionReview v1 handlers for the mutating and validating webhooks
//! ([`admission`]). Everything here is pure: JSON in, JSON out.

pub mod admission;
pub mod annotations;
pub mod config;
pub mod patch;
pub mod policy;
pub mod probes;
pub mod template;

use serde_json::{Map, Value};

pub use config::{InjectConfig, InjectPolicy, ProxyKind};
pub use policy::Decision;

/// The annotation recording what injection added (and that a pod is already injected).
pub const STATUS_ANNOTATION: &str = "sidecar.istio.io/status";
/// The pod annotation (or label) opting a pod in or out of injection.
pub const INJECT_ANNOTATION: &str = "sidecar.istio.io/inject";
/// The sidecar container's name.
pub const PROXY_CONTAINER: &str = "istio-proxy";
/// The traffic capture init container's name.
pub const INIT_CONTAINER: &str = "istio-init";

/// Why injection failed: the object is malformed where injection must read or write it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InjectError {
    /// A field has the wrong type (for example `spec.template.spec.containers` not a list).
    #[error("{resource}: {field}: {message}")]
    BadField {
        /// `Deployment default/hello`.
        resource: String,
        /// `spec.template.spec.containers`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// An annotation's value cannot be used.
    #[error("{resource}: annotation {annotation}: {message}")]
    BadAnnotation {
        /// `Deployment default/hello`.
        resource: String,
        /// `sidecar.istio.io/proxyCPU`.
        annotation: String,
        /// What is wrong.
        message: String,
    },
    /// The document is not a Kubernetes object (not a mapping, or no `kind`).
    #[error("not a Kubernetes object: {0}")]
    NotAnObject(String),
}

/// What [`inject`] did to one object (a `List` counts as one).
#[derive(Debug, Clone, PartialEq)]
pub struct InjectOutcome {
    /// The object after injection (the input when nothing was injected).
    pub object: Value,
    /// One line per pod template looked at: `Deployment default/hello: injected`, or why not.
    pub notes: Vec<String>,
    /// Whether a sidecar was added anywhere.
    pub changed: bool,
}

/// Where a kind keeps its pod template, as JSON object keys from the root; `None` for kinds
/// that have no pod.
pub fn pod_template_path(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "Pod" => Some(&[]),
        "Deployment"
        | "ReplicaSet"
        | "DaemonSet"
        | "StatefulSet"
        | "Job"
        | "ReplicationController"
        | "DeploymentConfig" => Some(&["spec", "template"]),
        "CronJob" => Some(&["spec", "jobTemplate", "spec", "template"]),
        _ => None,
    }
}

/// Injects the sidecar into one object as `istioctl kube-inject` does: pods are injected
/// unless they opt out (`sidecar.istio.io/inject: "false"` as label or annotation), are
/// already injected, or use the host network; namespace labels are not consulted (use
/// [`inject_decided`] with a [`Decision`] for that). Kinds without a pod template pass
/// through unchanged; `List` items are injected one by one.
pub fn inject(doc: Value, cfg: &InjectConfig) -> Result<InjectOutcome, InjectError> {
    inject_with(doc, cfg, None)
}

/// Like [`inject`], with the namespace's labels when known: `istio-injection` and
/// `istio.io/rev` then take part in the decision as in Istio's webhook.
pub fn inject_with(
    doc: Value,
    cfg: &InjectConfig,
    namespace_labels: Option<&Map<String, Value>>,
) -> Result<InjectOutcome, InjectError> {
    let mut obj = match doc {
        Value::Object(obj) => obj,
        other => {
            return Err(InjectError::NotAnObject(format!(
                "expected a mapping, found {}",
                type_name(&other)
            )));
        }
    };
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if kind.is_empty() {
        return Err(InjectError::NotAnObject("no `kind` field".into()));
    }
    if kind == "List" || (kind.ends_with("List") && obj.get("items").is_some()) {
        return inject_list(obj, cfg, namespace_labels);
    }
    let Some(path) = pod_template_path(&kind) else {
        return Ok(InjectOutcome {
            object: Value::Object(obj),
            notes: Vec::new(),
            changed: false,
        });
    };
    let owner = Owner::of(&kind, &obj);
    let template = descend(&mut obj, path, &owner)?;
    let decision = policy::decide(cfg, template, &owner.namespace, namespace_labels);
    let (changed, note) = match decision {
        Decision::Inject => {
            template::inject_pod(template, cfg, &owner)?;
            (true, "injected".to_owned())
        }
        skip => (false, skip.to_string()),
    };
    Ok(InjectOutcome {
        object: Value::Object(obj),
        notes: vec![format!("{}: {note}", owner.display())],
        changed,
    })
}

/// Injects a pod template regardless of policy (the webhook's path once it has decided).
pub fn inject_decided(
    pod: &mut Map<String, Value>,
    cfg: &InjectConfig,
    owner: &Owner,
) -> Result<(), InjectError> {
    template::inject_pod(pod, cfg, owner)
}

fn inject_list(
    mut obj: Map<String, Value>,
    cfg: &InjectConfig,
    namespace_labels: Option<&Map<String, Value>>,
) -> Result<InjectOutcome, InjectError> {
    let items = match obj.remove("items") {
        Some(Value::Array(items)) => items,
        Some(Value::Null) | None => Vec::new(),
        Some(other) => {
            return Err(InjectError::BadField {
                resource: "List".into(),
                field: "items".into(),
                message: format!("expected a list, found {}", type_name(&other)),
            });
        }
    };
    let mut out = Vec::with_capacity(items.len());
    let (mut notes, mut changed) = (Vec::new(), false);
    for (i, item) in items.into_iter().enumerate() {
        let r = inject_with(item, cfg, namespace_labels).map_err(|e| match e {
            InjectError::NotAnObject(m) => InjectError::NotAnObject(format!("items[{i}]: {m}")),
            other => other,
        })?;
        notes.extend(r.notes);
        changed |= r.changed;
        out.push(r.object);
    }
    obj.insert("items".into(), Value::Array(out));
    Ok(InjectOutcome {
        object: Value::Object(obj),
        notes,
        changed,
    })
}

/// The object that owns a pod template: its kind, namespace and name (for messages and for
/// the workload name written into the sidecar).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Owner {
    /// `Deployment`.
    pub kind: String,
    /// The namespace, empty when the object names none.
    pub namespace: String,
    /// The object's name (or `generateName` without its trailing `-`).
    pub name: String,
    /// Where the pod template is in the object, for field names in errors:
    /// `spec.template.` (empty for a Pod).
    pub prefix: String,
}

impl Owner {
    /// Reads kind, namespace and name from an object's metadata.
    pub fn of(kind: &str, obj: &Map<String, Value>) -> Self {
        let meta = obj.get("metadata");
        let get = |k: &str| {
            meta.and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let mut name = get("name");
        if name.is_empty() {
            name = get("generateName").trim_end_matches('-').to_owned();
        }
        let prefix = pod_template_path(kind)
            .filter(|p| !p.is_empty())
            .map(|p| format!("{}.", p.join(".")))
            .unwrap_or_default();
        Self {
            kind: kind.to_owned(),
            namespace: get("namespace"),
            name,
            prefix,
        }
    }

    /// `Deployment default/hello` (or `Deployment hello` without a namespace).
    pub fn display(&self) -> String {
        if self.namespace.is_empty() {
            format!("{} {}", self.kind, self.name)
        } else {
            format!("{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Walks `path` from `obj`, creating empty mappings where absent.
fn descend<'a>(
    obj: &'a mut Map<String, Value>,
    path: &[&str],
    owner: &Owner,
) -> Result<&'a mut Map<String, Value>, InjectError> {
    let mut cur = obj;
    for (i, key) in path.iter().enumerate() {
        let slot = cur
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if slot.is_null() {
            *slot = Value::Object(Map::new());
        }
        cur = match slot {
            Value::Object(m) => m,
            other => {
                return Err(InjectError::BadField {
                    resource: owner.display(),
                    field: path[..=i].join("."),
                    message: format!("expected a mapping, found {}", type_name(other)),
                });
            }
        };
    }
    Ok(cur)
}

/// `a mapping`, `a list`, … for messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_more;
