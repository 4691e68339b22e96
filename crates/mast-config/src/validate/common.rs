//! Rules shared by several kinds, worded as Istio's validation words them: hosts,
//! `exportTo`, ports, durations, percentages, workload selectors and Kubernetes labels.

use std::collections::BTreeMap;

use mast_core::{Hostname, is_dns1123_label};

use super::Report;
use crate::types::{Duration, Percent};

/// A host in Istio configuration: a short name, an FQDN, `*.suffix` or `*`.
pub fn host(r: &mut Report, field: &str, h: &str) {
    match Hostname::parse(h) {
        Err(e) => r.error(field, format!("invalid host {h:?}: {e}")),
        Ok(parsed) if parsed.is_partial_wildcard() => {
            r.warn(field, format!("partial wildcard {h:?} not allowed"))
        }
        Ok(_) => {}
    }
}

/// A host written `namespace/host` (Sidecar egress, Gateway servers): namespace is
/// `*`, `.`, `~` or a DNS label; the host part as [`host`].
pub fn namespaced_host(r: &mut Report, field: &str, h: &str) {
    match h.split_once('/') {
        None => r.error(
            field,
            format!("host {h:?} must be of the form namespace/dnsName"),
        ),
        Some((ns, name)) => {
            if !matches!(ns, "*" | "." | "~") && !is_dns1123_label(ns) {
                r.error(field, format!("invalid namespace {ns:?} in host {h:?}: must be *, ., ~ or a namespace name"));
            }
            host(r, field, name);
        }
    }
}

/// `exportTo`: `.`, `*`, `~` or namespace names; no duplicates; `.` and `*` not together.
pub fn export_to(r: &mut Report, field: &str, values: &[String]) {
    let mut seen = std::collections::HashSet::new();
    for (i, v) in values.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if !seen.insert(v.as_str()) {
            r.error(&f, format!("duplicate entries in exportTo: {v:?}"));
        } else if !matches!(v.as_str(), "." | "*" | "~") && !is_dns1123_label(v) {
            r.error(
                &f,
                format!("invalid exportTo value {v:?}: must be '.', '*', '~' or a namespace name"),
            );
        }
    }
    if seen.contains("*") && seen.contains(".") {
        r.error(
            field,
            "cannot have both public (*) and private (.) exportTo values specified",
        );
    }
    if seen.contains("~") && seen.len() > 1 {
        r.error(field, "if exportTo is '~', no other values may be given");
    }
}

/// A port number 1–65535.
pub fn port(r: &mut Report, field: &str, n: i64) {
    if !(1..=65535).contains(&n) {
        r.error(
            field,
            format!("port number {n} must be in the range 1..65535"),
        );
    }
}

/// A duration of at least 1ms with millisecond precision (Istio's `ValidateDuration`).
pub fn duration(r: &mut Report, field: &str, d: Duration) {
    let d = d.as_std();
    if d < std::time::Duration::from_millis(1) {
        r.error(field, "duration must be greater than 1ms");
    } else if !d.subsec_nanos().is_multiple_of(1_000_000) {
        r.error(field, "only durations to ms precision are supported");
    }
}

/// A percentage in 0–100.
pub fn percent(r: &mut Report, field: &str, p: Percent) {
    if !p.in_range() {
        r.error(
            field,
            format!("percentage {} is out of range 0..100", p.value),
        );
    }
}

/// Workload selector labels: valid label keys and values, no empty key, no wildcards.
pub fn selector_labels(r: &mut Report, field: &str, labels: &BTreeMap<String, String>) {
    for (k, v) in labels {
        let f = format!("{field}.{k}");
        if k.is_empty() {
            r.error(&f, "empty key is not supported in selector");
        } else if k.contains('*') || v.contains('*') {
            r.error(&f, "wildcard is not supported in selector");
        } else {
            label(r, &f, k, v);
        }
    }
}

/// A Kubernetes label: key `[prefix/]name` (prefix a DNS subdomain, name ≤ 63 characters of
/// `[A-Za-z0-9._-]` starting and ending alphanumeric), value empty or a name.
pub fn label(r: &mut Report, field: &str, key: &str, value: &str) {
    let (prefix, name) = key
        .rsplit_once('/')
        .map_or((None, key), |(p, n)| (Some(p), n));
    let prefix_ok = prefix.is_none_or(|p| p.len() <= 253 && p.split('.').all(is_dns1123_label));
    if !prefix_ok || !is_label_name(name) {
        r.error(field, format!("invalid label key {key:?}: must be [prefix/]name, name up to 63 characters of [A-Za-z0-9._-] starting and ending with an alphanumeric"));
    }
    if !value.is_empty() && !is_label_name(value) {
        r.error(field, format!("invalid label value {value:?}: up to 63 characters of [A-Za-z0-9._-] starting and ending with an alphanumeric"));
    }
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_to_rules() {
        let mut r = Report::default();
        export_to(&mut r, "spec.exportTo", &[".".into(), "*".into()]);
        assert_eq!(r.errors.len(), 1);
        let mut r = Report::default();
        export_to(
            &mut r,
            "spec.exportTo",
            &["Bad_NS".into(), "ns".into(), "ns".into()],
        );
        assert_eq!(
            r.errors
                .iter()
                .map(|e| e.field.as_str())
                .collect::<Vec<_>>(),
            ["spec.exportTo[0]", "spec.exportTo[2]"]
        );
    }

    #[test]
    fn durations() {
        let mut r = Report::default();
        duration(&mut r, "t", Duration::parse("0.5ms").unwrap());
        duration(&mut r, "t", Duration::parse("1.0005s").unwrap());
        duration(&mut r, "t", Duration::parse("1s").unwrap());
        assert_eq!(r.errors.len(), 2);
    }

    #[test]
    fn labels() {
        let mut r = Report::default();
        let mut m = BTreeMap::new();
        m.insert("app".to_owned(), "reviews".to_owned());
        m.insert("bad key".to_owned(), "x".to_owned());
        m.insert("version".to_owned(), "v*".to_owned());
        selector_labels(&mut r, "spec.selector", &m);
        assert_eq!(r.errors.len(), 2, "{:?}", r.errors);
    }
}
