//! The `ServiceEntry` rules that depend on `resolution`: which endpoints each mode accepts
//! (checked as workload entries), FQDN hosts for DNS without endpoints, `DYNAMIC_DNS`'s
//! wildcard hosts, and hosts that cannot be told apart on plain TCP ports.

use std::collections::BTreeSet;

use super::valid_but_not_fqdn;
use crate::networking::ServiceEntry;
use crate::networking::service_entry::{Location, Resolution};
use crate::validate::Report;
use crate::validate::gateway::protocol::Protocol;
use crate::validate::workload_entry::{EndpointKind, check};

/// Checks what `spec.resolution` requires; `names` are the declared port names.
pub(super) fn validate(spec: &ServiceEntry, names: &BTreeSet<&str>, r: &mut Report) {
    let mode = spec.resolution();
    match mode {
        Resolution::None => none(spec, r),
        Resolution::Static => static_endpoints(spec, names, r),
        Resolution::Dns | Resolution::DnsRoundRobin => dns(spec, mode, names, r),
        Resolution::DynamicDns => dynamic_dns(spec, r),
    }
    if mode != Resolution::None && spec.hosts.len() > 1 {
        let opaque = spec.ports.iter().position(|p| {
            !p.protocol
                .as_deref()
                .and_then(Protocol::parse)
                .is_some_and(|p| p.is_http() || p.is_tls())
        });
        if let Some(i) = opaque {
            r.error(
                format!("spec.ports[{i}].protocol"),
                "multiple hosts provided with non-HTTP, non-TLS ports",
            );
        }
    }
}

fn none(spec: &ServiceEntry, r: &mut Report) {
    if !spec.endpoints.is_empty() {
        r.error(
            "spec.endpoints",
            "no endpoints should be provided for resolution type none",
        );
    }
    if spec.workload_selector.is_some() {
        r.warn(
            "spec.workloadSelector",
            "workloadSelector should not be set when resolution mode is NONE",
        );
    }
}

fn static_endpoints(spec: &ServiceEntry, names: &BTreeSet<&str>, r: &mut Report) {
    if spec.endpoints.is_empty() && spec.workload_selector.is_none() {
        r.warn(
            "spec.endpoints",
            "STATIC resolution without endpoints or workloadSelector: the service has no endpoints",
        );
    }
    for (i, ep) in spec.endpoints.iter().enumerate() {
        check(
            ep,
            &format!("spec.endpoints[{i}]"),
            EndpointKind::Static(names),
            r,
        );
    }
}

fn dns(spec: &ServiceEntry, mode: Resolution, names: &BTreeSet<&str>, r: &mut Report) {
    if spec.endpoints.is_empty() {
        for (i, h) in spec.hosts.iter().enumerate() {
            if valid_but_not_fqdn(h) {
                r.error(
                    format!("spec.hosts[{i}]"),
                    format!(
                        "hosts must be FQDN if no endpoints are provided for resolution mode {}",
                        mode.as_str()
                    ),
                );
            }
        }
    }
    if mode == Resolution::DnsRoundRobin && spec.endpoints.len() > 1 {
        r.error(
            "spec.endpoints",
            "there must only be 0 or 1 endpoint for resolution mode DNS_ROUND_ROBIN",
        );
    }
    for (i, ep) in spec.endpoints.iter().enumerate() {
        check(
            ep,
            &format!("spec.endpoints[{i}]"),
            EndpointKind::Dns(names),
            r,
        );
    }
    if spec.workload_selector.is_some() {
        r.warn(
            "spec.workloadSelector",
            format!(
                "workloadSelector should not be set when resolution mode is {}",
                mode.as_str()
            ),
        );
    }
    let tcp = spec.ports.iter().any(|p| {
        p.protocol
            .as_deref()
            .and_then(Protocol::parse)
            .is_some_and(Protocol::is_tcp)
    });
    if !spec.addresses.is_empty() && tcp && spec.hosts.len() > 1 {
        r.warn(
            "spec.hosts",
            "service entry can not have more than one host specified simultaneously with address and tcp port",
        );
    }
}

/// `DYNAMIC_DNS` resolves each request's Host or SNI: only wildcard hosts, only outside
/// the mesh; endpoints and selectors are ignored.
fn dynamic_dns(spec: &ServiceEntry, r: &mut Report) {
    if spec.location() != Location::MeshExternal {
        r.error(
            "spec.location",
            "DYNAMIC_DNS resolution is only supported for MESH_EXTERNAL service entries",
        );
    }
    for (i, h) in spec.hosts.iter().enumerate() {
        if !h.starts_with("*.") {
            r.error(
                format!("spec.hosts[{i}]"),
                format!("DYNAMIC_DNS resolution must be used with wildcard hosts, not {h:?}"),
            );
        }
    }
    if !spec.endpoints.is_empty() {
        r.warn(
            "spec.endpoints",
            "endpoints are ignored with DYNAMIC_DNS resolution",
        );
    }
    if spec.workload_selector.is_some() {
        r.warn(
            "spec.workloadSelector",
            "workloadSelector should not be set when resolution mode is DYNAMIC_DNS",
        );
    }
}
