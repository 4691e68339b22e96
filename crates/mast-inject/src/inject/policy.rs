//! Whether a pod gets a sidecar, as Istio decides it: the webhook's namespace selectors
//! (`istio-injection=enabled|disabled`, `istio.io/rev`), then the pod's
//! `sidecar.istio.io/inject` label (which wins) or annotation against the default policy,
//! and the pods never injected (host network, `kube-system`, already injected).

use std::fmt;

use serde_json::{Map, Value};

use super::{INJECT_ANNOTATION, InjectConfig, InjectPolicy, PROXY_CONTAINER, STATUS_ANNOTATION};

/// Namespaces Istio never injects.
pub const IGNORED_NAMESPACES: &[&str] = &["kube-system", "kube-public"];

/// The namespace label turning injection on or off.
pub const NAMESPACE_LABEL: &str = "istio-injection";
/// The namespace (and pod) label naming a control plane revision.
pub const REVISION_LABEL: &str = "istio.io/rev";

/// The outcome of the injection policy for one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Inject.
    Inject,
    /// The pod already has `sidecar.istio.io/status` or an `istio-proxy` container.
    AlreadyInjected,
    /// `spec.hostNetwork: true`: capture would redirect the node's traffic.
    HostNetwork,
    /// The pod is in `kube-system` or `kube-public`.
    IgnoredNamespace(String),
    /// `sidecar.istio.io/inject` says no (or a value Istio does not read as yes).
    PodOptOut(String),
    /// The default policy is `disabled` and the pod did not opt in.
    PolicyDisabled,
    /// The namespace is labelled `istio-injection=disabled`.
    NamespaceDisabled,
    /// The namespace has neither `istio-injection=enabled` nor `istio.io/rev`.
    NamespaceNotEnabled,
    /// The namespace (or pod) names another revision.
    OtherRevision(String),
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Inject => f.write_str("injected"),
            Decision::AlreadyInjected => f.write_str("skipped: already injected"),
            Decision::HostNetwork => f.write_str("skipped: hostNetwork pods are not injected"),
            Decision::IgnoredNamespace(ns) => {
                write!(f, "skipped: namespace {ns} is never injected")
            }
            Decision::PodOptOut(v) => write!(f, "skipped: {INJECT_ANNOTATION}={v:?}"),
            Decision::PolicyDisabled => write!(
                f,
                "skipped: the injection policy is disabled and the pod does not set {INJECT_ANNOTATION}=true"
            ),
            Decision::NamespaceDisabled => {
                write!(f, "skipped: namespace labelled {NAMESPACE_LABEL}=disabled")
            }
            Decision::NamespaceNotEnabled => write!(
                f,
                "skipped: namespace not labelled {NAMESPACE_LABEL}=enabled or {REVISION_LABEL}"
            ),
            Decision::OtherRevision(r) => {
                write!(f, "skipped: revision {r:?} is not this injector's")
            }
        }
    }
}

/// Decides for the pod template `pod` (with `metadata` and `spec`) in `namespace`.
/// `namespace_labels`: the namespace's labels when known (the webhook); `None` skips the
/// namespace selectors (kube-inject, or a webhook configuration that already applied them).
pub fn decide(
    cfg: &InjectConfig,
    pod: &Map<String, Value>,
    namespace: &str,
    namespace_labels: Option<&Map<String, Value>>,
) -> Decision {
    let meta = pod.get("metadata");
    let annotations = meta
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object);
    let labels = meta
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object);
    let spec = pod.get("spec");
    if annotations.is_some_and(|a| a.contains_key(STATUS_ANNOTATION)) || has_proxy(spec) {
        return Decision::AlreadyInjected;
    }
    if spec
        .and_then(|s| s.get("hostNetwork"))
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Decision::HostNetwork;
    }
    if IGNORED_NAMESPACES.contains(&namespace) {
        return Decision::IgnoredNamespace(namespace.to_owned());
    }
    let pod_says = labels
        .and_then(|l| l.get(INJECT_ANNOTATION))
        .or_else(|| annotations.and_then(|a| a.get(INJECT_ANNOTATION)))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some(ns) = namespace_labels
        && let Some(skip) = namespace_selectors(cfg, ns, labels, pod_says)
    {
        return skip;
    }
    match (pod_says.to_ascii_lowercase().as_str(), cfg.policy) {
        ("y" | "yes" | "true" | "on", _) => Decision::Inject,
        ("", InjectPolicy::Enabled) => Decision::Inject,
        ("", InjectPolicy::Disabled) => Decision::PolicyDisabled,
        _ => Decision::PodOptOut(pod_says.to_owned()),
    }
}

/// The MutatingWebhookConfiguration's namespace and object selectors, as Istio installs
/// them: `Some(reason)` when they exclude the pod.
fn namespace_selectors(
    cfg: &InjectConfig,
    ns: &Map<String, Value>,
    pod_labels: Option<&Map<String, Value>>,
    pod_says: &str,
) -> Option<Decision> {
    let ns_label = |k: &str| ns.get(k).and_then(Value::as_str);
    match ns_label(NAMESPACE_LABEL) {
        Some("disabled") => return Some(Decision::NamespaceDisabled),
        Some("enabled") => return None,
        _ => {}
    }
    let rev = ns_label(REVISION_LABEL).or_else(|| {
        pod_labels
            .and_then(|l| l.get(REVISION_LABEL))
            .and_then(Value::as_str)
    });
    match rev {
        Some(r) if r == cfg.revision => None,
        Some(r) => Some(Decision::OtherRevision(r.to_owned())),
        None if pod_says.eq_ignore_ascii_case("true") => None,
        None => Some(Decision::NamespaceNotEnabled),
    }
}

fn has_proxy(spec: Option<&Value>) -> bool {
    let named = |list: &str| {
        spec.and_then(|s| s.get(list))
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.get("name").and_then(Value::as_str) == Some(PROXY_CONTAINER))
            })
    };
    named("containers") || named("initContainers")
}
