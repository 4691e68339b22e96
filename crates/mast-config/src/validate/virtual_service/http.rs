//! HTTP routes of a `VirtualService`, as Istio's `validateHTTPRoute` checks them: which
//! actions may be combined, match requests, header operations, destinations and weights.
//! The route's policies (retries, faults, CORS, redirects, …) are in [`super::policies`].

use mast_core::is_dns1123_label;

use super::{Ctx, headers, names, policies};
use crate::networking::virtual_service::{Destination, HttpMatchRequest, HttpRoute};
use crate::types::StringMatch;
use crate::validate::{Report, common};

/// Checks `spec.http[i]`.
pub(super) fn route(ctx: &Ctx<'_>, i: usize, route: &HttpRoute, r: &mut Report) {
    let f = format!("spec.http[{i}]");
    conflicts(ctx, &f, route, r);
    for (j, m) in route.r#match.iter().enumerate() {
        match_request(&format!("{f}.match[{j}]"), m, r);
    }
    if let Some(h) = &route.headers {
        headers::operations(r, &format!("{f}.headers"), h);
    }
    policies::route_policies(&f, route, r);
    if let Some(m) = &route.mirror {
        destination(r, &format!("{f}.mirror"), m);
    }
    for (k, d) in route.route.iter().enumerate() {
        if let Some(h) = &d.headers {
            headers::operations(r, &format!("{f}.route[{k}].headers"), h);
        }
    }
    let weighted = route.route.iter().map(|d| (&d.destination, d.weight));
    destinations(ctx, r, &format!("{f}.route"), weighted);
    if let Some(t) = route.timeout {
        common::duration(r, &format!("{f}.timeout"), t);
    }
    if let Some(d) = &route.delegate {
        delegate(r, &format!("{f}.delegate"), d);
    }
}

/// Which of route, redirect, direct response, delegate, fault, rewrite and mirrors may go
/// together (Istio's `validateHTTPRouteConflict`).
fn conflicts(ctx: &Ctx<'_>, f: &str, route: &HttpRoute, r: &mut Report) {
    let name = &route.name;
    if route.delegate.is_some() && !ctx.delegate {
        // A root route: only the delegate may say where traffic goes.
        if route.redirect.is_some() {
            r.error(
                format!("{f}.redirect"),
                format!("root HTTP route {name} must not specify redirect"),
            );
        }
        if !route.route.is_empty() {
            r.error(
                format!("{f}.route"),
                format!("root HTTP route {name} must not specify route"),
            );
        }
        return;
    }
    if ctx.delegate && route.delegate.is_some() {
        r.error(
            format!("{f}.delegate"),
            "delegate HTTP route cannot contain delegate",
        );
    }
    let (action, other) = match (&route.redirect, &route.direct_response) {
        (Some(_), direct) => ("redirect", direct.as_ref().map(|_| "direct_response")),
        (None, Some(_)) => ("direct_response", None),
        (None, None) => {
            if route.route.is_empty() {
                r.error(f, "HTTP route, redirect or direct_response is required");
            }
            ("", None)
        }
    };
    if !action.is_empty() {
        let clash = |what: &str| format!("HTTP route cannot contain both {what} and {action}");
        if !route.route.is_empty() {
            r.error(format!("{f}.route"), clash("route"));
        }
        if route.fault.is_some() {
            r.error(format!("{f}.fault"), clash("fault"));
        }
        if route.rewrite.is_some() {
            r.error(
                format!("{f}.rewrite"),
                format!("HTTP route rule cannot contain both rewrite and {action}"),
            );
        }
        if let Some(other) = other {
            r.error(
                format!("{f}.directResponse"),
                format!("HTTP route rule cannot contain both {other} and {action}"),
            );
        }
    }
    if route.mirror.is_some() && !route.mirrors.is_empty() {
        r.error(
            format!("{f}.mirrors"),
            "HTTP route cannot contain both mirror and mirrors",
        );
    }
}

/// Istio's `validateHTTPRouteMatchRequest` for one match block at `f`.
fn match_request(f: &str, m: &HttpMatchRequest, r: &mut Report) {
    for (name, sm) in &m.headers {
        header_match(r, &format!("{f}.headers.{name}"), name, sm, "headers");
    }
    for (name, sm) in &m.without_headers {
        header_match(
            r,
            &format!("{f}.withoutHeaders.{name}"),
            name,
            sm,
            "withoutHeaders",
        );
    }
    if let Some(uri) = &m.uri {
        // An empty prefix is allowed for the path: it matches everything.
        regex_match(r, &format!("{f}.uri"), uri, "uri");
    }
    for (key, sm) in [
        ("scheme", &m.scheme),
        ("method", &m.method),
        ("authority", &m.authority),
    ] {
        if let Some(sm) = sm {
            string_match(r, &format!("{f}.{key}"), sm, key);
        }
    }
    for (name, sm) in &m.query_params {
        string_match(r, &format!("{f}.queryParams.{name}"), sm, "queryParams");
    }
    if let Some(p) = m.port.filter(|p| *p != 0) {
        common::port(r, &format!("{f}.port"), p);
    }
    for (k, v) in &m.source_labels {
        common::label(r, &format!("{f}.sourceLabels.{k}"), k, v);
    }
    names::gateway_names(r, &format!("{f}.gateways"), &m.gateways, false);
    source_namespace(r, &format!("{f}.sourceNamespace"), &m.source_namespace);
}

fn header_match(r: &mut Report, f: &str, name: &str, sm: &StringMatch, what: &str) {
    if let Some(e) = headers::match_name_error(name) {
        r.error(f, e);
    } else if name.bytes().any(|b| b.is_ascii_uppercase()) && !headers::is_jwt_claim(name) {
        r.warn(f, format!("header match key {name:?} must be lowercase (header names are compared in lower case)"));
    }
    // In `withoutHeaders`, `regex: "*"` means "present"; it is not an RE2 pattern.
    if !matches!(sm, StringMatch::Regex(re) if re.as_str() == "*") {
        string_match(r, f, sm, what);
    }
}

/// `sourceNamespace` must be a namespace name when given.
pub(super) fn source_namespace(r: &mut Report, f: &str, ns: &str) {
    if !ns.is_empty() && !is_dns1123_label(ns) {
        r.error(f, format!("sourceNamespace match {ns} is invalid"));
    }
}

/// Istio's `validateStringMatch`: no empty prefix, and a usable regex.
pub(super) fn string_match(r: &mut Report, f: &str, sm: &StringMatch, what: &str) {
    match sm {
        StringMatch::Prefix(p) if p.is_empty() => r.error(
            f,
            format!("{what:?}: prefix string match should not be empty"),
        ),
        _ => regex_match(r, f, sm, what),
    }
}

/// Istio's `validateStringMatchRegexp`: a regex must be non-empty and at most 1024 long
/// (it was compiled when loaded).
pub(super) fn regex_match(r: &mut Report, f: &str, sm: &StringMatch, what: &str) {
    if let StringMatch::Regex(re) = sm {
        if re.as_str().is_empty() {
            r.error(
                f,
                format!("{what:?}: regex string match should not be empty"),
            );
        } else if re.as_str().len() > 1024 {
            r.error(
                f,
                format!("{what:?}: regex is too large, max length allowed is 1024"),
            );
        }
    }
}

/// Checks weighted destinations at `f` (`…route`): each destination (unless Gateway API
/// semantics apply), non-negative weights, and a non-zero total when there are several.
pub(super) fn destinations<'a>(
    ctx: &Ctx<'_>,
    r: &mut Report,
    f: &str,
    items: impl Iterator<Item = (&'a Destination, Option<i64>)>,
) {
    let (mut total, mut count) = (0_i64, 0_usize);
    for (k, (dest, weight)) in items.enumerate() {
        count += 1;
        if !ctx.gateway_semantics {
            destination(r, &format!("{f}[{k}].destination"), dest);
        }
        let w = weight.unwrap_or(0);
        if w < 0 {
            r.error(
                format!("{f}[{k}].weight"),
                format!("weight {w} must not be negative"),
            );
        } else if w > i64::from(i32::MAX) {
            r.error(
                format!("{f}[{k}].weight"),
                format!("weight {w} is larger than the maximum {}", i32::MAX),
            );
        } else {
            total += w;
        }
    }
    if count > 1 && total == 0 {
        r.error(f, "total destination weight = 0");
    }
}

/// Istio's `validateDestination`: a host (not `*`), a subset name and a port.
pub(super) fn destination(r: &mut Report, f: &str, d: &Destination) {
    let host_error = if d.host == "*" {
        Some("invalid destination host *".to_owned())
    } else {
        names::wildcard_domain_error(&d.host)
    };
    if let Some(e) = host_error {
        r.error(format!("{f}.host"), e);
    }
    if !d.subset.is_empty() && !is_dns1123_label(&d.subset) {
        r.error(
            format!("{f}.subset"),
            format!("subset name is invalid: {}", d.subset),
        );
    }
    if let Some(p) = &d.port {
        common::port(r, &format!("{f}.port.number"), p.number.unwrap_or(0));
    }
}

/// A delegate must name a VirtualService; Istio accepts a bad one and drops the route.
fn delegate(r: &mut Report, f: &str, d: &crate::networking::virtual_service::Delegate) {
    if d.name.is_empty() {
        r.warn(format!("{f}.name"), "delegate name is empty: the route refers to no VirtualService and will not take effect");
    } else if !is_dns1123_subdomain(&d.name) {
        r.warn(
            format!("{f}.name"),
            format!("delegate name {:?} is not a valid resource name", d.name),
        );
    }
    if !d.namespace.is_empty() && !is_dns1123_label(&d.namespace) {
        r.warn(
            format!("{f}.namespace"),
            format!(
                "delegate namespace {:?} is not a valid namespace name",
                d.namespace
            ),
        );
    }
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.')
            .all(|l| is_dns1123_label(l) && !l.bytes().any(|b| b.is_ascii_uppercase()))
}
