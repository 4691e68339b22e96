//! Validation of the Gateway API kinds, by the rules of the Gateway API CRDs (OpenAPI
//! bounds and CEL rules) that matter for routing: `GatewayClass` and `Gateway` here, the
//! routes and `ReferenceGrant` in [`routes`], HTTP filters in [`filters`].

mod filters;
mod routes;
mod shared;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_routes;

use std::collections::HashSet;

use crate::gateway_api::{
    FromNamespaces, GatewayClassSpec, GatewaySpec, Listener, ListenerTlsConfig, TlsMode,
};
use crate::resource::Resource;
use crate::validate::Report;

pub use routes::{grpc_route, http_route, reference_grant, tcp_route, tls_route};

/// Validates a `GatewayClass`.
pub fn gateway_class(spec: &GatewayClassSpec, _res: &Resource, r: &mut Report) {
    let c = &spec.controller_name;
    let valid = c
        .split_once('/')
        .is_some_and(|(domain, path)| !domain.is_empty() && !path.is_empty());
    if c.is_empty() {
        r.error("spec.controllerName", "required field is missing");
    } else if !valid || c.len() > 253 {
        r.error(
            "spec.controllerName",
            format!("invalid controllerName {c:?}: must be a domain-prefixed path such as \"example.com/controller\""),
        );
    }
}

/// Validates a Gateway API `Gateway`.
pub fn gateway(spec: &GatewaySpec, _res: &Resource, r: &mut Report) {
    shared::object_name(r, "spec.gatewayClassName", &spec.gateway_class_name);
    if spec.listeners.is_empty() {
        r.error("spec.listeners", "a Gateway needs at least one listener");
    }
    shared::max_items(r, "spec.listeners", spec.listeners.len(), 64);
    let mut names = HashSet::new();
    let mut combos = HashSet::new();
    for (i, l) in spec.listeners.iter().enumerate() {
        let f = format!("spec.listeners[{i}]");
        listener(r, &f, l);
        if !names.insert(l.name.as_str()) {
            r.error(
                format!("{f}.name"),
                "Listener name must be unique within the Gateway",
            );
        }
        if !combos.insert((l.port, l.protocol.as_str(), l.hostname.as_deref())) {
            r.error(
                &f,
                "Combination of port, protocol and hostname must be unique for each listener",
            );
        }
    }
    let mut addresses = HashSet::new();
    for (i, a) in spec.addresses.iter().enumerate() {
        let f = format!("spec.addresses[{i}]");
        let kind = a.r#type.as_deref().unwrap_or("IPAddress");
        if kind == "IPAddress" && a.value.parse::<std::net::IpAddr>().is_err() {
            r.error(format!("{f}.value"), "value must be an IP address");
        }
        if kind == "Hostname" {
            shared::hostname(r, &format!("{f}.value"), &a.value);
        }
        if !addresses.insert((kind, a.value.as_str())) {
            r.error(&f, format!("{kind} values must be unique"));
        }
    }
}

/// Checks one listener at `f`.
fn listener(r: &mut Report, f: &str, l: &Listener) {
    shared::section_name(r, &format!("{f}.name"), &l.name);
    shared::port(r, &format!("{f}.port"), l.port);
    let protocol = l.protocol.as_str();
    if protocol.is_empty() {
        r.error(format!("{f}.protocol"), "required field is missing");
    }
    if let Some(h) = &l.hostname {
        shared::hostname(r, &format!("{f}.hostname"), h);
        if matches!(protocol, "TCP" | "UDP") {
            r.error(
                format!("{f}.hostname"),
                "hostname must not be specified for protocols ['TCP', 'UDP']",
            );
        }
    }
    match (&l.tls, protocol) {
        (Some(_), "HTTP" | "TCP" | "UDP") => r.error(
            format!("{f}.tls"),
            "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']",
        ),
        (None, "HTTPS" | "TLS") => r.error(
            format!("{f}.tls"),
            "tls must be specified for protocols ['HTTPS', 'TLS']",
        ),
        (Some(tls), _) => listener_tls(r, &format!("{f}.tls"), tls, protocol),
        _ => {}
    }
    if let Some(allowed) = &l.allowed_routes {
        shared::max_items(
            r,
            &format!("{f}.allowedRoutes.kinds"),
            allowed.kinds.len(),
            8,
        );
        for (i, k) in allowed.kinds.iter().enumerate() {
            shared::object_name(r, &format!("{f}.allowedRoutes.kinds[{i}].kind"), &k.kind);
        }
        if let Some(ns) = &allowed.namespaces
            && ns.from == Some(FromNamespaces::Selector)
            && ns.selector.is_none()
        {
            r.error(
                format!("{f}.allowedRoutes.namespaces.selector"),
                "selector must be specified when from is Selector",
            );
        }
    }
}

/// Checks a listener's TLS settings at `f`.
fn listener_tls(r: &mut Report, f: &str, tls: &ListenerTlsConfig, protocol: &str) {
    if protocol == "HTTPS" && tls.mode() != TlsMode::Terminate {
        r.error(
            format!("{f}.mode"),
            "tls mode must be Terminate for HTTPS protocol",
        );
    }
    if tls.mode() == TlsMode::Terminate && tls.certificate_refs.is_empty() && tls.options.is_empty()
    {
        r.error(
            format!("{f}.certificateRefs"),
            "certificateRefs or options must be specified when mode is Terminate",
        );
    }
    shared::max_items(
        r,
        &format!("{f}.certificateRefs"),
        tls.certificate_refs.len(),
        64,
    );
    for (i, c) in tls.certificate_refs.iter().enumerate() {
        shared::object_name(r, &format!("{f}.certificateRefs[{i}].name"), &c.name);
    }
}
