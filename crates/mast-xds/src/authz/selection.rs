//! Which AuthorizationPolicies and RequestAuthentications apply to a proxy (Istio's
//! `AuthorizationPolicies.ListAuthorizationPolicies` and the JWT policy lookup).
//!
//! A policy applies when it is in the root namespace (mesh-wide) or in the proxy's
//! namespace, and its `selector.matchLabels` (absent or empty: every workload) are all among
//! the proxy's labels. Policies with `targetRef(s)` attach to gateways (and waypoints), not to
//! sidecars: a gateway proxy takes those naming `kind: Gateway` with its
//! `gateway.networking.k8s.io/gateway-name` label, in the policy's namespace. Root namespace
//! policies come first, then the proxy's namespace's, each by name (Istio orders by creation
//! time, which a snapshot does not have).

use mast_config::security::authorization_policy::Action;
use mast_config::security::{AuthorizationPolicy, RequestAuthentication};
use mast_config::types::{PolicyTargetReference, WorkloadSelector};
use mast_model::{Config, MeshSnapshot, NodeType, ProxyNode};

/// The label naming a Gateway API gateway's deployment.
const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// The AuthorizationPolicies that apply to one proxy, by action.
#[derive(Debug, Default)]
pub struct Selected<'a> {
    /// CUSTOM policies (external authorization).
    pub custom: Vec<&'a Config<AuthorizationPolicy>>,
    /// DENY policies.
    pub deny: Vec<&'a Config<AuthorizationPolicy>>,
    /// ALLOW policies.
    pub allow: Vec<&'a Config<AuthorizationPolicy>>,
    /// AUDIT policies.
    pub audit: Vec<&'a Config<AuthorizationPolicy>>,
    /// DENY policies in dry-run (`istio.io/dry-run: "true"`): shadow rules only.
    pub dry_deny: Vec<&'a Config<AuthorizationPolicy>>,
    /// ALLOW policies in dry-run: shadow rules only.
    pub dry_allow: Vec<&'a Config<AuthorizationPolicy>>,
}

impl Selected<'_> {
    /// No policy applies.
    pub fn is_empty(&self) -> bool {
        self.custom.is_empty()
            && self.deny.is_empty()
            && self.allow.is_empty()
            && self.audit.is_empty()
            && self.dry_deny.is_empty()
            && self.dry_allow.is_empty()
    }
}

fn selector_matches(selector: Option<&WorkloadSelector>, proxy: &ProxyNode) -> bool {
    selector.is_none_or(|s| {
        s.match_labels
            .iter()
            .all(|(k, v)| proxy.labels.get(k) == Some(v))
    })
}

fn target_matches(ns: &str, refs: &[&PolicyTargetReference], proxy: &ProxyNode) -> bool {
    if proxy.node_type != NodeType::Router {
        return false;
    }
    let Some(gateway) = proxy.labels.get(GATEWAY_NAME_LABEL) else {
        return false;
    };
    refs.iter().any(|r| {
        r.kind == "Gateway"
            && &r.name == gateway
            && r.namespace.as_deref().is_none_or(|n| n == ns)
            && proxy.namespace == ns
    })
}

/// Whether a policy of namespace `ns` with these selection fields applies to `proxy`.
fn applies(
    root_ns: &str,
    ns: &str,
    selector: Option<&WorkloadSelector>,
    refs: &[&PolicyTargetReference],
    proxy: &ProxyNode,
) -> bool {
    if ns != root_ns && ns != proxy.namespace {
        return false;
    }
    if !refs.is_empty() {
        return target_matches(ns, refs, proxy);
    }
    selector_matches(selector, proxy)
}

/// The namespaces to look in, in order: the root namespace, then the proxy's.
fn in_lookup_order<'a, T>(
    items: &'a [Config<T>],
    root_ns: &str,
    proxy_ns: &str,
) -> Vec<&'a Config<T>> {
    let root = items.iter().filter(|c| c.namespace == root_ns);
    let own = items
        .iter()
        .filter(|c| c.namespace == proxy_ns && proxy_ns != root_ns);
    root.chain(own).collect()
}

fn refs<'a>(
    one: Option<&'a PolicyTargetReference>,
    many: &'a [PolicyTargetReference],
) -> Vec<&'a PolicyTargetReference> {
    one.into_iter().chain(many).collect()
}

/// The AuthorizationPolicies that apply to `proxy`, grouped by action.
pub fn authorization_policies<'a>(snapshot: &'a MeshSnapshot, proxy: &ProxyNode) -> Selected<'a> {
    let root = snapshot.options.root_namespace.as_str();
    let mut out = Selected::default();
    for c in in_lookup_order(snapshot.authorization_policies(), root, &proxy.namespace) {
        let spec = &c.spec;
        let r = refs(spec.target_ref.as_ref(), &spec.target_refs);
        if !applies(root, &c.namespace, spec.selector.as_ref(), &r, proxy) {
            continue;
        }
        let dry = snapshot.is_dry_run(c);
        match spec.action() {
            Action::Allow if dry => out.dry_allow.push(c),
            Action::Deny if dry => out.dry_deny.push(c),
            Action::Allow => out.allow.push(c),
            Action::Deny => out.deny.push(c),
            Action::Audit => out.audit.push(c),
            Action::Custom => out.custom.push(c),
        }
    }
    out
}

/// The RequestAuthentications that apply to `proxy`.
pub fn request_authentications<'a>(
    snapshot: &'a MeshSnapshot,
    proxy: &ProxyNode,
) -> Vec<&'a Config<RequestAuthentication>> {
    let root = snapshot.options.root_namespace.as_str();
    in_lookup_order(snapshot.request_authentications(), root, &proxy.namespace)
        .into_iter()
        .filter(|c| {
            let spec = &c.spec;
            let r = refs(spec.target_ref.as_ref(), &spec.target_refs);
            applies(root, &c.namespace, spec.selector.as_ref(), &r, proxy)
        })
        .collect()
}
