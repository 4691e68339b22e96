//! Validation of `HTTPRoute`, `GRPCRoute`, `TCPRoute`, `TLSRoute` and `ReferenceGrant`.

use std::sync::LazyLock;

use regex::Regex;

use crate::gateway_api::{
    BackendRef, FilterType, GrpcRouteSpec, HttpBackendRef, HttpHeaderMatch, HttpPathMatch,
    HttpRouteMatch, HttpRouteRule, HttpRouteSpec, PathMatchType, PathModifierType,
    ReferenceGrantSpec, TcpRouteSpec, TlsRouteSpec, ValueMatchType,
};
use crate::resource::Resource;
use crate::validate::Report;

use super::{filters, shared};

const HTTP_FILTERS: &[FilterType] = &[
    FilterType::RequestHeaderModifier,
    FilterType::ResponseHeaderModifier,
    FilterType::RequestMirror,
    FilterType::RequestRedirect,
    FilterType::UrlRewrite,
    FilterType::Cors,
    FilterType::ExtensionRef,
];

const GRPC_FILTERS: &[FilterType] = &[
    FilterType::RequestHeaderModifier,
    FilterType::ResponseHeaderModifier,
    FilterType::RequestMirror,
    FilterType::ExtensionRef,
];

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

static GRPC_SERVICE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$").ok());
static GRPC_METHOD: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z_][A-Za-z_0-9]*$").ok());

/// Validates an `HTTPRoute`.
pub fn http_route(spec: &HttpRouteSpec, _res: &Resource, r: &mut Report) {
    shared::parent_refs(r, &spec.parent_refs);
    shared::hostnames(r, "spec.hostnames", &spec.hostnames);
    shared::max_items(r, "spec.rules", spec.rules.len(), 16);
    for (i, rule) in spec.rules.iter().enumerate() {
        http_rule(r, &format!("spec.rules[{i}]"), rule);
    }
}

fn http_rule(r: &mut Report, f: &str, rule: &HttpRouteRule) {
    shared::max_items(r, &format!("{f}.matches"), rule.matches.len(), 64);
    for (i, m) in rule.matches.iter().enumerate() {
        http_match(r, &format!("{f}.matches[{i}]"), m);
    }
    filters::filters(r, &format!("{f}.filters"), &rule.filters, HTTP_FILTERS);
    let redirect = rule
        .filters
        .iter()
        .find_map(|x| x.request_redirect.as_ref());
    if redirect.is_some() && !rule.backend_refs.is_empty() {
        r.error(
            format!("{f}.backendRefs"),
            "RequestRedirect filter must not be used together with backendRefs",
        );
    }
    let prefix_changes = rule.filters.iter().any(|x| {
        let path = x
            .request_redirect
            .as_ref()
            .and_then(|rd| rd.path.as_ref())
            .or_else(|| x.url_rewrite.as_ref().and_then(|rw| rw.path.as_ref()));
        path.is_some_and(|p| p.r#type == PathModifierType::ReplacePrefixMatch)
    });
    let one_prefix = rule.matches.len() == 1
        && rule.matches[0]
            .path
            .as_ref()
            .is_none_or(|p| p.r#type.unwrap_or_default() == PathMatchType::PathPrefix);
    if prefix_changes && !(rule.matches.is_empty() || one_prefix) {
        r.error(
            format!("{f}.filters"),
            "When using a filter with path.type ReplacePrefixMatch, exactly one PathPrefix match must be specified",
        );
    }
    for (i, b) in rule.backend_refs.iter().enumerate() {
        http_backend(r, &format!("{f}.backendRefs[{i}]"), b, HTTP_FILTERS);
    }
    shared::max_items(r, &format!("{f}.backendRefs"), rule.backend_refs.len(), 16);
    if let Some(t) = &rule.timeouts {
        timeouts(
            r,
            &format!("{f}.timeouts"),
            t.request.as_deref(),
            t.backend_request.as_deref(),
        );
    }
    if let Some(retry) = &rule.retry {
        for (i, c) in retry.codes.iter().enumerate() {
            if !(400..=599).contains(c) {
                r.error(
                    format!("{f}.retry.codes[{i}]"),
                    format!("code {c} must be between 400 and 599"),
                );
            }
        }
        if retry.attempts.is_some_and(|a| a < 0) {
            r.error(
                format!("{f}.retry.attempts"),
                "attempts must not be negative",
            );
        }
        if let Some(b) = &retry.backoff {
            shared::duration(r, &format!("{f}.retry.backoff"), b);
        }
    }
}

fn timeouts(r: &mut Report, f: &str, request: Option<&str>, backend: Option<&str>) {
    if let Some(t) = request {
        shared::duration(r, &format!("{f}.request"), t);
    }
    if let Some(t) = backend {
        shared::duration(r, &format!("{f}.backendRequest"), t);
    }
    let req = request.and_then(shared::duration_millis);
    let back = backend.and_then(shared::duration_millis);
    if let (Some(req), Some(back)) = (req, back)
        && req != 0
        && back > req
    {
        r.error(
            format!("{f}.backendRequest"),
            "backendRequest timeout cannot be longer than request timeout",
        );
    }
}

fn http_backend(r: &mut Report, f: &str, b: &HttpBackendRef, allowed: &[FilterType]) {
    let backend = shared::Backend {
        group: b.group.as_deref().unwrap_or(""),
        kind: b.kind.as_deref().unwrap_or("Service"),
        name: &b.name,
        port: b.port,
        weight: b.weight,
    };
    shared::backend(r, f, &backend);
    filters::filters(r, &format!("{f}.filters"), &b.filters, allowed);
}

fn http_match(r: &mut Report, f: &str, m: &HttpRouteMatch) {
    if let Some(p) = &m.path {
        path(r, &format!("{f}.path"), p);
    }
    value_matches(r, &format!("{f}.headers"), &m.headers);
    value_matches(r, &format!("{f}.queryParams"), &m.query_params);
    if let Some(method) = &m.method
        && !METHODS.contains(&method.as_str())
    {
        r.error(
            format!("{f}.method"),
            format!("method {method:?} must be one of {}", METHODS.join(", ")),
        );
    }
}

fn path(r: &mut Report, f: &str, p: &HttpPathMatch) {
    let value = p.value.as_deref().unwrap_or("/");
    let at = format!("{f}.value");
    if value.len() > 1024 {
        r.error(&at, "must be at most 1024 characters");
    }
    match p.r#type.unwrap_or_default() {
        PathMatchType::RegularExpression => regex(r, &at, value),
        PathMatchType::Exact | PathMatchType::PathPrefix => {
            if !value.starts_with('/') {
                r.error(&at, "value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']");
            }
            for bad in ["//", "/./", "/../", "%2f", "%2F", "#"] {
                if value.contains(bad) {
                    r.error(
                        &at,
                        format!(
                            "must not contain '{bad}' when type one of ['Exact', 'PathPrefix']"
                        ),
                    );
                }
            }
            for bad in ["/..", "/."] {
                if value.ends_with(bad) {
                    r.error(
                        &at,
                        format!(
                            "must not end with '{bad}' when type one of ['Exact', 'PathPrefix']"
                        ),
                    );
                }
            }
        }
    }
}

fn regex(r: &mut Report, f: &str, value: &str) {
    let built = regex::RegexBuilder::new(&format!("^(?:{value})$"))
        .size_limit(1 << 20)
        .build();
    if let Err(e) = built {
        let first = e.to_string();
        let reason = first
            .lines()
            .last()
            .unwrap_or("")
            .trim_start_matches("error: ");
        r.error(f, format!("invalid regex {value:?}: {reason}"));
    }
}

fn value_matches(r: &mut Report, f: &str, list: &[HttpHeaderMatch]) {
    shared::max_items(r, f, list.len(), 16);
    let mut seen = Vec::new();
    for (i, h) in list.iter().enumerate() {
        let at = format!("{f}[{i}]");
        shared::header_name(r, &format!("{at}.name"), &h.name);
        let lower = h.name.to_ascii_lowercase();
        if seen.contains(&lower) {
            r.error(
                format!("{at}.name"),
                format!("{:?} is matched twice", h.name),
            );
        }
        seen.push(lower);
        if h.r#type == Some(ValueMatchType::RegularExpression) {
            regex(r, &format!("{at}.value"), &h.value);
        }
    }
}

/// Validates a `GRPCRoute`.
pub fn grpc_route(spec: &GrpcRouteSpec, _res: &Resource, r: &mut Report) {
    shared::parent_refs(r, &spec.parent_refs);
    shared::hostnames(r, "spec.hostnames", &spec.hostnames);
    shared::max_items(r, "spec.rules", spec.rules.len(), 16);
    for (i, rule) in spec.rules.iter().enumerate() {
        let f = format!("spec.rules[{i}]");
        for (j, m) in rule.matches.iter().enumerate() {
            let at = format!("{f}.matches[{j}]");
            value_matches(r, &format!("{at}.headers"), &m.headers);
            if let Some(method) = &m.method {
                grpc_method(r, &format!("{at}.method"), method);
            }
        }
        filters::filters(r, &format!("{f}.filters"), &rule.filters, GRPC_FILTERS);
        for (j, b) in rule.backend_refs.iter().enumerate() {
            http_backend(r, &format!("{f}.backendRefs[{j}]"), b, GRPC_FILTERS);
        }
    }
}

fn grpc_method(r: &mut Report, f: &str, m: &crate::gateway_api::GrpcMethodMatch) {
    if m.service.is_none() && m.method.is_none() {
        r.error(f, "One or both of 'service' or 'method' must be specified");
        return;
    }
    let exact = m.r#type.unwrap_or_default() == ValueMatchType::Exact;
    let ok = |re: &LazyLock<Option<Regex>>, s: &str| re.as_ref().is_some_and(|re| re.is_match(s));
    if let Some(s) = &m.service {
        if exact && !ok(&GRPC_SERVICE, s) {
            r.error(format!("{f}.service"), "service must only contain valid characters (matching ^(?i)\\.?[a-z_][a-z_0-9]*(\\.[a-z_][a-z_0-9]*)*$)");
        } else if !exact {
            regex(r, &format!("{f}.service"), s);
        }
    }
    if let Some(s) = &m.method {
        if exact && !ok(&GRPC_METHOD, s) {
            r.error(
                format!("{f}.method"),
                "method must only contain valid characters (matching ^[A-Za-z_][A-Za-z_0-9]*$)",
            );
        } else if !exact {
            regex(r, &format!("{f}.method"), s);
        }
    }
}

/// Validates a `TCPRoute`.
pub fn tcp_route(spec: &TcpRouteSpec, _res: &Resource, r: &mut Report) {
    shared::parent_refs(r, &spec.parent_refs);
    l4_rules(
        r,
        spec.rules
            .iter()
            .map(|x| x.backend_refs.as_slice())
            .collect(),
    );
}

/// Validates a `TLSRoute`.
pub fn tls_route(spec: &TlsRouteSpec, _res: &Resource, r: &mut Report) {
    shared::parent_refs(r, &spec.parent_refs);
    shared::hostnames(r, "spec.hostnames", &spec.hostnames);
    l4_rules(
        r,
        spec.rules
            .iter()
            .map(|x| x.backend_refs.as_slice())
            .collect(),
    );
}

fn l4_rules(r: &mut Report, rules: Vec<&[BackendRef]>) {
    if rules.is_empty() {
        r.error("spec.rules", "a route needs at least one rule");
    }
    shared::max_items(r, "spec.rules", rules.len(), 16);
    for (i, backends) in rules.into_iter().enumerate() {
        let f = format!("spec.rules[{i}].backendRefs");
        if backends.is_empty() {
            r.error(&f, "a rule needs at least one backendRef");
        }
        shared::max_items(r, &f, backends.len(), 16);
        for (j, b) in backends.iter().enumerate() {
            let backend = shared::Backend {
                group: b.group.as_deref().unwrap_or(""),
                kind: b.kind.as_deref().unwrap_or("Service"),
                name: &b.name,
                port: b.port,
                weight: b.weight,
            };
            shared::backend(r, &format!("{f}[{j}]"), &backend);
        }
    }
}

/// Validates a `ReferenceGrant`.
pub fn reference_grant(spec: &ReferenceGrantSpec, _res: &Resource, r: &mut Report) {
    if spec.from.is_empty() {
        r.error(
            "spec.from",
            "a ReferenceGrant needs at least one from entry",
        );
    }
    if spec.to.is_empty() {
        r.error("spec.to", "a ReferenceGrant needs at least one to entry");
    }
    shared::max_items(r, "spec.from", spec.from.len(), 16);
    shared::max_items(r, "spec.to", spec.to.len(), 16);
    for (i, f) in spec.from.iter().enumerate() {
        shared::object_name(r, &format!("spec.from[{i}].kind"), &f.kind);
        shared::object_name(r, &format!("spec.from[{i}].namespace"), &f.namespace);
    }
    for (i, t) in spec.to.iter().enumerate() {
        shared::object_name(r, &format!("spec.to[{i}].kind"), &t.kind);
    }
}
