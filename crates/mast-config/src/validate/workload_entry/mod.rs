//! Validation of `WorkloadEntry`, following Istio's `ValidateWorkloadEntry`; the same rules
//! check a `ServiceEntry`'s inline endpoints (see [`EndpointKind`]).

pub(crate) mod addr;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use mast_core::is_dns1123_label;

use super::{Report, common};
use crate::networking::WorkloadEntry;
use crate::resource::Resource;
use addr::{UNIX_PREFIX, fqdn_error, is_ip, unix_address};

/// Where a workload entry appears, which decides what its address may be and which port
/// names it may use.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EndpointKind<'a> {
    /// A `WorkloadEntry` resource: IP, FQDN or `unix://` address; any port names.
    Workload,
    /// An endpoint of a `STATIC` service entry: IP or `unix://`; the entry's port names.
    Static(&'a BTreeSet<&'a str>),
    /// An endpoint of a `DNS`/`DNS_ROUND_ROBIN` service entry: IP or FQDN; the entry's port names.
    Dns(&'a BTreeSet<&'a str>),
}

impl<'a> EndpointKind<'a> {
    fn service_ports(self) -> Option<&'a BTreeSet<&'a str>> {
        match self {
            EndpointKind::Workload => None,
            EndpointKind::Static(p) | EndpointKind::Dns(p) => Some(p),
        }
    }
}

/// Checks a `WorkloadEntry`; `res` gives its name, namespace and API version.
pub(crate) fn validate(spec: &WorkloadEntry, _res: &Resource, r: &mut Report) {
    check(spec, "spec", EndpointKind::Workload, r);
}

/// Checks one workload entry whose fields live under `prefix` (`spec` or
/// `spec.endpoints[1]`).
pub(crate) fn check(we: &WorkloadEntry, prefix: &str, kind: EndpointKind<'_>, r: &mut Report) {
    let keep_going = match kind {
        EndpointKind::Dns(_) => dns_address(we, prefix, r),
        _ => address(we, prefix, kind, r),
    };
    if !keep_going {
        return;
    }
    ports(we, prefix, kind.service_ports(), r);
    for (k, v) in &we.labels {
        common::label(r, &format!("{prefix}.labels.{k}"), k, v);
    }
    if let Some(w) = we.weight {
        weight(r, &format!("{prefix}.weight"), w);
    }
}

/// The address of a workload or a `STATIC` endpoint. Returns false when nothing more should
/// be checked (no address and no network, as Istio stops there).
fn address(we: &WorkloadEntry, prefix: &str, kind: EndpointKind<'_>, r: &mut Report) -> bool {
    let field = format!("{prefix}.address");
    let addr = we.address();
    if addr.is_empty() {
        match we.network.as_deref().filter(|n| !n.is_empty()) {
            None => {
                r.error(&field, "address is required");
                return false;
            }
            Some(n) => r.warn(&field, format!("address is unset with network {n:?}")),
        }
    }
    if let Some(path) = addr.strip_prefix(UNIX_PREFIX) {
        unix_address(r, &field, path);
        if !we.ports.is_empty() {
            r.error(
                format!("{prefix}.ports"),
                format!("unix endpoint {addr} must not include ports"),
            );
        }
        if kind.service_ports().is_some_and(|p| p.len() != 1) {
            r.error(&field, "exactly 1 service port required for unix endpoints");
        }
    } else if !addr.is_empty() && !is_ip(addr) {
        match kind {
            EndpointKind::Workload if fqdn_error(addr).is_none() => {}
            EndpointKind::Workload => {
                r.error(
                    &field,
                    format!("endpoint address {addr:?} is not a valid FQDN or an IP address"),
                );
            }
            _ => r.error(
                &field,
                format!("endpoint address {addr:?} is not a valid IP address"),
            ),
        }
    }
    true
}

/// The address of a `DNS` endpoint: an IP or a name to resolve.
fn dns_address(we: &WorkloadEntry, prefix: &str, r: &mut Report) -> bool {
    let addr = we.address();
    if !is_ip(addr) && fqdn_error(addr).is_some() {
        r.error(
            format!("{prefix}.address"),
            format!("endpoint address {addr:?} is not a valid FQDN or an IP address"),
        );
    }
    true
}

fn ports(we: &WorkloadEntry, prefix: &str, declared: Option<&BTreeSet<&str>>, r: &mut Report) {
    for (name, number) in &we.ports {
        let field = format!("{prefix}.ports.{name}");
        if declared.is_some_and(|d| !d.contains(name.as_str())) {
            r.error(
                &field,
                format!("endpoint port {name:?} ({number}) is not defined by the service entry"),
            );
        }
        if !is_dns1123_label(name) {
            r.error(&field, format!("invalid port name: {name}"));
        }
        common::port(r, &field, *number);
    }
}

fn weight(r: &mut Report, field: &str, w: i64) {
    if w < 0 {
        r.error(field, format!("weight {w} must not be negative"));
    } else if w > i64::from(u32::MAX) {
        r.error(
            field,
            format!("weight {w} is larger than the maximum {}", u32::MAX),
        );
    }
}
