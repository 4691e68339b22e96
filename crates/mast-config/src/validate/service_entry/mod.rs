//! Validation of `ServiceEntry`, following Istio's `ValidateServiceEntry`: hosts, addresses,
//! ports, the workload selector and `exportTo` here; the rules that depend on the
//! resolution mode (endpoints, FQDN hosts) in [`resolution`].

mod resolution;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashSet};

use mast_core::{Hostname, is_dns1123_label};

use super::gateway::protocol::Protocol;
use super::workload_entry::addr::ip_or_cidr;
use super::{Report, common};
use crate::networking::ServiceEntry;
use crate::networking::service_entry::{Location, Resolution};
use crate::resource::Resource;

/// Checks a `ServiceEntry`; `res` gives its name, namespace and API version.
pub(crate) fn validate(spec: &ServiceEntry, res: &Resource, r: &mut Report) {
    selector(spec, r);
    hosts(spec, r);
    addresses(spec, r);
    let names = ports(spec, r);
    resolution::validate(spec, &names, r);
    export_to(&spec.export_to, res.namespace(), r);
}

fn selector(spec: &ServiceEntry, r: &mut Report) {
    let Some(sel) = &spec.workload_selector else {
        return;
    };
    common::selector_labels(r, "spec.workloadSelector.labels", &sel.labels);
    if sel.labels.is_empty() {
        r.warn(
            "spec.workloadSelector",
            "service entry: workload selector specified without labels, will be applied to all services in namespace",
        );
    }
    if !spec.endpoints.is_empty() {
        r.error(
            "spec.workloadSelector",
            "only one of workloadSelector or endpoints is allowed in a service entry",
        );
    }
    if spec.location() == Location::MeshExternal {
        r.warn(
            "spec.workloadSelector",
            "workloadSelector applies only to MESH_INTERNAL service entries; set location: MESH_INTERNAL",
        );
    }
}

fn hosts(spec: &ServiceEntry, r: &mut Report) {
    if spec.hosts.is_empty() {
        r.error("spec.hosts", "service entry must have at least one host");
    }
    for (i, h) in spec.hosts.iter().enumerate() {
        let field = format!("spec.hosts[{i}]");
        if h == "*" {
            r.error(
                field,
                "invalid host *: a service entry cannot match every host",
            );
        } else {
            common::host(r, &field, h);
        }
    }
}

fn addresses(spec: &ServiceEntry, r: &mut Report) {
    let mut first_cidr = None;
    for (i, a) in spec.addresses.iter().enumerate() {
        let field = format!("spec.addresses[{i}]");
        if a.contains('/') {
            first_cidr.get_or_insert(field.clone());
        }
        ip_or_cidr(r, &field, a);
    }
    if let Some(field) = first_cidr
        && !matches!(spec.resolution(), Resolution::None | Resolution::Static)
    {
        r.error(
            field,
            "CIDR addresses are allowed only for NONE/STATIC resolution types",
        );
    }
}

/// Checks the ports and returns their names, which endpoints' `ports` must use.
fn ports<'a>(spec: &'a ServiceEntry, r: &mut Report) -> BTreeSet<&'a str> {
    if spec.ports.is_empty() {
        r.warn(
            "spec.ports",
            "service entry has no ports: no traffic will be routed to it",
        );
    }
    let mut names = BTreeSet::new();
    let mut numbers = HashSet::new();
    for (i, p) in spec.ports.iter().enumerate() {
        let f = format!("spec.ports[{i}]");
        let name = p.name.as_deref().unwrap_or("");
        if !names.insert(name) {
            r.error(
                format!("{f}.name"),
                format!("service entry port name {name:?} already defined"),
            );
        } else if !is_dns1123_label(name) {
            r.error(format!("{f}.name"), format!("invalid port name: {name}"));
        }
        let number = p.number.unwrap_or(0);
        if !numbers.insert(number) {
            r.error(
                format!("{f}.number"),
                format!("service entry port {number} already defined"),
            );
        }
        common::port(r, &format!("{f}.number"), number);
        if let Some(target) = p.target_port.filter(|t| *t != 0) {
            common::port(r, &format!("{f}.targetPort"), target);
            if spec.resolution() == Resolution::None {
                r.warn(
                    format!("{f}.targetPort"),
                    "targetPort has no effect when resolution mode is NONE",
                );
            }
        }
        let protocol = p.protocol.as_deref().unwrap_or("");
        if !protocol.is_empty() && Protocol::parse(protocol).is_none() {
            r.error(
                format!("{f}.protocol"),
                format!("unsupported protocol: {protocol}"),
            );
        }
        if spec.addresses.is_empty() && (protocol.is_empty() || protocol == "TCP") {
            r.warn(
                f,
                "addresses are required for ports serving TCP (or unset) protocol when IP auto-allocation is not enabled",
            );
        }
    }
    names
}

/// `exportTo` as [`common::export_to`], plus Istio's rules that need the namespace.
fn export_to(values: &[String], namespace: &str, r: &mut Report) {
    common::export_to(r, "spec.exportTo", values);
    let has = |v: &str| values.iter().any(|x| x == v);
    if has(".") && !namespace.is_empty() && has(namespace) {
        r.error(
            "spec.exportTo",
            format!("duplicate entries in exportTo: . and current namespace {namespace}"),
        );
    }
    if has("*") && !has(".") && values.len() > 1 {
        r.error(
            "spec.exportTo",
            "cannot have both public (*) and non-public exportTo values for a resource",
        );
    }
}

/// Whether `h` is a valid host that is not a fully qualified name (a wildcard, say).
fn valid_but_not_fqdn(h: &str) -> bool {
    Hostname::parse(h).is_ok() && super::workload_entry::addr::fqdn_error(h).is_some()
}
