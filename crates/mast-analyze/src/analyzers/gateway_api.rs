//! Gateway API problems, from the status Mast would write on Kubernetes
//! ([`mast_model::gateway_api::convert`]): a condition that is not `True` becomes a
//! message about the object, pointing at the listener or parentRef it concerns. Istio's
//! analyzers have no message for these (istiod reports them only in the objects' status),
//! so they carry Mast's own codes, which Mast keeps in the `MST` range (see
//! docs/analyzers.md): [`GATEWAY_API_NOT_ACCEPTED`] and [`GATEWAY_API_REFS_NOT_RESOLVED`].
//!
//! Both are warnings: Istio serves such configuration (an unresolved backend answers 503,
//! an unattached route is simply not routed), and `mastctl up` keeps running with it while
//! saying why a route is not attached.

use mast_config::gateway_api::ParentReference;
use mast_config::{Level, Resource};
use mast_core::DEFAULT_DOMAIN_SUFFIX;
use mast_model::gateway_api::status::{Condition, ListenerStatus, RouteParentStatus};
use mast_model::gateway_api::{ObjectStatus, StatusBody};
use serde_json::Value;

use crate::{Analyzer, Context, Message, MessageType};

/// A Gateway API object, listener or route parent that is not `Accepted`.
pub const GATEWAY_API_NOT_ACCEPTED: MessageType = MessageType {
    code: "MST0101",
    name: "GatewayAPIResourceNotAccepted",
    level: Level::Warning,
};

/// A Gateway API listener or route whose references do not resolve (`ResolvedRefs` not
/// `True`: a backend Service not found, a reference no ReferenceGrant permits, an
/// unsupported kind, a certificate that cannot be used).
pub const GATEWAY_API_REFS_NOT_RESOLVED: MessageType = MessageType {
    code: "MST0102",
    name: "GatewayAPIReferencesNotResolved",
    level: Level::Warning,
};

/// The Gateway API group.
const GROUP: &str = "gateway.networking.k8s.io";

/// The analyzers of this module, in the order they run.
pub(crate) fn analyzers() -> Vec<Box<dyn Analyzer>> {
    vec![Box::new(StatusAnalyzer)]
}

/// Reports the conditions of Gateway API objects that are not `True`.
pub struct StatusAnalyzer;

impl Analyzer for StatusAnalyzer {
    fn name(&self) -> &'static str {
        "gatewayapi.StatusAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        if !ctx.resources.iter().any(is_gateway_api) {
            return;
        }
        let converted = mast_model::gateway_api::convert(ctx.resources, DEFAULT_DOMAIN_SUFFIX);
        for s in &converted.statuses {
            let Some(r) = ctx.resources.iter().find(|r| is_object(r, s)) else {
                continue;
            };
            match &s.status {
                StatusBody::Gateway {
                    conditions,
                    listeners,
                } => gateway(r, conditions, listeners, out),
                StatusBody::Route { parents } => route(r, parents, out),
            }
        }
    }
}

fn is_gateway_api(r: &Resource) -> bool {
    r.api_version.starts_with(GROUP)
}

fn is_object(r: &Resource, s: &ObjectStatus) -> bool {
    is_gateway_api(r) && r.kind == s.kind && r.namespace() == s.namespace && r.name() == s.name
}

/// The message type for a condition that is not `True` (`None`: not reported, as
/// `Programmed`, which follows from the others).
fn message_type(c: &Condition) -> Option<MessageType> {
    if c.is_true() {
        return None;
    }
    match c.r#type.as_str() {
        "Accepted" => Some(GATEWAY_API_NOT_ACCEPTED),
        "ResolvedRefs" => Some(GATEWAY_API_REFS_NOT_RESOLVED),
        _ => None,
    }
}

fn describe(what: &str, c: &Condition) -> String {
    let mut text = format!("{what}: {}={} ({})", c.r#type, c.status, c.reason);
    if !c.message.is_empty() {
        text.push_str(": ");
        text.push_str(&c.message);
    }
    text
}

fn gateway(
    r: &Resource,
    conditions: &[Condition],
    listeners: &[ListenerStatus],
    out: &mut Vec<Message>,
) {
    for c in conditions {
        if let Some(kind) = message_type(c) {
            out.push(Message::new(kind, r, "", describe(&r.kind, c)));
        }
    }
    let spec = spec_json(r);
    for l in listeners {
        let index = spec["listeners"]
            .as_array()
            .and_then(|ls| ls.iter().position(|x| x["name"] == l.name.as_str()));
        let field = index.map_or(String::new(), |i| format!("spec.listeners[{i}]"));
        for c in &l.conditions {
            if let Some(kind) = message_type(c) {
                let what = format!("listener {:?}", l.name);
                out.push(Message::new(kind, r, &field, describe(&what, c)));
            }
        }
    }
}

fn route(r: &Resource, parents: &[RouteParentStatus], out: &mut Vec<Message>) {
    let spec = spec_json(r);
    for p in parents {
        let field = parent_field(&spec, &p.parent_ref);
        for c in &p.conditions {
            let Some(kind) = message_type(c) else {
                continue;
            };
            if kind == GATEWAY_API_REFS_NOT_RESOLVED {
                // The same for every parent: reported once, at the backendRef it names.
                let field = backend_field(&spec, &c.message);
                let message = Message::new(kind, r, &field, describe("backendRefs", c));
                if !out.contains(&message) {
                    out.push(message);
                }
                continue;
            }
            let what = format!("parent {}", parent_name(r, &p.parent_ref));
            out.push(Message::new(kind, r, &field, describe(&what, c)));
        }
    }
}

/// `Gateway default/gw` (with `sectionName`/`port` when given).
fn parent_name(r: &Resource, p: &ParentReference) -> String {
    let kind = p.kind.as_deref().unwrap_or("Gateway");
    let ns = p.namespace.as_deref().unwrap_or(r.namespace());
    let mut name = format!("{kind} {ns}/{}", p.name);
    if let Some(s) = &p.section_name {
        name.push_str(&format!(" sectionName {s:?}"));
    }
    if let Some(port) = p.port {
        name.push_str(&format!(" port {port}"));
    }
    name
}

/// The spec as JSON (camelCase, as written), `Null` for other kinds.
fn spec_json(r: &Resource) -> Value {
    let value = if let Some(s) = r.as_kube_gateway() {
        serde_json::to_value(s)
    } else if let Some(s) = r.as_http_route() {
        serde_json::to_value(s)
    } else if let Some(s) = r.as_grpc_route() {
        serde_json::to_value(s)
    } else if let Some(s) = r.as_tcp_route() {
        serde_json::to_value(s)
    } else if let Some(s) = r.as_tls_route() {
        serde_json::to_value(s)
    } else {
        return Value::Null;
    };
    value.unwrap_or(Value::Null)
}

fn parent_field(spec: &Value, p: &ParentReference) -> String {
    let Ok(wanted) = serde_json::to_value(p) else {
        return String::new();
    };
    spec["parentRefs"]
        .as_array()
        .and_then(|refs| refs.iter().position(|x| *x == wanted))
        .map_or(String::new(), |i| format!("spec.parentRefs[{i}]"))
}

/// The first backendRef whose name the condition message mentions (`backend(web.default…)`,
/// `backendRef web/default`), else `spec.rules`.
fn backend_field(spec: &Value, message: &str) -> String {
    let rules = spec["rules"].as_array().into_iter().flatten().enumerate();
    for (i, rule) in rules {
        let refs = rule["backendRefs"].as_array().into_iter().flatten();
        for (j, b) in refs.enumerate() {
            let Some(name) = b["name"].as_str() else {
                continue;
            };
            let named = [
                format!("({name}."),
                format!(" {name}/"),
                format!("{name:?}"),
            ];
            if named.iter().any(|n| message.contains(n.as_str())) {
                return format!("spec.rules[{i}].backendRefs[{j}]");
            }
        }
    }
    "spec.rules".into()
}

#[cfg(test)]
mod tests {
    use crate::testing::{codes, only, run};

    const GATEWAY: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: 80, protocol: HTTP}
  - {name: udp, port: 53, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
"#;

    fn with(extra: &str) -> Vec<crate::Message> {
        run(&format!("{GATEWAY}---\n{extra}"))
    }

    #[test]
    fn attached_route_to_an_existing_service_is_clean() {
        let msgs = with(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ok, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
"#,
        );
        let route: Vec<_> = msgs
            .iter()
            .filter(|m| m.origin().is_some_and(|o| o.contains("HTTPRoute")))
            .collect();
        assert!(route.is_empty(), "{route:#?}");
    }

    const LOST: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: lost, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  rules:
  - backendRefs: [{name: web, port: 80}]
  - backendRefs: [{name: nowhere, port: 80}]
"#;

    #[test]
    fn missing_backend_is_reported_at_its_backend_ref() {
        let msgs = with(LOST);
        let found = only(&msgs, "MST0102");
        assert_eq!(found.len(), 1, "{msgs:#?}");
        let m = found[0];
        assert_eq!(m.origin().as_deref(), Some("HTTPRoute default/lost"));
        assert!(
            m.text
                .starts_with("backendRefs: ResolvedRefs=False (BackendNotFound): ")
                && m.text.contains("nowhere.default.svc.cluster.local"),
            "{}",
            m.text
        );
        // At the line of `- backendRefs: [{name: nowhere, …}]`.
        let text = format!("{GATEWAY}---\n{LOST}");
        let wanted = text.lines().position(|l| l.contains("name: nowhere"));
        let line = m.reference.as_ref().map(|o| o.line as usize);
        assert_eq!(line, wanted.map(|i| i + 1), "{m}");
        assert!(
            m.to_string()
                .starts_with("Warning [MST0102] (HTTPRoute default/lost t.yaml:")
        );
    }

    #[test]
    fn route_not_attached_names_the_parent_and_the_reason() {
        let msgs = with(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: stray, namespace: default}
spec:
  parentRefs:
  - {name: gw, sectionName: http}
  - {name: gw, sectionName: nope}
  - {name: ghost}
  rules: [{backendRefs: [{name: web, port: 80}]}]
"#,
        );
        let found = only(&msgs, "MST0101");
        let texts: Vec<&str> = found
            .iter()
            .filter(|m| m.origin().as_deref() == Some("HTTPRoute default/stray"))
            .map(|m| m.text.as_str())
            .collect();
        assert_eq!(texts.len(), 2, "{msgs:#?}");
        assert!(
            texts.iter().any(|t| t.starts_with(
                "parent Gateway default/gw sectionName \"nope\": Accepted=False (NoMatchingParent)"
            )),
            "{texts:#?}"
        );
        assert!(
            texts
                .iter()
                .any(|t| t.contains("Gateway default/ghost") && t.contains("NoMatchingParent")),
            "{texts:#?}"
        );
    }

    #[test]
    fn invalid_listener_is_reported_at_the_listener() {
        let msgs = with("apiVersion: v1\nkind: Namespace\nmetadata: {name: default}\n");
        let found: Vec<_> = only(&msgs, "MST0101")
            .into_iter()
            .filter(|m| m.origin().as_deref() == Some("Gateway default/gw"))
            .collect();
        assert_eq!(found.len(), 1, "{msgs:#?}");
        assert!(
            found[0]
                .text
                .starts_with("listener \"udp\": Accepted=False"),
            "{}",
            found[0].text
        );
        assert!(!codes(&msgs).contains(&"IST0106"), "{msgs:#?}");
    }
}
