//! Rendering: [`Settings`] (plus, at install time, the mesh CA) to Kubernetes objects as
//! JSON values, grouped by component and sorted as `manifest generate` prints them. Pure: no
//! I/O, deterministic for the same input.

mod crds;
mod gateways;
mod mastd;
mod webhooks;

use serde_json::{Map, Value, json};

use super::settings::Settings;

/// An installable part, as istioctl groups its progress lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    /// CRDs, the namespace, the validation webhook.
    Base,
    /// mastd: ServiceAccount, RBAC, Deployment, Services, injection webhook.
    Pilot,
    /// The ingress gateways.
    IngressGateways,
    /// The egress gateways.
    EgressGateways,
    /// The dashboard Service.
    Dashboard,
}

impl Component {
    /// The `operator.istio.io/component` label value (Istio's names).
    pub fn label(self) -> &'static str {
        match self {
            Component::Base => "Base",
            Component::Pilot => "Pilot",
            Component::IngressGateways => "IngressGateways",
            Component::EgressGateways => "EgressGateways",
            Component::Dashboard => "AddonComponents",
        }
    }

    /// The progress line printed once it is installed and ready.
    pub fn installed(self) -> &'static str {
        match self {
            Component::Base => "Mast core installed",
            Component::Pilot => "Mastd installed",
            Component::IngressGateways => "Ingress gateways installed",
            Component::EgressGateways => "Egress gateways installed",
            Component::Dashboard => "Addons installed",
        }
    }

    /// Its human name, for the install prompt.
    pub fn title(self) -> &'static str {
        match self {
            Component::Base => "Mast core",
            Component::Pilot => "Mastd",
            Component::IngressGateways => "Ingress gateways",
            Component::EgressGateways => "Egress gateways",
            Component::Dashboard => "Dashboard",
        }
    }
}

/// One rendered Kubernetes object.
#[derive(Debug, Clone)]
pub struct Object {
    /// The component it belongs to.
    pub component: Component,
    /// The object (apiVersion, kind, metadata, …).
    pub value: Value,
}

impl Object {
    /// `kind` of the object.
    pub fn kind(&self) -> &str {
        self.value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `metadata.namespace`, if namespaced.
    pub fn namespace(&self) -> Option<&str> {
        self.value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
    }
}

/// The CA material install fills in: the root certificate (webhook `caBundle`,
/// `istio-ca-root-cert`) and the `cacerts` Secret mastd signs with.
#[derive(Debug, Clone)]
pub struct MeshCa {
    /// The signing key (PEM).
    pub key_pem: String,
    /// The signing certificate (PEM).
    pub cert_pem: String,
    /// The root(s) of trust (PEM).
    pub root_pem: String,
}

/// The order kinds are printed and applied in: what others depend on first.
const KIND_ORDER: &[&str] = &[
    "CustomResourceDefinition",
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Secret",
    "ConfigMap",
    "Service",
    "Deployment",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Every object of the installation, sorted by kind (in [`KIND_ORDER`]) then name.
pub fn render(s: &Settings, ca: Option<&MeshCa>) -> Vec<Object> {
    let mut out = Vec::new();
    if s.base {
        out.extend(crds::render(s).into_iter().map(|v| obj(Component::Base, v)));
        out.push(obj(Component::Base, namespace(s)));
    }
    if s.pilot {
        out.extend(
            mastd::render(s, ca)
                .into_iter()
                .map(|v| obj(Component::Pilot, v)),
        );
        out.extend(
            webhooks::injection(s, ca)
                .into_iter()
                .map(|v| obj(Component::Pilot, v)),
        );
        if s.validation {
            out.extend(
                webhooks::validation(s, ca)
                    .into_iter()
                    .map(|v| obj(Component::Pilot, v)),
            );
        }
    }
    for g in &s.gateways {
        let c = if g.ingress {
            Component::IngressGateways
        } else {
            Component::EgressGateways
        };
        out.extend(gateways::render(s, g).into_iter().map(|v| obj(c, v)));
    }
    if s.dashboard && s.pilot {
        out.push(obj(Component::Dashboard, mastd::dashboard_service(s)));
    }
    out.sort_by(|a, b| {
        (rank(a.kind()), a.name(), a.namespace()).cmp(&(rank(b.kind()), b.name(), b.namespace()))
    });
    out
}

/// The components present in `objects`, in install order.
pub fn components(objects: &[Object]) -> Vec<Component> {
    let mut c: Vec<Component> = objects.iter().map(|o| o.component).collect();
    c.sort();
    c.dedup();
    c
}

fn rank(kind: &str) -> usize {
    KIND_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KIND_ORDER.len())
}

fn obj(component: Component, mut value: Value) -> Object {
    if let Some(Value::Object(labels)) = value.pointer_mut("/metadata/labels") {
        labels.insert(
            "operator.istio.io/component".into(),
            component.label().into(),
        );
    }
    Object { component, value }
}

/// Labels every object of a revision carries (`app` set by the caller).
pub(crate) fn labels(s: &Settings, app: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("app".into(), app.into());
    m.insert("istio.io/rev".into(), s.rev_label().into());
    m.insert(
        "install.operator.istio.io/owning-resource".into(),
        "mastctl".into(),
    );
    m
}

/// Labels of shared objects (CRDs, namespace): no revision.
pub(crate) fn base_labels() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "install.operator.istio.io/owning-resource".into(),
        "mastctl".into(),
    );
    m
}

fn namespace(s: &Settings) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": s.namespace, "labels": base_labels()},
    })
}

/// The objects as multi-document YAML (`---` between documents).
pub fn to_yaml(objects: &[Object]) -> anyhow::Result<String> {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&o.value)?);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}
