//! Checks shared by the three `security.istio.io` kinds, worded as Istio's validation
//! words them: how a policy attaches (selector, `targetRef`, `targetRefs`), the
//! `istio.io/dry-run` annotation, and the value lists of authorization rules (IPs and
//! CIDRs, ports, service accounts, empty values, misplaced `*`).

use std::net::IpAddr;

use crate::resource::Resource;
use crate::security::authorization_policy::Action;
use crate::types::{PolicyTargetReference, WorkloadSelector};
use crate::validate::{Report, common};

/// The annotation that runs an AuthorizationPolicy in dry-run mode.
const DRY_RUN: &str = "istio.io/dry-run";

/// Kinds a `targetRef` may name, as (group, kind); the core group is `""`.
const TARGET_KINDS: &[(&str, &str)] = &[
    ("", "Service"),
    ("networking.istio.io", "ServiceEntry"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("gateway.networking.k8s.io", "GatewayClass"),
];

/// `selector`, `targetRef` and `targetRefs`: at most one of them, each well-formed.
pub(crate) fn attachment(
    r: &mut Report,
    selector: Option<&WorkloadSelector>,
    target_ref: Option<&PolicyTargetReference>,
    target_refs: &[PolicyTargetReference],
) {
    let set = usize::from(selector.is_some())
        + usize::from(target_ref.is_some())
        + usize::from(!target_refs.is_empty());
    if set > 1 {
        let field = if target_ref.is_some() {
            "spec.targetRef"
        } else {
            "spec.targetRefs"
        };
        r.error(
            field,
            "only one of selector, targetRef or targetRefs can be set",
        );
    }
    workload_selector(r, selector);
    if let Some(t) = target_ref {
        policy_target(r, "spec.targetRef", t);
    }
    if target_refs.len() > 16 {
        r.error(
            "spec.targetRefs",
            format!(
                "targetRefs may have at most 16 items, found {}",
                target_refs.len()
            ),
        );
    }
    for (i, t) in target_refs.iter().enumerate() {
        policy_target(r, &format!("spec.targetRefs[{i}]"), t);
    }
}

/// A workload selector: valid labels; a selector without labels is a warning.
pub(crate) fn workload_selector(r: &mut Report, selector: Option<&WorkloadSelector>) {
    let Some(sel) = selector else { return };
    if sel.match_labels.is_empty() {
        r.warn(
            "spec.selector",
            "workload selector specified without labels",
        );
    }
    common::selector_labels(r, "spec.selector.matchLabels", &sel.match_labels);
}

fn policy_target(r: &mut Report, field: &str, t: &PolicyTargetReference) {
    if t.name.is_empty() {
        r.error(format!("{field}.name"), "targetRef name must be set");
    }
    if t.namespace.as_deref().is_some_and(|n| !n.is_empty()) {
        r.error(
            format!("{field}.namespace"),
            "targetRef namespace must not be set; cross namespace referencing is not supported",
        );
    }
    if !TARGET_KINDS.contains(&(t.group(), t.kind.as_str())) {
        let allowed: Vec<String> = TARGET_KINDS
            .iter()
            .map(|(g, k)| {
                if g.is_empty() {
                    format!("core/{k}")
                } else {
                    format!("{g}/{k}")
                }
            })
            .collect();
        r.error(
            format!("{field}.kind"),
            format!(
                "targetRef must be to one of {} but was {}/{}",
                allowed.join(", "),
                t.group.as_deref().unwrap_or(""),
                t.kind
            ),
        );
    }
}

/// The `istio.io/dry-run` annotation: only AuthorizationPolicy (`action` is `Some`) with
/// action ALLOW or DENY supports it, and its value must be a boolean.
pub(crate) fn dry_run_annotation(r: &mut Report, res: &Resource, action: Option<Action>) {
    let Some(value) = res.annotations().get(DRY_RUN) else {
        return;
    };
    let field = format!("metadata.annotations.{DRY_RUN}");
    match action {
        None => r.error(field, format!("unsupported annotation {DRY_RUN}, please remove the annotation")),
        Some(Action::Allow | Action::Deny) => {
            let is_bool = matches!(value.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True" | "0" | "f" | "F" | "false" | "FALSE" | "False");
            if !is_bool {
                r.error(field, format!("annotation {DRY_RUN} has invalid value {value:?}: must be true or false"));
            }
        }
        Some(a) => r.error(field, format!("the annotation {DRY_RUN} currently only supports action ALLOW/DENY, found action {a}")),
    }
}

/// No value of the list `name` at `field` may be empty.
pub(crate) fn no_empty(r: &mut Report, field: &str, name: &str, values: &[String]) {
    for (i, v) in values.iter().enumerate() {
        if v.is_empty() {
            r.error(
                format!("{field}[{i}]"),
                format!("empty value not allowed, found in {name}"),
            );
        }
    }
}

/// Every value is an IP address or a CIDR range.
pub(crate) fn ips(r: &mut Report, field: &str, values: &[String]) {
    for (i, v) in values.iter().enumerate() {
        if v.is_empty() {
            continue;
        }
        let f = format!("{field}[{i}]");
        if v.contains('/') {
            if let Err(e) = v.parse::<ipnet::IpNet>() {
                r.error(f, format!("bad CIDR range ({v}): {e}"));
            }
        } else if v.parse::<IpAddr>().is_err() {
            r.error(f, format!("bad IP address ({v})"));
        }
    }
}

/// Every value is a port number 1–65535 written as a string.
pub(crate) fn ports(r: &mut Report, field: &str, values: &[String]) {
    for (i, v) in values.iter().enumerate() {
        if v.is_empty() {
            continue;
        }
        let f = format!("{field}[{i}]");
        match v.parse::<i64>() {
            Ok(n) if v.bytes().all(|b| b.is_ascii_digit()) => common::port(r, &f, n),
            _ => r.error(f, format!("bad port ({v}): must be a number in 1..65535")),
        }
    }
}

/// Service accounts: `name` or `namespace/name`, no wildcard, at most 16 values of at most
/// 320 characters.
pub(crate) fn service_accounts(r: &mut Report, field: &str, name: &str, values: &[String]) {
    if values.len() > 16 {
        r.error(
            field,
            format!("may not have more than 16 values, found {}", values.len()),
        );
    }
    let format_hint = "expected format 'serviceAccount' or 'namespace/serviceAccount'";
    for (i, v) in values.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let problem = if v.is_empty() {
            format!("empty value not allowed, found in {name}")
        } else if v.contains('*') {
            format!("wildcard not allowed, found {v:?} in {name}")
        } else if v.matches('/').count() > 1 {
            format!("{format_hint}, found {v:?} in {name}")
        } else if v.len() > 320 {
            format!("value cannot exceed 320 characters, found {v:?} in {name}")
        } else {
            match v.split_once('/') {
                Some(("", _)) => format!("{format_hint}, found empty namespace {v:?} in {name}"),
                Some((_, "")) => {
                    format!("{format_hint}, found empty serviceAccount {v:?} in {name}")
                }
                _ => continue,
            }
        };
        r.error(f, problem);
    }
}

/// Warns about each value of `values` at `field` with a misplaced `*` (see [`wildcard`]).
pub(crate) fn wildcards(r: &mut Report, field: &str, values: &[String]) {
    for (i, v) in values.iter().enumerate() {
        wildcard(r, &format!("{field}[{i}]"), v);
    }
}

/// Warns about a `*` that Istio will match literally: it is a wildcard only as the whole
/// value, as the first character (suffix match) or as the last (prefix match).
pub(crate) fn wildcard(r: &mut Report, field: &str, v: &str) {
    let stars = v.matches('*').count();
    let placed = v == "*" || stars == 0 || (stars == 1 && (v.starts_with('*') || v.ends_with('*')));
    if !placed {
        r.warn(
            field,
            format!("{v:?}: `*` is a wildcard only as the whole value, a prefix (\"*suffix\") or a suffix (\"prefix*\"); here it matches a literal `*`"),
        );
    }
}
