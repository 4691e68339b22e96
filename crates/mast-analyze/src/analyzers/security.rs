//! AuthorizationPolicy checks, as Istio's `authz/authorizationpolicies.go` makes them:
//! IST0127 NoMatchingWorkloadsFound when a policy applies to no workload, and IST0101 for
//! `source.namespaces` / `source.notNamespaces` entries that name no namespace.
//!
//! Istio has no such check for PeerAuthentication or RequestAuthentication, and neither
//! does Mast. Departures from Istio: every workload counts (Istio counts only pods already
//! in the mesh, which a folder of YAML cannot show before injection); policies attached by
//! `targetRef(s)` are skipped (they do not select by labels); the namespaces a cluster
//! always has (`default`, `kube-system`, `istio-system` …) count as existing.

use mast_config::Resource;
use mast_config::security::AuthorizationPolicy;
use mast_core::DEFAULT_ROOT_NAMESPACE;

use super::sidecar::selector_string;
use crate::context::{SYSTEM_NAMESPACES, selects};
use crate::messages::{NO_MATCHING_WORKLOADS_FOUND, REFERENCED_RESOURCE_NOT_FOUND, q};
use crate::{Analyzer, Context, Message};

/// The analyzers of this module, in the order they run.
pub(crate) fn analyzers() -> Vec<Box<dyn Analyzer>> {
    vec![Box::new(AuthorizationPoliciesAnalyzer)]
}

/// Checks that each AuthorizationPolicy applies to some workload and names existing
/// source namespaces.
pub struct AuthorizationPoliciesAnalyzer;

impl Analyzer for AuthorizationPoliciesAnalyzer {
    fn name(&self) -> &'static str {
        "auth.AuthorizationPoliciesAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        for r in ctx.of_kind("AuthorizationPolicy") {
            let Some(ap) = r.as_authorization_policy() else {
                continue;
            };
            no_matching_workloads(ctx, r, ap, out);
            namespaces_not_found(ctx, r, ap, out);
        }
    }
}

/// IST0127: a policy in the root namespace with a selector must select a workload
/// somewhere; elsewhere a selector must select one in the policy's namespace, and a
/// policy without one needs some workload in its namespace.
fn no_matching_workloads(
    ctx: &Context<'_>,
    r: &Resource,
    ap: &AuthorizationPolicy,
    out: &mut Vec<Message>,
) {
    if ap.target_ref.is_some() || !ap.target_refs.is_empty() {
        return;
    }
    let ns = r.namespace();
    let selector = ap.selector.as_ref().map(|s| &s.match_labels);
    let found = match selector {
        None if ns == DEFAULT_ROOT_NAMESPACE => true,
        None => ctx.workloads().iter().any(|w| w.namespace == ns),
        Some(sel) if ns == DEFAULT_ROOT_NAMESPACE => {
            ctx.workloads().iter().any(|w| selects(sel, w.labels))
        }
        Some(sel) => ctx.workloads_selected(ns, sel).next().is_some(),
    };
    if found {
        return;
    }
    let (field, labels) = match selector {
        Some(sel) => ("spec.selector", selector_string(sel)),
        None => ("", String::new()),
    };
    out.push(Message::new(
        NO_MATCHING_WORKLOADS_FOUND,
        r,
        field,
        format!("No matching workloads for this resource with the following labels: {labels}"),
    ));
}

/// IST0101 for each source namespace (or negated namespace) that matches no namespace.
fn namespaces_not_found(
    ctx: &Context<'_>,
    r: &Resource,
    ap: &AuthorizationPolicy,
    out: &mut Vec<Message>,
) {
    for (i, rule) in ap.rules.iter().enumerate() {
        for (j, from) in rule.from.iter().flatten().enumerate() {
            let Some(source) = &from.source else { continue };
            for (key, list) in [
                ("namespaces", &source.namespaces),
                ("notNamespaces", &source.not_namespaces),
            ] {
                for (k, pattern) in list.iter().enumerate() {
                    if namespace_exists(ctx, pattern) {
                        continue;
                    }
                    out.push(Message::new(
                        REFERENCED_RESOURCE_NOT_FOUND,
                        r,
                        &format!("spec.rules[{i}].from[{j}].source.{key}[{k}]"),
                        format!("Referenced namespace not found: {}", q(pattern)),
                    ));
                }
            }
        }
    }
}

/// Whether some namespace matches `pattern` (`*`, `prefix*`, `*suffix` or a name).
fn namespace_exists(ctx: &Context<'_>, pattern: &str) -> bool {
    // `namespace_names` holds the namespaces resources live in; add the declared ones.
    let declared = ctx.of_kind("Namespace").map(Resource::name);
    let always = std::iter::once("default").chain(SYSTEM_NAMESPACES.iter().copied());
    ctx.namespace_names()
        .chain(declared)
        .chain(always)
        .any(|ns| namespace_matches(ns, pattern))
}

fn namespace_matches(ns: &str, pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return ns.ends_with(suffix);
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return ns.starts_with(prefix);
    }
    ns.eq_ignore_ascii_case(pattern)
}

#[cfg(test)]
mod tests {
    use super::namespace_matches;
    use crate::testing::{only, run};

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-1\n  namespace: shop\n  labels: {app: web}\nspec:\n  containers: [{name: web, image: x}]\n---\n";

    fn policy(ns: &str, spec: &str) -> String {
        format!(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  namespace: {ns}\nspec:\n{spec}"
        )
    }

    #[test]
    fn selector_without_workload() {
        let yaml = format!(
            "{POD}{}",
            policy(
                "shop",
                "  selector:\n    matchLabels:\n      app: api\n      v: one\n  action: DENY\n"
            )
        );
        let msgs = run(&yaml);
        let found = only(&msgs, "IST0127");
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].to_string(),
            "Warning [IST0127] (AuthorizationPolicy shop/p t.yaml:16) No matching workloads for this resource with the following labels: app=api,v=one"
        );
    }

    #[test]
    fn namespace_wide_policy_without_workloads() {
        let msgs = run(&policy("empty", "  action: ALLOW\n"));
        let found = only(&msgs, "IST0127");
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].text,
            "No matching workloads for this resource with the following labels: "
        );
    }

    #[test]
    fn policies_that_apply_are_clean() {
        let specs = [
            ("shop", "  selector:\n    matchLabels: {app: web}\n"),
            ("shop", "  action: ALLOW\n"),
            ("istio-system", "  selector:\n    matchLabels: {app: web}\n"),
            ("istio-system", "  action: DENY\n  rules: [{}]\n"),
            (
                "empty",
                "  targetRefs:\n  - {kind: Gateway, group: gateway.networking.k8s.io, name: gw}\n",
            ),
        ];
        for (ns, spec) in specs {
            let msgs = run(&format!("{POD}{}", policy(ns, spec)));
            assert!(only(&msgs, "IST0127").is_empty(), "{ns} {spec}: {msgs:?}");
        }
    }

    #[test]
    fn root_selector_needs_a_workload_somewhere() {
        let msgs = run(&format!(
            "{POD}{}",
            policy("istio-system", "  selector:\n    matchLabels: {app: api}\n")
        ));
        assert_eq!(only(&msgs, "IST0127").len(), 1);
    }

    #[test]
    fn unknown_source_namespace() {
        let spec = "  selector:\n    matchLabels: {app: web}\n  rules:\n  - from:\n    - source:\n        namespaces: [shop, \"prod-*\", default]\n        notNamespaces: [staging]\n";
        let msgs = run(&format!("{POD}{}", policy("shop", spec)));
        let found = only(&msgs, "IST0101");
        assert_eq!(found.len(), 2, "{msgs:?}");
        assert_eq!(found[0].text, "Referenced namespace not found: \"prod-*\"");
        assert_eq!(found[0].reference.as_ref().map(|o| o.line), Some(21));
        assert_eq!(found[1].text, "Referenced namespace not found: \"staging\"");
        assert_eq!(found[1].reference.as_ref().map(|o| o.line), Some(22));
    }

    #[test]
    fn known_source_namespaces_are_clean() {
        let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: prod-eu\n  labels: {istio-injection: enabled}\n---\n";
        let spec = "  selector:\n    matchLabels: {app: web}\n  rules:\n  - from:\n    - source:\n        namespaces: [shop, \"prod-*\", \"*\", istio-system]\n";
        let msgs = run(&format!("{ns}{POD}{}", policy("shop", spec)));
        assert!(only(&msgs, "IST0101").is_empty(), "{msgs:?}");
    }

    #[test]
    fn namespace_patterns() {
        assert!(namespace_matches("prod-eu", "prod-*"));
        assert!(namespace_matches("eu-prod", "*-prod"));
        assert!(namespace_matches("Shop", "shop"));
        assert!(!namespace_matches("shop", "shops"));
    }
}
