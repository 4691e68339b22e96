//! Validation of `Sidecar`, following Istio's `ValidateSidecar`: the workload selector,
//! a non-empty configuration, ingress listeners (in [`ingress`]), the inbound connection
//! pool, egress listeners (catch-all placement, port/bind/capture mode, `namespace/host`
//! hosts) and the outbound traffic policy's egress proxy. Address and protocol rules shared
//! by both listener kinds are in [`ports`].

mod ingress;
mod ports;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use super::destination_rule::{connection_pool, fqdn_error};
use super::{Report, common};
use crate::networking::Sidecar;
use crate::networking::sidecar::{
    CaptureMode, EgressListener, OutboundTrafficMode, OutboundTrafficPolicy, SidecarPort,
};
use crate::resource::Resource;

/// Checks a `Sidecar`; `res` gives its name, namespace and API version.
pub(crate) fn validate(spec: &Sidecar, res: &Resource, r: &mut Report) {
    if let Some(ws) = &spec.workload_selector {
        common::selector_labels(r, "spec.workloadSelector.labels", &ws.labels);
        if ws.labels.is_empty() {
            r.warn(
                "spec.workloadSelector",
                "sidecar: workload selector specified without labels, will be applied to all services in namespace",
            );
        }
    }
    if spec.egress.is_empty()
        && spec.ingress.is_empty()
        && spec.outbound_traffic_policy.is_none()
        && spec.inbound_connection_pool.is_none()
    {
        r.error("spec", "sidecar: empty configuration provided");
        return;
    }
    ingress::listeners(r, &spec.ingress);
    if let Some(cp) = &spec.inbound_connection_pool {
        connection_pool(r, "spec.inboundConnectionPool", cp);
    }
    egress_listeners(r, &spec.egress, res.namespace());
    if let Some(o) = &spec.outbound_traffic_policy {
        outbound_traffic_policy(r, o);
    }
}

/// Egress listeners: one catch-all (no port) at most, and last; ports and Unix sockets
/// unique; each listener names hosts.
fn egress_listeners(r: &mut Report, list: &[EgressListener], ns: &str) {
    let mut ports = HashSet::new();
    let mut sockets = HashSet::new();
    let mut catch_all = false;
    for (i, e) in list.iter().enumerate() {
        let p = format!("spec.egress[{i}]");
        match &e.port {
            None if catch_all => r.error(
                &p,
                "sidecar: egress can have only one listener with empty port",
            ),
            None => {
                catch_all = true;
                if i + 1 != list.len() {
                    r.error(&p, "sidecar: the egress listener with empty port should be the last listener in the list");
                }
            }
            Some(port) => {
                let bind = e.bind.as_deref().unwrap_or("");
                egress_port(r, &p, port, bind, e.capture_mode.unwrap_or_default());
                if port.number() == 0 {
                    if !sockets.insert(bind) {
                        r.error(
                            format!("{p}.bind"),
                            "sidecar: unix domain socket values for listeners must be unique",
                        );
                    }
                } else if !ports.insert(port.number()) {
                    r.error(
                        format!("{p}.port.number"),
                        "sidecar: ports on IP bound listeners must be unique",
                    );
                }
            }
        }
        egress_hosts(r, &p, &e.hosts, ns);
    }
}

/// Port 0 means a Unix domain socket: the bind must be `unix://` and capture DEFAULT/NONE.
fn egress_port(r: &mut Report, p: &str, port: &SidecarPort, bind: &str, capture: CaptureMode) {
    ports::target_port(r, p, port);
    ports::name_and_protocol(r, p, port);
    if port.number() == 0 {
        match bind.strip_prefix(ports::UNIX_PREFIX) {
            None => r.error(
                format!("{p}.bind"),
                "sidecar: ports with 0 value must have a unix domain socket bind address",
            ),
            Some(path) => ports::unix_address(r, &format!("{p}.bind"), path),
        }
        if !matches!(capture, CaptureMode::Default | CaptureMode::None) {
            r.error(
                format!("{p}.captureMode"),
                "sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners",
            );
        }
    } else {
        common::port(r, &format!("{p}.port.number"), port.number());
        ports::bind_ip(r, &format!("{p}.bind"), bind);
    }
}

/// Hosts are `namespace/dnsName` with an FQDN or wildcard; repeats and hosts hidden by a
/// wildcard of the same namespace are warned about, as is `*/*` beside other hosts.
fn egress_hosts(r: &mut Report, p: &str, hosts: &[String], ns: &str) {
    if hosts.is_empty() {
        r.error(
            format!("{p}.hosts"),
            "sidecar: egress listener must contain at least one host",
        );
        return;
    }
    let mut by_ns: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (j, h) in hosts.iter().enumerate() {
        let f = format!("{p}.hosts[{j}]");
        if let Some((host_ns, name)) = h.split_once('/') {
            let seen = by_ns
                .entry(if host_ns == "." { ns } else { host_ns })
                .or_default();
            let hidden = if name == "*" {
                !seen.is_empty()
            } else {
                seen.contains(name) || seen.contains("*")
            };
            if hidden {
                r.warn(&f, format!("duplicated egress host: {h}"));
            }
            seen.insert(name);
            if !name.is_empty() && name != "*" && !name.contains('.') {
                r.error(
                    &f,
                    format!("invalid host {h:?}: short names (non FQDN) are not allowed"),
                );
            }
        }
        common::namespaced_host(r, &f, h);
        partial_wildcard(r, &f, h);
    }
    if by_ns.get("*").is_some_and(|s| s.contains("*")) && by_ns.len() != 1 {
        r.warn(
            format!("{p}.hosts"),
            "`*/*` host select all resources, no other hosts can be added",
        );
    }
}

/// Istio accepts partial wildcards (`*foo.com`) in most hosts with a warning, but not in
/// sidecar egress hosts: the shared warning becomes an error here.
fn partial_wildcard(r: &mut Report, f: &str, h: &str) {
    let name = h.split_once('/').map_or(h, |(_, name)| name);
    if name.starts_with('*') && name != "*" && !name.starts_with("*.") {
        r.warnings
            .retain(|w| !(w.field == f && w.message.starts_with("partial wildcard")));
        r.error(
            f,
            format!("partial wildcard {name:?} not allowed in sidecar egress hosts"),
        );
    }
}

/// An egress proxy is allowed with `ALLOW_ANY` only and must name an FQDN and a port.
fn outbound_traffic_policy(r: &mut Report, o: &OutboundTrafficPolicy) {
    const P: &str = "spec.outboundTrafficPolicy.egressProxy";
    let Some(proxy) = &o.egress_proxy else { return };
    if o.mode.unwrap_or_default() != OutboundTrafficMode::AllowAny {
        r.error(
            P,
            "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode",
        );
        return;
    }
    if let Some(m) = fqdn_error(&proxy.host) {
        r.error(format!("{P}.host"), m);
    }
    if let Some(s) = proxy
        .subset
        .as_deref()
        .filter(|s| !s.is_empty() && !mast_core::is_dns1123_label(s))
    {
        r.error(
            format!("{P}.subset"),
            format!("subset name is invalid: {s}"),
        );
    }
    match &proxy.port {
        None => r.error(
            format!("{P}.port"),
            "sidecar: egress_proxy port must be non-nil",
        ),
        Some(sel) => common::port(r, &format!("{P}.port.number"), sel.number.unwrap_or(0)),
    }
}
