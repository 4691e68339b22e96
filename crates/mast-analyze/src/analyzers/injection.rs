//! IST0102 NamespaceNotInjected, IST0123 NamespaceMultipleInjectionLabels and IST0103
//! PodMissingProxy, as Istio's `analyzers/injection` checks them.
//!
//! Namespaces are the declared `Namespace` resources plus, since a folder of YAML stands in
//! for a cluster, the namespaces that workloads live in without a declaration: in a cluster
//! those namespaces exist too, and the seed's complaint (workloads silently left outside the
//! mesh) applies to them just the same.

use std::collections::BTreeSet;

use crate::context::{SYSTEM_NAMESPACES, implied};
use crate::messages::{
    NAMESPACE_MULTIPLE_INJECTION_LABELS, NAMESPACE_NOT_INJECTED, POD_MISSING_PROXY, list,
};
use crate::{Analyzer, Context, Message};

/// The namespace label that turns injection on or off.
pub const INJECTION_LABEL: &str = "istio-injection";
/// The revision label that selects a control plane revision for injection.
pub const REVISION_LABEL: &str = "istio.io/rev";
/// The container name of the sidecar.
pub const PROXY_CONTAINER: &str = "istio-proxy";

/// Checks namespaces for injection labels and pods for their proxy.
pub struct InjectionAnalyzer;

impl Analyzer for InjectionAnalyzer {
    fn name(&self) -> &'static str {
        "injection.Analyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let injected = check_namespaces(ctx, out);
        check_pods(ctx, &injected, out);
    }
}

fn not_injected_text(ns: &str) -> String {
    format!(
        "The namespace is not enabled for Istio injection. Run 'kubectl label namespace {ns} istio-injection=enabled' to enable it, or 'kubectl label namespace {ns} istio-injection=disabled' to explicitly mark it as not needing injection."
    )
}

/// Reports namespaces without injection labels; returns the namespaces with injection on.
fn check_namespaces(ctx: &Context<'_>, out: &mut Vec<Message>) -> BTreeSet<String> {
    let mut injected = BTreeSet::new();
    let mut declared = BTreeSet::new();
    for r in ctx.of_kind("Namespace") {
        let ns = r.name();
        declared.insert(ns.to_owned());
        if SYSTEM_NAMESPACES.contains(&ns) {
            continue;
        }
        let labels = r.labels();
        if labels
            .get("istio.io/dataplane-mode")
            .is_some_and(|m| m == "ambient")
        {
            continue;
        }
        match (labels.get(INJECTION_LABEL), labels.get(REVISION_LABEL)) {
            (Some(_), Some(_)) => out.push(Message::new(
                NAMESPACE_MULTIPLE_INJECTION_LABELS,
                r,
                "metadata.labels",
                format!(
                    "The namespace has more than one type of injection labels {}, which may lead to undefined behavior. Make sure only one injection label exists.",
                    list(&[INJECTION_LABEL, REVISION_LABEL])
                ),
            )),
            (None, None) => out.push(Message::new(NAMESPACE_NOT_INJECTED, r, "", not_injected_text(ns))),
            (Some(v), None) if v == "enabled" => {
                injected.insert(ns.to_owned());
            }
            (None, Some(_)) => {
                injected.insert(ns.to_owned());
            }
            _ => {}
        }
    }
    // LocalWorkloads always run with their sidecar (`mastctl up` starts it), LocalGateways
    // are proxies themselves: no injection.
    let implied_ns: BTreeSet<&str> = ctx
        .workloads()
        .iter()
        .filter(|w| w.resource.as_local_workload().is_none())
        .filter(|w| w.resource.as_local_gateway().is_none())
        .map(|w| w.namespace)
        .filter(|ns| !declared.contains(*ns) && !SYSTEM_NAMESPACES.contains(ns))
        .collect();
    for ns in implied_ns {
        out.push(Message::unplaced(
            NAMESPACE_NOT_INJECTED,
            implied("Namespace", ns),
            not_injected_text(ns),
        ));
    }
    injected
}

/// Reports Pods (not templates: the webhook injects those at creation) in injected
/// namespaces that run without the proxy.
fn check_pods(ctx: &Context<'_>, injected: &BTreeSet<String>, out: &mut Vec<Message>) {
    for w in ctx.workloads().iter().filter(|w| w.resource.kind == "Pod") {
        if !injected.contains(w.namespace) {
            continue;
        }
        let opted_out = w
            .annotations
            .get("sidecar.istio.io/inject")
            .is_some_and(|v| v == "false")
            || w.labels
                .get("sidecar.istio.io/inject")
                .is_some_and(|v| v == "false");
        let Some(spec) = w.spec else { continue };
        if opted_out || spec.host_network == Some(true) {
            continue;
        }
        let has_proxy = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .any(|c| c.name == PROXY_CONTAINER);
        if !has_proxy {
            let name = format!("{}/{}", w.namespace, w.resource.name());
            out.push(Message::new(
                POD_MISSING_PROXY,
                w.resource,
                "",
                format!("The pod {name} is missing the Istio proxy. This can often be resolved by restarting or redeploying the workload."),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{codes, run};

    const NS: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: jicki\n";

    #[test]
    fn namespace_without_label_is_reported() {
        let msgs = run(NS);
        assert_eq!(codes(&msgs), ["IST0102"]);
        assert_eq!(
            msgs[0].to_string(),
            "Warning [IST0102] (Namespace jicki t.yaml:1) The namespace is not enabled for Istio injection. Run 'kubectl label namespace jicki istio-injection=enabled' to enable it, or 'kubectl label namespace jicki istio-injection=disabled' to explicitly mark it as not needing injection."
        );
    }

    #[test]
    fn labelled_namespaces_are_clean() {
        for label in [
            "istio-injection: enabled",
            "istio-injection: disabled",
            "istio.io/rev: canary",
        ] {
            let yaml = format!("{NS}  labels:\n    {label}\n");
            assert!(run(&yaml).is_empty(), "{label}");
        }
    }

    #[test]
    fn both_labels_conflict() {
        let yaml =
            format!("{NS}  labels:\n    istio-injection: enabled\n    istio.io/rev: canary\n");
        assert_eq!(codes(&run(&yaml)), ["IST0123"]);
    }

    #[test]
    fn system_namespaces_are_skipped() {
        assert!(
            run("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kube-system\n").is_empty()
        );
    }

    #[test]
    fn implied_namespace_of_a_workload() {
        let msgs = run(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: shop\nspec:\n  containers: [{name: app, image: x}]\n",
        );
        assert_eq!(codes(&msgs), ["IST0102"]);
        assert_eq!(msgs[0].origin().as_deref(), Some("Namespace shop"));
        assert!(msgs[0].reference.is_none());
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: jicki\nspec:\n  containers:\n  - {name: app, image: x}\n";

    #[test]
    fn pod_missing_proxy() {
        let injected = format!("{NS}  labels:\n    istio-injection: enabled\n---\n{POD}");
        let msgs = run(&injected);
        assert_eq!(codes(&msgs), ["IST0103"]);
        assert!(
            msgs[0]
                .text
                .starts_with("The pod jicki/p is missing the Istio proxy."),
            "{}",
            msgs[0].text
        );
        let with_proxy = format!("{injected}  - {{name: istio-proxy, image: mast-proxy}}\n");
        assert!(run(&with_proxy).is_empty());
        let opted_out = injected.replace(
            "  namespace: jicki\nspec",
            "  namespace: jicki\n  annotations:\n    sidecar.istio.io/inject: \"false\"\nspec",
        );
        assert!(run(&opted_out).is_empty());
        let not_injected = format!("{NS}  labels:\n    istio-injection: disabled\n---\n{POD}");
        assert!(run(&not_injected).is_empty());
    }
}
