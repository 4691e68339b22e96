//! Validation of `Gateway`, following Istio's `ValidateGateway`: the gateway's name, its
//! selector, each server's hosts, port, bind address and TLS settings ([`tls`]), and port
//! names unique across servers.

pub(crate) mod protocol;
#[cfg(test)]
mod tests;
pub(crate) mod tls;

use std::collections::HashSet;

use mast_core::is_dns1123_label;

use super::workload_entry::addr::{UNIX_PREFIX, ip_address, unix_address};
use super::{Report, common};
use crate::networking::Gateway;
use crate::networking::gateway::{Port, Server, ServerTlsMode, ServerTlsSettings};
use crate::resource::Resource;
use protocol::Protocol;

/// Checks a `Gateway`; `res` gives its name, namespace and API version.
pub(crate) fn validate(spec: &Gateway, res: &Resource, r: &mut Report) {
    if !is_dns1123_label(res.name()) {
        r.error(
            "metadata.name",
            format!("invalid gateway name: {:?}", res.name()),
        );
    }
    common::selector_labels(r, "spec.selector", &spec.selector);
    if spec.servers.is_empty() {
        r.error("spec.servers", "gateway must have at least one server");
    }
    for (i, s) in spec.servers.iter().enumerate() {
        server(s, &format!("spec.servers[{i}]"), r);
    }
    across_servers(&spec.servers, r);
}

fn server(s: &Server, f: &str, r: &mut Report) {
    hosts(&s.hosts, f, r);
    let bind = s.bind.as_deref().unwrap_or("");
    let checked = port(s.port.as_ref(), bind, f, r);
    bind_address(s.port.as_ref(), bind, f, r);
    if let Some(t) = &s.tls {
        tls::validate(t, &format!("{f}.tls"), r);
    }
    if let Some(p) = checked {
        tls_fits_protocol(s.tls.as_ref(), p, f, r);
    }
}

/// Hosts are `dnsName` or `namespace/dnsName`; the namespace is `*`, `.` or a name (`~`
/// is only for gateways generated from the Kubernetes Gateway API).
fn hosts(hosts: &[String], f: &str, r: &mut Report) {
    if hosts.is_empty() {
        r.error(
            format!("{f}.hosts"),
            "server config must contain at least one host",
        );
    }
    for (j, h) in hosts.iter().enumerate() {
        let hf = format!("{f}.hosts[{j}]");
        match h.split_once('/') {
            Some(("~", _)) => r.error(
                &hf,
                format!("invalid namespace value \"~\" in gateway host {h:?}"),
            ),
            Some(_) => common::namespaced_host(r, &hf, h),
            None => common::host(r, &hf, h),
        }
    }
}

/// Checks the port; returns its protocol when the port has no error.
fn port(port: Option<&Port>, bind: &str, f: &str, r: &mut Report) -> Option<Protocol> {
    let Some(port) = port else {
        r.error(format!("{f}.port"), "port is required");
        return None;
    };
    let before = r.errors.len();
    let raw = port.protocol.as_deref().unwrap_or("");
    let protocol = Protocol::parse(raw);
    if protocol.is_none() {
        r.error(
            format!("{f}.port.protocol"),
            format!(
                "invalid protocol {raw:?}, supported protocols are HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP, TLS"
            ),
        );
    }
    let number = port.number.unwrap_or(0);
    if number > 0 || !bind.starts_with(UNIX_PREFIX) {
        common::port(r, &format!("{f}.port.number"), number);
    }
    if port.target_port.is_some_and(|t| t > 0) {
        r.error(
            format!("{f}.port.targetPort"),
            "targetPort has no impact on Gateways",
        );
    }
    if port.name.as_deref().unwrap_or("").is_empty() {
        r.error(format!("{f}.port.name"), "port name must be set");
    }
    protocol.filter(|_| r.errors.len() == before)
}

/// `bind` is an IP, or `unix://path` with port number 0.
fn bind_address(port: Option<&Port>, bind: &str, f: &str, r: &mut Report) {
    if let Some(path) = bind.strip_prefix(UNIX_PREFIX) {
        unix_address(r, &format!("{f}.bind"), path);
        if let Some(n) = port.and_then(|p| p.number).filter(|n| *n != 0) {
            r.error(
                format!("{f}.port.number"),
                format!("port number must be 0 for unix domain socket: {n}"),
            );
        }
    } else if !bind.is_empty() {
        ip_address(r, &format!("{f}.bind"), bind);
    }
}

/// HTTPS/TLS servers need TLS settings; plain HTTP servers may only carry a passthrough
/// block (for `httpsRedirect`); other protocols none.
fn tls_fits_protocol(t: Option<&ServerTlsSettings>, p: Protocol, f: &str, r: &mut Report) {
    let field = format!("{f}.tls");
    match t {
        None if p.is_tls() => r.error(
            field,
            "server must have TLS settings for HTTPS/TLS protocols",
        ),
        Some(t) if !p.is_tls() && p.is_http() => {
            let passthrough = matches!(
                t.mode(),
                ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
            );
            if !passthrough
                || set(&t.ca_certificates)
                || set(&t.private_key)
                || set(&t.server_certificate)
            {
                r.error(
                    field,
                    "server cannot have TLS settings for plain text HTTP ports",
                );
            }
        }
        Some(_) if !p.is_tls() => r.error(
            field,
            "server cannot have TLS settings for non HTTPS/TLS ports",
        ),
        _ => {}
    }
}

/// Port names are unique across servers; `httpsRedirect` belongs on HTTP servers.
fn across_servers(servers: &[Server], r: &mut Report) {
    let mut names = HashSet::new();
    for (i, s) in servers.iter().enumerate() {
        let Some(port) = &s.port else { continue };
        let name = port.name.as_deref().unwrap_or("");
        if !name.is_empty() && !names.insert(name) {
            r.error(
                format!("spec.servers[{i}].port.name"),
                format!("port names in servers must be unique: duplicate name {name}"),
            );
        }
        let http = port
            .protocol
            .as_deref()
            .and_then(Protocol::parse)
            .is_some_and(Protocol::is_http);
        if !http
            && s.tls
                .as_ref()
                .is_some_and(|t| t.https_redirect == Some(true))
        {
            r.warn(
                format!("spec.servers[{i}].tls.httpsRedirect"),
                "tls.httpsRedirect should only be used with http servers",
            );
        }
    }
}

/// Whether an optional string field is set to something non-empty.
pub(super) fn set(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|s| !s.is_empty())
}
