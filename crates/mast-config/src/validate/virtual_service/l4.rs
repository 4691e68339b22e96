//! TLS and TCP routes of a `VirtualService`, as Istio's `validateTLSRoute` and
//! `validateTCPRoute` check them: SNI hosts (compatible with the VirtualService's hosts),
//! subnets, ports, source labels, gateways and weighted destinations.

use std::collections::BTreeMap;

use mast_core::Hostname;

use super::{Ctx, http, names};
use crate::networking::virtual_service::{
    L4MatchAttributes, TcpRoute, TlsMatchAttributes, TlsRoute,
};
use crate::validate::{Report, common};

/// Checks `spec.tls[i]`.
pub(super) fn tls_route(ctx: &Ctx<'_>, i: usize, route: &TlsRoute, r: &mut Report) {
    let f = format!("spec.tls[{i}]");
    if route.r#match.is_empty() {
        r.error(
            format!("{f}.match"),
            "TLS route must have at least one match condition",
        );
    }
    for (j, m) in route.r#match.iter().enumerate() {
        tls_match(ctx, &format!("{f}.match[{j}]"), m, r);
    }
    if route.route.is_empty() {
        r.error(format!("{f}.route"), "TLS route is required");
    }
    http::destinations(
        ctx,
        r,
        &format!("{f}.route"),
        route.route.iter().map(|d| (&d.destination, d.weight)),
    );
}

/// Checks `spec.tcp[i]`.
pub(super) fn tcp_route(ctx: &Ctx<'_>, i: usize, route: &TcpRoute, r: &mut Report) {
    let f = format!("spec.tcp[{i}]");
    for (j, m) in route.r#match.iter().enumerate() {
        tcp_match(&format!("{f}.match[{j}]"), m, r);
    }
    if route.route.is_empty() {
        r.error(format!("{f}.route"), "TCP route is required");
    }
    http::destinations(
        ctx,
        r,
        &format!("{f}.route"),
        route.route.iter().map(|d| (&d.destination, d.weight)),
    );
}

fn tls_match(ctx: &Ctx<'_>, f: &str, m: &TlsMatchAttributes, r: &mut Report) {
    if m.sni_hosts.is_empty() {
        r.error(
            format!("{f}.sniHosts"),
            "TLS match must have at least one SNI host",
        );
    }
    for (k, h) in m.sni_hosts.iter().enumerate() {
        sni_host(ctx, &format!("{f}.sniHosts[{k}]"), h, r);
    }
    let common = L4Common {
        subnets: &m.destination_subnets,
        port: m.port,
        labels: &m.source_labels,
        gateways: &m.gateways,
        ns: &m.source_namespace,
    };
    common.check(f, r);
}

fn tcp_match(f: &str, m: &L4MatchAttributes, r: &mut Report) {
    let common = L4Common {
        subnets: &m.destination_subnets,
        port: m.port,
        labels: &m.source_labels,
        gateways: &m.gateways,
        ns: &m.source_namespace,
    };
    common.check(f, r);
    if !m.source_subnet.is_empty()
        && let Some(e) = names::ip_subnet_error(&m.source_subnet)
    {
        r.warn(format!("{f}.sourceSubnet"), e);
    }
}

/// An SNI host must be a valid (wildcard) domain and a subset of one of the
/// VirtualService's hosts; an IP address is accepted with a warning.
fn sni_host(ctx: &Ctx<'_>, f: &str, h: &str, r: &mut Report) {
    // As in Istio, a VirtualService not bound to `mesh` (including one with no gateways)
    // accepts the auto-generated `outbound_.<port>_._.<host>` SNI names.
    let bound_to_gateway = !ctx.spec.gateways.iter().any(|g| g == "mesh");
    let err = if bound_to_gateway {
        names::gateway_bound_domain_error(true, h)
    } else {
        names::wildcard_domain_error(h)
    };
    if let Some(e) = err {
        if names::is_ip(h) {
            r.warn(f, format!("using an IP address ({h:?}) goes against SNI spec and most clients do not support this"));
        } else {
            r.error(f, e);
        }
        return;
    }
    let sni = Hostname::new_unchecked(h);
    if !ctx
        .spec
        .hosts
        .iter()
        .any(|vh| sni.subset_of(&Hostname::new_unchecked(vh.as_str())))
    {
        let hosts = ctx.spec.hosts.join(", ");
        r.error(f, format!("SNI host {h:?} is not a compatible subset of any of the virtual service hosts: [{hosts}]"));
    }
}

/// The conditions TLS and TCP matches share.
struct L4Common<'a> {
    subnets: &'a [String],
    port: Option<i64>,
    labels: &'a BTreeMap<String, String>,
    gateways: &'a [String],
    ns: &'a str,
}

impl L4Common<'_> {
    fn check(&self, f: &str, r: &mut Report) {
        for (k, s) in self.subnets.iter().enumerate() {
            if let Some(e) = names::ip_subnet_error(s) {
                r.error(format!("{f}.destinationSubnets[{k}]"), e);
            }
        }
        if let Some(p) = self.port.filter(|p| *p != 0) {
            common::port(r, &format!("{f}.port"), p);
        }
        for (k, v) in self.labels {
            common::label(r, &format!("{f}.sourceLabels.{k}"), k, v);
        }
        names::gateway_names(r, &format!("{f}.gateways"), self.gateways, false);
        http::source_namespace(r, &format!("{f}.sourceNamespace"), self.ns);
    }
}
