//! Validation of `DestinationRule`, following Istio's `ValidateDestinationRule`: the host,
//! subsets (names, labels, policies), `exportTo` and its interplay with the workload
//! selector. Traffic policies are checked in [`traffic_policy`], load balancing in
//! [`load_balancer`]; the connection pool rules are shared with `Sidecar`.

mod load_balancer;
mod traffic_policy;

#[cfg(test)]
mod tests;

use std::collections::HashSet;

use mast_core::is_dns1123_label;

use super::{Report, common};
use crate::networking::DestinationRule;
use crate::networking::destination_rule::{Subset, WorkloadSelector};
use crate::resource::Resource;

pub(crate) use traffic_policy::{connection_pool, fqdn_error};

/// Checks a `DestinationRule`; `res` gives its name, namespace and API version.
pub(crate) fn validate(spec: &DestinationRule, res: &Resource, r: &mut Report) {
    let ns = res.namespace();
    if spec.host.is_empty() {
        r.error(
            "spec.host",
            "host is required: empty domain name not allowed",
        );
    } else {
        common::host(r, "spec.host", &spec.host);
    }
    if let Some(tp) = &spec.traffic_policy {
        traffic_policy::traffic_policy(r, "spec.trafficPolicy", tp, ns);
    }
    subsets(r, &spec.subsets, ns);
    export_to(r, &spec.export_to, ns, spec.workload_selector.is_some());
    if let Some(ws) = &spec.workload_selector {
        workload_selector(r, ws);
    }
}

/// Subset names are required, DNS labels and unique; labels are Kubernetes labels.
fn subsets(r: &mut Report, subsets: &[Subset], ns: &str) {
    let mut seen = HashSet::new();
    for (i, s) in subsets.iter().enumerate() {
        let p = format!("spec.subsets[{i}]");
        let name = format!("{p}.name");
        if s.name.is_empty() {
            r.error(&name, "subset name cannot be empty");
        } else if !is_dns1123_label(&s.name) {
            r.error(
                &name,
                format!("subset name is invalid: {:?} must be a DNS label", s.name),
            );
        } else if !seen.insert(s.name.as_str()) {
            r.error(&name, format!("duplicate subset names: {}", s.name));
        }
        for (k, v) in &s.labels {
            common::label(r, &format!("{p}.labels.{k}"), k, v);
        }
        if let Some(tp) = &s.traffic_policy {
            traffic_policy::traffic_policy(r, &format!("{p}.trafficPolicy"), tp, ns);
        }
    }
}

/// Istio's `validateExportTo` for a destination rule: the shared rules, no `~`, no `.`
/// together with the namespace's own name, no `*` with other entries, and a rule with a
/// workload selector may be exported to its own namespace only.
fn export_to(r: &mut Report, values: &[String], ns: &str, has_selector: bool) {
    const FIELD: &str = "spec.exportTo";
    if values.is_empty() {
        return;
    }
    common::export_to(r, FIELD, values);
    for (i, v) in values.iter().enumerate() {
        if v == "~" {
            r.error(
                format!("{FIELD}[{i}]"),
                "exportTo ~ (none) is not allowed for Istio configuration objects",
            );
        }
    }
    let has = |x: &str| values.iter().any(|v| v == x);
    if has(".") && has(ns) {
        r.error(
            FIELD,
            format!("duplicate entries in exportTo: . and current namespace {ns}"),
        );
    }
    if has("*") && !has(".") && values.len() > 1 {
        r.error(
            FIELD,
            "cannot have both public (*) and non-public exportTo values for a resource",
        );
    }
    if has_selector {
        let keys: HashSet<&str> = values
            .iter()
            .map(|v| if v == "." { ns } else { v.as_str() })
            .collect();
        if !keys.contains(ns) {
            r.error(FIELD, "destination rule with workload selector cannot have exportTo beyond current namespace");
        } else if keys.len() > 1 {
            r.error(
                FIELD,
                "destination rule with workload selector cannot have multiple entries in exportTo",
            );
        }
    }
}

/// Selector labels must be valid and concrete; a selector without labels selects every
/// workload of the namespace, which Istio warns about.
fn workload_selector(r: &mut Report, ws: &WorkloadSelector) {
    common::selector_labels(r, "spec.workloadSelector.matchLabels", &ws.match_labels);
    if ws.match_labels.is_empty() {
        r.warn(
            "spec.workloadSelector",
            "workload selector specified without labels",
        );
    }
}
