//! HTTPRoute and GRPCRoute rules → Istio `HTTPRoute`s, as Istio's conversion does: one
//! route per match (a rule with several matches is split), named after the rule (or
//! `<ns>.<route>.<index>`); filters to `headers`/`redirect`/`rewrite`/`mirrors`/
//! `corsPolicy`; backends to weighted destinations (cross-namespace ones need a
//! ReferenceGrant); timeouts and retries.

use std::collections::BTreeMap;

use mast_config::gateway_api::{
    FilterType, GrpcMethodMatch, GrpcRouteRule, HttpBackendRef, HttpCorsFilter, HttpHeaderFilter,
    HttpHeaderMatch, HttpPathMatch, HttpRequestRedirectFilter, HttpRouteFilter, HttpRouteMatch,
    HttpRouteRetry, HttpRouteRule, HttpUrlRewriteFilter, PathMatchType, PathModifierType,
    ValueMatchType,
};
use mast_config::networking::virtual_service::{
    CorsPolicy, Destination, HeaderOperations, Headers, HttpFaultAbort, HttpFaultInjection,
    HttpMatchRequest, HttpMirrorPolicy, HttpRedirect, HttpRetry, HttpRewrite, HttpRoute,
    HttpRouteDestination, PortSelector, RedirectPortSelection, RegexRewrite, UnmatchedPreflights,
};
use mast_config::types::{Duration, Percent, StringMatch};

use super::inputs::Inputs;

/// Istio's retry conditions for Gateway API retries.
const RETRY_ON: &str = "connect-failure,refused-stream,unavailable,cancelled";

/// The route being converted.
pub(super) struct RuleCtx<'a> {
    pub inputs: &'a Inputs<'a>,
    pub kind: &'static str,
    pub namespace: &'a str,
    pub name: &'a str,
    /// Whether a backend in another namespace needs a ReferenceGrant.
    pub enforce_grants: bool,
    /// The last backend problem that still lets the destination be used.
    pub noted: std::cell::RefCell<Option<RouteError>>,
}

impl RuleCtx<'_> {
    /// Records a backend problem for `ResolvedRefs`.
    pub fn note(&self, e: RouteError) {
        *self.noted.borrow_mut() = Some(e);
    }
}

/// A problem that fails a condition: `Accepted` (unsupported filters) or `ResolvedRefs`.
#[derive(Debug, Clone)]
pub(super) struct RouteError {
    pub reason: &'static str,
    pub message: String,
}

/// The converted rules and the last backend problem (the route still applies).
#[derive(Default)]
pub(super) struct Rules {
    pub http: Vec<HttpRoute>,
    pub backend_error: Option<RouteError>,
}

/// Converts the rules of an HTTPRoute. `Err`: a rule the route cannot be accepted with.
pub(super) fn http_rules(ctx: &RuleCtx<'_>, rules: &[HttpRouteRule]) -> Result<Rules, RouteError> {
    let mut out = Rules::default();
    for (i, rule) in rules.iter().enumerate() {
        let matches: Vec<Option<&HttpRouteMatch>> = if rule.matches.is_empty() {
            vec![None]
        } else {
            rule.matches.iter().map(Some).collect()
        };
        for m in matches {
            let mut route = base(ctx, rule.name.as_deref(), i);
            if let Some(m) = m {
                route.r#match = vec![http_match(m)];
            }
            apply_filters(ctx, &mut route, &rule.filters)?;
            finish(ctx, &mut route, &rule.backend_refs, &mut out);
            if let Some(t) = &rule.timeouts {
                let t = t.backend_request.as_deref().or(t.request.as_deref());
                route.timeout = t.and_then(millis).map(Duration::from_std);
            }
            route.retries = rule.retry.as_ref().map(retries);
            out.http.push(route);
        }
    }
    Ok(out)
}

/// Converts the rules of a GRPCRoute.
pub(super) fn grpc_rules(ctx: &RuleCtx<'_>, rules: &[GrpcRouteRule]) -> Result<Rules, RouteError> {
    let mut out = Rules::default();
    for (i, rule) in rules.iter().enumerate() {
        let matches: Vec<Option<_>> = if rule.matches.is_empty() {
            vec![None]
        } else {
            rule.matches.iter().map(Some).collect()
        };
        for m in matches {
            let mut route = base(ctx, rule.name.as_deref(), i);
            if let Some(m) = m {
                route.r#match = vec![HttpMatchRequest {
                    uri: m.method.as_ref().and_then(grpc_uri),
                    headers: value_matches(&m.headers),
                    ..HttpMatchRequest::default()
                }];
            }
            apply_filters(ctx, &mut route, &rule.filters)?;
            finish(ctx, &mut route, &rule.backend_refs, &mut out);
            out.http.push(route);
        }
    }
    Ok(out)
}

fn base(ctx: &RuleCtx<'_>, name: Option<&str>, index: usize) -> HttpRoute {
    HttpRoute {
        name: name.map_or_else(
            || format!("{}.{}.{index}", ctx.namespace, ctx.name),
            str::to_owned,
        ),
        ..HttpRoute::default()
    }
}

/// Destinations, or a fault when no backend can take traffic (503 for weights all zero, 500
/// when every backend is invalid).
fn finish(ctx: &RuleCtx<'_>, route: &mut HttpRoute, backends: &[HttpBackendRef], out: &mut Rules) {
    let zero = backends.iter().all(|b| b.weight == Some(0));
    let mut valid = Vec::new();
    for b in backends {
        match backend(ctx, b) {
            Ok(d) => valid.push(d),
            Err(e) => out.backend_error = Some(e),
        }
    }
    if route.redirect.is_some() {
        return;
    }
    if zero || (valid.is_empty() && !backends.is_empty()) {
        let status = if zero { 503 } else { 500 };
        route.fault = Some(HttpFaultInjection {
            abort: Some(HttpFaultAbort {
                http_status: Some(status),
                percentage: Some(Percent { value: 100.0 }),
                ..HttpFaultAbort::default()
            }),
            ..HttpFaultInjection::default()
        });
    }
    if valid.len() > 1 {
        for (d, b) in valid
            .iter_mut()
            .zip(backends.iter().filter(|b| backend(ctx, b).is_ok()))
        {
            d.weight = Some(b.weight.unwrap_or(1));
        }
    }
    if !zero {
        route.route = valid;
    }
}

fn backend(ctx: &RuleCtx<'_>, b: &HttpBackendRef) -> Result<HttpRouteDestination, RouteError> {
    let destination = destination(
        ctx,
        (
            b.group.as_deref().unwrap_or(""),
            b.kind.as_deref().unwrap_or("Service"),
        ),
        &b.name,
        b.namespace.as_deref(),
        b.port,
    )?;
    let mut headers = Headers::default();
    for f in &b.filters {
        match f.r#type {
            FilterType::RequestHeaderModifier => {
                headers.request = f.request_header_modifier.as_ref().map(header_ops)
            }
            FilterType::ResponseHeaderModifier => {
                headers.response = f.response_header_modifier.as_ref().map(header_ops)
            }
            _ => {}
        }
    }
    let headers = (headers != Headers::default()).then_some(headers);
    Ok(HttpRouteDestination {
        destination,
        weight: None,
        headers,
    })
}

/// A Service (or Istio `Hostname`) backend as an Istio destination.
pub(super) fn destination(
    ctx: &RuleCtx<'_>,
    (group, kind): (&str, &str),
    name: &str,
    namespace: Option<&str>,
    port: Option<i64>,
) -> Result<Destination, RouteError> {
    let port = port.map(|n| PortSelector { number: Some(n) });
    match (group, kind) {
        ("", "Service") => {
            let ns = namespace.unwrap_or(ctx.namespace);
            if ctx.enforce_grants
                && !ctx
                    .inputs
                    .allowed(ctx.kind, ctx.namespace, "Service", ns, name)
            {
                return Err(RouteError {
                    reason: "RefNotPermitted",
                    message: format!(
                        "backendRef {name}/{ns} not accessible to a {} in namespace {:?} (missing a ReferenceGrant?)",
                        ctx.kind, ctx.namespace
                    ),
                });
            }
            if !ctx.inputs.services.contains(&(ns, name)) {
                // Istio keeps the destination (no endpoints: 503) and reports it.
                ctx.note(RouteError {
                    reason: "BackendNotFound",
                    message: format!("backend({}) not found", ctx.inputs.service_host(ns, name)),
                });
            }
            Ok(Destination {
                host: ctx.inputs.service_host(ns, name),
                subset: String::new(),
                port,
            })
        }
        ("networking.istio.io", "Hostname") => Ok(Destination {
            host: name.to_owned(),
            subset: String::new(),
            port,
        }),
        _ => Err(RouteError {
            reason: "InvalidKind",
            message: format!("referencing unsupported backendRef: group {group:?} kind {kind:?}"),
        }),
    }
}

fn http_match(m: &HttpRouteMatch) -> HttpMatchRequest {
    HttpMatchRequest {
        uri: m.path.as_ref().map(path),
        headers: value_matches(&m.headers),
        query_params: value_matches(&m.query_params),
        method: m.method.clone().map(StringMatch::Exact),
        ..HttpMatchRequest::default()
    }
}

fn path(p: &HttpPathMatch) -> StringMatch {
    let value = p.value.clone().unwrap_or_else(|| "/".into());
    match p.r#type.unwrap_or_default() {
        PathMatchType::Exact => StringMatch::Exact(value),
        // "When specified, a trailing `/` is ignored."
        PathMatchType::PathPrefix if value != "/" => {
            StringMatch::Prefix(value.trim_end_matches('/').to_owned())
        }
        PathMatchType::PathPrefix => StringMatch::Prefix(value),
        PathMatchType::RegularExpression => regex(&value),
    }
}

fn value_matches(list: &[HttpHeaderMatch]) -> BTreeMap<String, StringMatch> {
    list.iter()
        .map(|h| {
            let m = match h.r#type.unwrap_or_default() {
                ValueMatchType::Exact => StringMatch::Exact(h.value.clone()),
                ValueMatchType::RegularExpression => regex(&h.value),
            };
            (h.name.clone(), m)
        })
        .collect()
}

fn grpc_uri(m: &GrpcMethodMatch) -> Option<StringMatch> {
    let (service, method) = (m.service.as_deref(), m.method.as_deref());
    if m.r#type.unwrap_or_default() == ValueMatchType::RegularExpression {
        let s = service.unwrap_or("[^/]+");
        let me = method.unwrap_or("[^/]+");
        return Some(regex(&format!("/{s}/{me}")));
    }
    match (service, method) {
        (Some(s), None) => Some(StringMatch::Prefix(format!("/{s}/"))),
        (None, Some(me)) => Some(regex(&format!("/[^/]+/{me}"))),
        (Some(s), Some(me)) => Some(StringMatch::Exact(format!("/{s}/{me}"))),
        (None, None) => None,
    }
}

/// A regex StringMatch (validation compiled it already; a bad one matches nothing).
fn regex(pattern: &str) -> StringMatch {
    serde_json::from_value(serde_json::json!({ "regex": pattern }))
        .unwrap_or_else(|_| StringMatch::Exact(String::new()))
}

fn apply_filters(
    ctx: &RuleCtx<'_>,
    route: &mut HttpRoute,
    filters: &[HttpRouteFilter],
) -> Result<(), RouteError> {
    for f in filters {
        match f.r#type {
            FilterType::RequestHeaderModifier => {
                route.headers.get_or_insert_with(Headers::default).request =
                    f.request_header_modifier.as_ref().map(header_ops);
            }
            FilterType::ResponseHeaderModifier => {
                route.headers.get_or_insert_with(Headers::default).response =
                    f.response_header_modifier.as_ref().map(header_ops);
            }
            FilterType::RequestRedirect => {
                route.redirect = f.request_redirect.as_ref().map(redirect)
            }
            FilterType::UrlRewrite => route.rewrite = f.url_rewrite.as_ref().map(rewrite),
            FilterType::Cors => route.cors_policy = f.cors.as_ref().map(cors),
            FilterType::RequestMirror => {
                let Some(m) = &f.request_mirror else { continue };
                let b = &m.backend_ref;
                let destination = destination(
                    ctx,
                    (b.group(), b.kind()),
                    &b.name,
                    b.namespace.as_deref(),
                    b.port,
                )?;
                let percentage = match (&m.fraction, m.percent) {
                    (Some(fr), _) => Some(
                        fr.numerator as f64 * 100.0 / fr.denominator.unwrap_or(100).max(1) as f64,
                    ),
                    (None, Some(p)) => Some(p as f64),
                    (None, None) => None,
                };
                route.mirrors.push(HttpMirrorPolicy {
                    destination,
                    percentage: percentage.map(|value| Percent { value }),
                });
            }
            FilterType::ExtensionRef => {
                return Err(RouteError {
                    reason: "UnsupportedValue",
                    message: format!("unsupported filter type {:?}", f.r#type.as_str()),
                });
            }
        }
    }
    Ok(())
}

fn header_ops(h: &HttpHeaderFilter) -> HeaderOperations {
    let map = |l: &[mast_config::gateway_api::HttpHeader]| {
        l.iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect()
    };
    HeaderOperations {
        set: map(&h.set),
        add: map(&h.add),
        remove: h.remove.clone(),
    }
}

fn redirect(r: &HttpRequestRedirectFilter) -> HttpRedirect {
    let uri = match &r.path {
        Some(p) if p.r#type == PathModifierType::ReplaceFullPath => {
            p.replace_full_path.clone().unwrap_or_default()
        }
        Some(p) => format!(
            "%PREFIX()%{}",
            p.replace_prefix_match.as_deref().unwrap_or("")
        ),
        None => String::new(),
    };
    // "When empty, port (if specified) of the request is used": Istio derives the port
    // from the scheme when one is given, else keeps the request's.
    let derive = r.port.is_none().then_some(if r.scheme.is_some() {
        RedirectPortSelection::FromProtocolDefault
    } else {
        RedirectPortSelection::FromRequestPort
    });
    HttpRedirect {
        uri,
        authority: r.hostname.clone().unwrap_or_default(),
        port: r.port,
        derive_port: derive,
        scheme: r.scheme.clone().unwrap_or_default(),
        redirect_code: r.status_code,
    }
}

fn rewrite(r: &HttpUrlRewriteFilter) -> HttpRewrite {
    let mut out = HttpRewrite {
        authority: r.hostname.clone().unwrap_or_default(),
        ..HttpRewrite::default()
    };
    match &r.path {
        Some(p) if p.r#type == PathModifierType::ReplacePrefixMatch => {
            // Istio trims a trailing `/`; what is left empty means "remove the prefix".
            let v = p.replace_prefix_match.as_deref().unwrap_or("");
            let v = v.strip_suffix('/').unwrap_or(v);
            out.uri = if v.is_empty() {
                "/".into()
            } else {
                v.to_owned()
            };
        }
        Some(p) => {
            out.uri_regex_rewrite = Some(RegexRewrite {
                r#match: "/.*".into(),
                rewrite: p.replace_full_path.clone().unwrap_or_default(),
            });
        }
        None => {}
    }
    out
}

fn cors(c: &HttpCorsFilter) -> CorsPolicy {
    let origins = c
        .allow_origins
        .iter()
        .map(|o| {
            if o == "*" {
                regex(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s?#]+$")
            } else if o.contains('*') {
                let parts: Vec<String> = o.split('*').map(regex_escape).collect();
                regex(&format!("^{}$", parts.join(".*")))
            } else {
                StringMatch::Exact(o.clone())
            }
        })
        .collect();
    CorsPolicy {
        allow_origins: origins,
        allow_methods: c.allow_methods.clone(),
        allow_headers: c.allow_headers.clone(),
        expose_headers: c.expose_headers.clone(),
        max_age: c
            .max_age
            .and_then(|s| u64::try_from(s).ok())
            .map(|s| Duration::from_std(std::time::Duration::from_secs(s))),
        allow_credentials: c.allow_credentials.filter(|b| *b),
        unmatched_preflights: Some(UnmatchedPreflights::Ignore),
        ..CorsPolicy::default()
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn retries(r: &HttpRouteRetry) -> HttpRetry {
    if r.attempts == Some(0) {
        return HttpRetry::default();
    }
    let mut on = RETRY_ON.to_owned();
    for c in &r.codes {
        on.push_str(&format!(",{c}"));
    }
    HttpRetry {
        attempts: Some(r.attempts.unwrap_or(2)),
        retry_on: on,
        backoff: r
            .backoff
            .as_deref()
            .and_then(millis)
            .map(Duration::from_std),
        ..HttpRetry::default()
    }
}

/// A Gateway API duration (`1h2m3s4ms`) as a std duration.
fn millis(d: &str) -> Option<std::time::Duration> {
    let mut total = 0u64;
    let mut number = String::new();
    let mut chars = d.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().ok()?;
        number.clear();
        total += n * match c {
            'h' => 3_600_000,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1
            }
            'm' => 60_000,
            's' => 1_000,
            _ => return None,
        };
    }
    number
        .is_empty()
        .then(|| std::time::Duration::from_millis(total))
}
