//! Validation of `VirtualService`, following Istio's `ValidateVirtualService` and what it
//! calls (`pkg/config/validation`): hosts and their duplicates, gateways, delegate
//! VirtualServices, HTTP routes ([`http`], [`policies`]), TLS and TCP routes ([`l4`]),
//! `exportTo`, and the unreachable-rule warnings ([`unreachable`]).

mod headers;
mod http;
mod l4;
mod names;
mod policies;
mod unreachable;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_more;
#[cfg(test)]
mod tests_roundtrip;

use mast_core::Hostname;

use super::{Report, common};
use crate::networking::VirtualService;
use crate::resource::Resource;

/// Istio's internal annotation marking resources converted from the Gateway API.
const ROUTE_SEMANTICS_ANNOTATION: &str = "internal.istio.io/route-semantics";

/// The reserved gateway name for all sidecars.
const MESH_GATEWAY: &str = "mesh";

/// What the rules need to know about the VirtualService being checked.
struct Ctx<'a> {
    spec: &'a VirtualService,
    /// No hosts: a delegate, whose HTTP rules other VirtualServices take over.
    delegate: bool,
    /// Converted from the Gateway API: gateway names and destinations follow its rules.
    gateway_semantics: bool,
    /// Bound to gateways only (`gateways` given, without `mesh`).
    applies_to_gateway: bool,
}

/// Checks a `VirtualService`; `res` gives its name, namespace and API version.
pub(crate) fn validate(spec: &VirtualService, res: &Resource, r: &mut Report) {
    let ctx = Ctx {
        spec,
        delegate: spec.hosts.is_empty(),
        gateway_semantics: res
            .annotations()
            .get(ROUTE_SEMANTICS_ANNOTATION)
            .is_some_and(|v| v == "gateway"),
        applies_to_gateway: !spec.gateways.is_empty()
            && !spec.gateways.iter().any(|g| g == MESH_GATEWAY),
    };
    if ctx.delegate {
        delegate_rules(spec, r);
    }
    names::gateway_names(r, "spec.gateways", &spec.gateways, ctx.gateway_semantics);
    if !ctx.applies_to_gateway {
        jwt_claim_routes(spec, r);
    }
    hosts(&ctx, r);
    if spec.http.is_empty() && spec.tcp.is_empty() && spec.tls.is_empty() {
        r.error(
            "spec",
            "http, tcp or tls must be provided in virtual service",
        );
    }
    for (i, route) in spec.http.iter().enumerate() {
        http::route(&ctx, i, route, r);
    }
    for (i, route) in spec.tls.iter().enumerate() {
        l4::tls_route(&ctx, i, route, r);
    }
    for (i, route) in spec.tcp.iter().enumerate() {
        l4::tcp_route(&ctx, i, route, r);
    }
    common::export_to(r, "spec.exportTo", &spec.export_to);
    unreachable::analyze(spec, r);
}

/// A delegate VirtualService carries HTTP rules only and is bound to nothing itself.
fn delegate_rules(spec: &VirtualService, r: &mut Report) {
    if !spec.gateways.is_empty() {
        r.error(
            "spec.gateways",
            "delegate virtual service must have no gateways specified",
        );
    }
    if !spec.tls.is_empty() {
        r.error(
            "spec.tls",
            "delegate virtual service must have no tls route specified",
        );
    }
    if !spec.tcp.is_empty() {
        r.error(
            "spec.tcp",
            "delegate virtual service must have no tcp route specified",
        );
    }
}

/// Routing on `@request.auth.claims…` works only on gateways.
fn jwt_claim_routes(spec: &VirtualService, r: &mut Report) {
    for (i, route) in spec.http.iter().enumerate() {
        for (j, m) in route.r#match.iter().enumerate() {
            let keys = m
                .headers
                .keys()
                .map(|k| ("headers", k))
                .chain(m.without_headers.keys().map(|k| ("withoutHeaders", k)));
            for (map, key) in keys.filter(|(_, k)| headers::is_jwt_claim(k)) {
                let msg = format!(
                    "JWT claim based routing (key: {key}) is only supported for gateway, found no gateways: [{}]",
                    spec.gateways.join(" ")
                );
                r.error(format!("spec.http[{i}].match[{j}].{map}.{key}"), msg);
            }
        }
    }
}

/// Each host is a (wildcard) domain or, on gateways, an IP; `*` alone is not allowed on
/// the mesh; no two hosts overlap.
fn hosts(ctx: &Ctx<'_>, r: &mut Report) {
    let spec = ctx.spec;
    let sni = spec
        .tls
        .iter()
        .any(|t| t.r#match.iter().any(|m| !m.sni_hosts.is_empty()));
    let mut all_valid = true;
    for (i, h) in spec.hosts.iter().enumerate() {
        let f = format!("spec.hosts[{i}]");
        let err = if ctx.applies_to_gateway {
            names::gateway_bound_domain_error(sni, h)
        } else {
            names::wildcard_domain_error(h)
        };
        match err {
            Some(e) if !names::is_ip(h) => {
                r.error(&f, e);
                all_valid = false;
            }
            None if !ctx.applies_to_gateway && h == "*" => {
                r.error(
                    &f,
                    "wildcard host * is not allowed for virtual services bound to the mesh gateway",
                );
                all_valid = false;
            }
            _ => {}
        }
    }
    if !all_valid {
        return;
    }
    for (i, a) in spec.hosts.iter().enumerate() {
        let ha = Hostname::new_unchecked(a.as_str());
        for (j, b) in spec.hosts.iter().enumerate().skip(i + 1) {
            if ha.matches(&Hostname::new_unchecked(b.as_str())) {
                r.error(
                    format!("spec.hosts[{j}]"),
                    format!("duplicate hosts in virtual service: {a} & {b}"),
                );
            }
        }
    }
}
