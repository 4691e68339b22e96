//! Sidecar checks, as Istio's `sidecar/selector.go` and `sidecar/defaultselector.go` make
//! them: IST0101 for a workload selector that selects no workload in the Sidecar's
//! namespace, IST0110 ConflictingSidecarWorkloadSelectors when two Sidecars select the
//! same workload, and IST0111 MultipleSidecarsWithoutWorkloadSelectors when a namespace
//! has more than one Sidecar without a selector. Also owns [`selector_string`], the
//! `k=v,k2=v2` form Istio prints selectors in, which the gateway and security analyzers
//! share.
//!
//! Istio does not check the hosts of egress listeners against the registry, and neither
//! does Mast.

use std::collections::BTreeMap;

use mast_config::Resource;

use crate::messages::{
    CONFLICTING_SIDECAR_WORKLOAD_SELECTORS, MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS,
    REFERENCED_RESOURCE_NOT_FOUND, list, q,
};
use crate::{Analyzer, Context, Message};

/// The analyzers of this module, in the order they run.
pub(crate) fn analyzers() -> Vec<Box<dyn Analyzer>> {
    vec![Box::new(SelectorAnalyzer)]
}

/// A label selector as Kubernetes prints it (`labels.SelectorFromSet(..).String()`):
/// `key=value` pairs sorted by key, joined by commas.
pub(crate) fn selector_string(selector: &BTreeMap<String, String>) -> String {
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The field path of a selector's first label (Istio points its messages there), or of
/// the selector itself when it is empty.
pub(crate) fn first_label_path(base: &str, selector: &BTreeMap<String, String>) -> String {
    match selector.keys().next() {
        Some(k) => format!("{base}.{k}"),
        None => base.to_owned(),
    }
}

/// Checks Sidecar workload selectors: each selects something, no workload is selected
/// twice, and at most one Sidecar per namespace has no selector.
pub struct SelectorAnalyzer;

impl Analyzer for SelectorAnalyzer {
    fn name(&self) -> &'static str {
        "sidecar.SelectorAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        // workload index -> the Sidecars selecting it
        let mut selected: BTreeMap<usize, Vec<&Resource>> = BTreeMap::new();
        // namespace -> its selector-less Sidecars
        let mut defaults: BTreeMap<&str, Vec<&Resource>> = BTreeMap::new();
        for r in ctx.of_kind("Sidecar") {
            let Some(sc) = r.as_sidecar() else { continue };
            let labels = sc
                .workload_selector
                .as_ref()
                .map(|s| &s.labels)
                .filter(|l| !l.is_empty());
            let Some(labels) = labels else {
                defaults.entry(r.namespace()).or_default().push(r);
                continue;
            };
            let mut found = false;
            for (i, w) in ctx.workloads().iter().enumerate() {
                if w.namespace == r.namespace() && crate::context::selects(labels, w.labels) {
                    found = true;
                    selected.entry(i).or_default().push(r);
                }
            }
            if !found {
                let sel = selector_string(labels);
                let field = first_label_path("spec.workloadSelector.labels", labels);
                out.push(Message::new(
                    REFERENCED_RESOURCE_NOT_FOUND,
                    r,
                    &field,
                    format!("Referenced selector not found: {}", q(&sel)),
                ));
            }
        }
        report_conflicts(ctx, &selected, out);
        report_defaults(&defaults, out);
    }
}

fn sorted_names(sidecars: &[&Resource]) -> Vec<String> {
    let mut names: Vec<String> = sidecars.iter().map(|r| r.name().to_owned()).collect();
    names.sort();
    names
}

/// IST0110 for every Sidecar selecting a workload that another Sidecar selects too.
fn report_conflicts(
    ctx: &Context<'_>,
    selected: &BTreeMap<usize, Vec<&Resource>>,
    out: &mut Vec<Message>,
) {
    for (i, sidecars) in selected.iter().filter(|(_, s)| s.len() > 1) {
        let w = &ctx.workloads()[*i];
        let names = list(&sorted_names(sidecars));
        for r in sidecars {
            out.push(Message::new(
                CONFLICTING_SIDECAR_WORKLOAD_SELECTORS,
                r,
                "metadata.name",
                format!(
                    "The Sidecars {names} in namespace {} select the same workload pod {}, which can lead to undefined behavior.",
                    q(w.namespace),
                    q(w.resource.name())
                ),
            ));
        }
    }
}

/// IST0111 for every selector-less Sidecar of a namespace that has more than one.
fn report_defaults(defaults: &BTreeMap<&str, Vec<&Resource>>, out: &mut Vec<Message>) {
    for (ns, sidecars) in defaults.iter().filter(|(_, s)| s.len() > 1) {
        let names = list(&sorted_names(sidecars));
        for r in sidecars {
            out.push(Message::new(
                MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS,
                r,
                "",
                format!("The Sidecars {names} in namespace {} have no workload selector, which can lead to undefined behavior.", q(ns)),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{only, run};

    fn sidecar(name: &str, selector: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n{selector}  egress:\n  - hosts: [\"./*\"]\n---\n"
        )
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-1\n  namespace: shop\n  labels: {app: web, version: v1}\nspec:\n  containers: [{name: web, image: x}]\n---\n";
    const SELECT_WEB: &str = "  workloadSelector:\n    labels:\n      app: web\n";

    #[test]
    fn selector_without_workload() {
        let yaml = format!(
            "{}{POD}",
            sidecar(
                "a",
                "  workloadSelector:\n    labels:\n      app: api\n      tier: back\n"
            )
        );
        let msgs = run(&yaml);
        let found = only(&msgs, "IST0101");
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].text,
            "Referenced selector not found: \"app=api,tier=back\""
        );
        assert_eq!(found[0].reference.as_ref().map(|o| o.line), Some(9));
        assert_eq!(found[0].level(), mast_config::Level::Error);
    }

    #[test]
    fn selector_in_other_namespace_does_not_count() {
        let yaml = format!(
            "{}{}",
            sidecar("a", SELECT_WEB),
            POD.replace("namespace: shop", "namespace: other")
        );
        assert_eq!(only(&run(&yaml), "IST0101").len(), 1);
    }

    #[test]
    fn selector_with_workload_is_clean() {
        let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers: [{name: web, image: x}]\n";
        for workload in [POD, deploy] {
            let msgs = run(&format!("{}{workload}", sidecar("a", SELECT_WEB)));
            assert!(only(&msgs, "IST0101").is_empty(), "{msgs:?}");
            assert!(only(&msgs, "IST0110").is_empty());
        }
    }

    #[test]
    fn two_sidecars_select_one_pod() {
        let yaml = format!(
            "{}{}{POD}",
            sidecar("b", SELECT_WEB),
            sidecar("a", "  workloadSelector:\n    labels:\n      version: v1\n")
        );
        let msgs = run(&yaml);
        let found = only(&msgs, "IST0110");
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0].text,
            "The Sidecars [a b] in namespace \"shop\" select the same workload pod \"web-1\", which can lead to undefined behavior."
        );
        assert_eq!(found[0].reference.as_ref().map(|o| o.line), Some(16));
    }

    #[test]
    fn two_default_sidecars_in_a_namespace() {
        let yaml = format!(
            "{}{}",
            sidecar("b", ""),
            sidecar("a", "  workloadSelector:\n    labels: {}\n")
        );
        let msgs = run(&yaml);
        let found = only(&msgs, "IST0111");
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0].text,
            "The Sidecars [a b] in namespace \"shop\" have no workload selector, which can lead to undefined behavior."
        );
        assert_eq!(
            found[0].to_string(),
            "Error [IST0111] (Sidecar shop/a t.yaml:10) The Sidecars [a b] in namespace \"shop\" have no workload selector, which can lead to undefined behavior."
        );
    }

    #[test]
    fn one_default_sidecar_per_namespace_is_fine() {
        let other = sidecar("b", "").replace("namespace: shop", "namespace: other");
        let msgs = run(&format!(
            "{}{other}{}{POD}",
            sidecar("a", ""),
            sidecar("c", SELECT_WEB)
        ));
        assert!(only(&msgs, "IST0111").is_empty(), "{msgs:?}");
        assert!(only(&msgs, "IST0110").is_empty());
    }
}
