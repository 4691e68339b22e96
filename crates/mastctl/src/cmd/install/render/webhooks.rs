//! The admission webhooks mastd serves on 15017 (its Service's port 443): the
//! MutatingWebhookConfiguration for sidecar injection (`/inject`) and the
//! ValidatingWebhookConfiguration for Istio's groups (`/validate`). Selectors follow Istio's:
//! the default revision injects namespaces labelled `istio-injection=enabled` (and pods
//! labelled `sidecar.istio.io/inject=true` elsewhere); a revision `R` injects namespaces
//! labelled `istio.io/rev=R`, so workloads move one namespace at a time.

use base64::Engine;
use serde_json::{Value, json};

use super::{MeshCa, labels};
use crate::cmd::install::settings::Settings;

fn client_config(s: &Settings, path: &str, ca: Option<&MeshCa>) -> Value {
    let mut c = json!({
        "service": {"name": s.mastd_name(), "namespace": s.namespace, "path": path, "port": 443},
    });
    if let Some(ca) = ca {
        c["caBundle"] = base64::engine::general_purpose::STANDARD
            .encode(&ca.root_pem)
            .into();
    }
    c
}

fn expr(key: &str, op: &str, values: &[&str]) -> Value {
    if values.is_empty() {
        json!({"key": key, "operator": op})
    } else {
        json!({"key": key, "operator": op, "values": values})
    }
}

fn inject_hook(
    s: &Settings,
    name: &str,
    ns: Vec<Value>,
    obj: Vec<Value>,
    ca: Option<&MeshCa>,
) -> Value {
    json!({
        "name": name,
        "admissionReviewVersions": ["v1"],
        "clientConfig": client_config(s, "/inject", ca),
        "failurePolicy": "Fail",
        "matchPolicy": "Equivalent",
        "reinvocationPolicy": "Never",
        "sideEffects": "None",
        "timeoutSeconds": 10,
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"], "scope": "*"}],
        "namespaceSelector": {"matchExpressions": ns},
        "objectSelector": {"matchExpressions": obj},
    })
}

/// `istio-sidecar-injector[-R]`.
pub fn injection(s: &Settings, ca: Option<&MeshCa>) -> Vec<Value> {
    const INJ: &str = "istio-injection";
    const REV: &str = "istio.io/rev";
    const POD: &str = "sidecar.istio.io/inject";
    let hooks = match &s.revision {
        None => vec![
            inject_hook(
                s,
                "namespace.sidecar-injector.istio.io",
                vec![expr(INJ, "In", &["enabled"])],
                vec![expr(POD, "NotIn", &["false"])],
                ca,
            ),
            inject_hook(
                s,
                "object.sidecar-injector.istio.io",
                vec![
                    expr(INJ, "DoesNotExist", &[]),
                    expr(REV, "DoesNotExist", &[]),
                ],
                vec![expr(POD, "In", &["true"]), expr(REV, "DoesNotExist", &[])],
                ca,
            ),
        ],
        Some(r) => vec![
            inject_hook(
                s,
                "rev.namespace.sidecar-injector.istio.io",
                vec![
                    expr(REV, "In", &[r.as_str()]),
                    expr(INJ, "DoesNotExist", &[]),
                ],
                vec![expr(POD, "NotIn", &["false"])],
                ca,
            ),
            inject_hook(
                s,
                "rev.object.sidecar-injector.istio.io",
                vec![
                    expr(INJ, "DoesNotExist", &[]),
                    expr(REV, "DoesNotExist", &[]),
                ],
                vec![
                    expr(POD, "NotIn", &["false"]),
                    expr(REV, "In", &[r.as_str()]),
                ],
                ca,
            ),
        ],
    };
    vec![json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": format!("istio-sidecar-injector{}", s.suffix()), "labels": labels(s, "sidecar-injector")},
        "webhooks": hooks,
    })]
}

/// `istio-validator[-R]-<namespace>`: CREATE/UPDATE of every networking.istio.io and
/// security.istio.io resource goes to mastd's `/validate` — every revision's validator sees
/// all config (Mast revisions validate alike), so removing one never leaves config
/// unchecked. `failurePolicy: Ignore`, as
/// Istio's chart installs it, so config can still be written while mastd is down.
pub fn validation(s: &Settings, ca: Option<&MeshCa>) -> Vec<Value> {
    vec![json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": format!("istio-validator{}-{}", s.suffix(), s.namespace), "labels": labels(s, "mastd")},
        "webhooks": [{
            "name": "rev.validation.istio.io",
            "admissionReviewVersions": ["v1"],
            "clientConfig": client_config(s, "/validate", ca),
            "failurePolicy": "Ignore",
            "sideEffects": "None",
            "timeoutSeconds": 10,
            "rules": [{
                "apiGroups": ["networking.istio.io", "security.istio.io"],
                "apiVersions": ["*"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["*"],
                "scope": "*",
            }],
        }],
    })]
}
