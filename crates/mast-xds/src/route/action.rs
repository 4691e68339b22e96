//! What a route does: a VirtualService HTTP rule (per match block) as an Envoy `Route`
//! (`TranslateRoute` in Istio's `route/route.go`) — forward to one or weighted clusters with
//! rewrites, mirrors, timeouts, retries and hash policies, or answer with a redirect or a direct
//! response — plus the default route of a service no VirtualService names. VirtualServices
//! converted from the Kubernetes Gateway API get Istio's gateway semantics ([`semantics`]).

mod semantics;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::{
    ClusterSpecifier, HostRewriteSpecifier, RequestMirrorPolicy,
};
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::{ClusterWeight, cluster_weight};
use envoy_types::pb::envoy::config::route::v3::{
    Decorator, Route, RouteAction, WeightedCluster, route_action,
};
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use envoy_types::pb::google::protobuf::{BoolValue, Struct, UInt32Value, Value, value};
use mast_config::networking::virtual_service::{
    Destination, HttpMatchRequest, HttpRoute, HttpRouteDestination, VirtualService,
};
use mast_config::types::Duration;
use mast_core::Hostname;
use mast_model::gateway_api::uses_gateway_semantics;
use mast_model::{Config, Service};

use super::matching::{applies_to_gateways, is_catch_all, match_all, regex, route_match};
use super::policies::{
    self, header_ops, integer_to_fraction, no_timeout, pb_duration, percent_to_fraction,
};
use super::respond::{direct_response, redirect};
use super::{Scope, hash};
use crate::names;

/// The per-route filter config key of Envoy's fault filter.
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";
/// The per-route filter config key of Envoy's CORS filter.
pub const CORS_FILTER: &str = "envoy.filters.http.cors";
/// The name of the route a service gets when no VirtualService names it.
pub const DEFAULT_ROUTE_NAME: &str = "default";

/// The routes of one VirtualService on listener port `port`, in order: one per HTTP rule
/// without match, or per match block that applies to this proxy and port; nothing after a
/// catch-all. Delegating rules are skipped (delegation is not supported yet).
pub fn vs_routes(scope: &Scope<'_>, vs: &Config<VirtualService>, port: u16) -> Vec<Route> {
    let mut out = Vec::new();
    for http in &vs.spec.http {
        if http.delegate.is_some() {
            tracing::warn!(
                virtual_service = %format!("{}/{}", vs.namespace, vs.name),
                rule = %http.name,
                "delegate VirtualServices are not supported yet: rule skipped"
            );
            continue;
        }
        if http.r#match.is_empty() {
            out.extend(translate(scope, vs, http, None, port));
            break;
        }
        let mut catch_all = false;
        for m in http
            .r#match
            .iter()
            .filter(|m| applies_to_gateways(m, port, scope.proxy, &scope.gateways, &vs.namespace))
        {
            if let Some(route) = translate(scope, vs, http, Some(m), port) {
                catch_all = route.r#match.as_ref().is_some_and(is_catch_all);
                out.push(route);
                if catch_all {
                    break;
                }
            }
        }
        if catch_all {
            break;
        }
    }
    out
}

fn translate(
    scope: &Scope<'_>,
    vs: &Config<VirtualService>,
    http: &HttpRoute,
    m: Option<&HttpMatchRequest>,
    port: u16,
) -> Option<Route> {
    let gateway_semantics = uses_gateway_semantics(&vs.name);
    let mut route_match = route_match(m)?;
    if gateway_semantics {
        semantics::path_separated(&mut route_match);
    }
    let mut out = Route {
        name: match m {
            Some(m) if !m.name.is_empty() => format!("{}.{}", http.name, m.name),
            _ => http.name.clone(),
        },
        r#match: Some(route_match),
        metadata: Some(config_metadata(vs)),
        stat_prefix: m.map(|m| m.stat_prefix.clone()).unwrap_or_default(),
        ..Default::default()
    };
    let mut authority = None;
    if let Some(h) = &http.headers {
        let ops = header_ops(h);
        out.request_headers_to_add = ops.request_add;
        out.request_headers_to_remove = ops.request_remove;
        out.response_headers_to_add = ops.response_add;
        out.response_headers_to_remove = ops.response_remove;
        authority = ops.authority;
    }
    let fault = http.fault.as_ref().and_then(policies::fault);
    let action = if let Some(r) = &http.redirect {
        let mut action = redirect(r, port)?;
        if gateway_semantics {
            semantics::redirect_prefix(&r.uri, &mut action);
        }
        Action::Redirect(action)
    } else if let Some(d) = &http.direct_response {
        Action::DirectResponse(direct_response(d)?)
    } else {
        let ctx = ActionCtx {
            scope,
            vs,
            http,
            port,
            faulted: fault.is_some(),
        };
        Action::Route(route_action(&ctx, authority, &mut out)?)
    };
    out.action = Some(action);
    out.decorator = Some(Decorator {
        operation: operation(&out, &vs.name, port),
        propagate: None,
    });
    if let Some(f) = fault {
        out.typed_per_filter_config
            .insert(FAULT_FILTER.into(), envoy_types::util::pack_any(f));
    }
    if let Some(c) = &http.cors_policy {
        out.typed_per_filter_config.insert(
            CORS_FILTER.into(),
            envoy_types::util::pack_any(policies::cors(c)),
        );
    }
    Some(out)
}

struct ActionCtx<'a, 'b> {
    scope: &'a Scope<'b>,
    vs: &'a Config<VirtualService>,
    http: &'a HttpRoute,
    port: u16,
    /// A fault is injected: Istio then enables neither the timeout nor retries.
    faulted: bool,
}

fn route_action(
    ctx: &ActionCtx<'_, '_>,
    mut authority: Option<String>,
    out: &mut Route,
) -> Option<RouteAction> {
    let http = ctx.http;
    if http.route.is_empty() {
        tracing::warn!(rule = %http.name, "HTTP rule with no route, redirect or directResponse: left out");
        return None;
    }
    let mut action = RouteAction::default();
    set_timeout(&mut action, if ctx.faulted { None } else { http.timeout });
    let gateway_semantics = uses_gateway_semantics(&ctx.vs.name);
    if gateway_semantics {
        // "A request to an invalid backend answers 500" (the Gateway API), as istiod sets it.
        action.cluster_not_found_response_code =
            route_action::ClusterNotFoundResponseCode::InternalServerError as i32;
    }
    if let Some(rw) = &http.rewrite {
        if let Some(rr) = &rw.uri_regex_rewrite {
            action.regex_rewrite = Some(RegexMatchAndSubstitute {
                pattern: Some(regex(&rr.r#match)),
                substitution: rr.rewrite.clone(),
            });
        } else if !rw.uri.is_empty() {
            action.prefix_rewrite = rw.uri.clone();
            if gateway_semantics {
                semantics::remove_prefix(&mut action, out.r#match.as_ref());
            }
        }
        if !rw.authority.is_empty() {
            authority = Some(rw.authority.clone());
        }
    }
    if let Some(a) = authority {
        action.host_rewrite_specifier = Some(HostRewriteSpecifier::HostRewriteLiteral(a));
    }
    action.request_mirror_policies = mirrors(ctx);
    let consistent_hash = if let [only] = http.route.as_slice() {
        single_destination(ctx, only, &mut action, out)
    } else {
        weighted_destinations(ctx, &mut action);
        false
    };
    if !ctx.faulted {
        action.retry_policy = policies::retry_policy(http.retries.as_ref(), consistent_hash);
    }
    Some(action)
}

/// Routes to one cluster; the destination's header operations join the route's. Returns
/// whether a consistent hash applies (it removes the previous-hosts retry predicate).
fn single_destination(
    ctx: &ActionCtx<'_, '_>,
    dst: &HttpRouteDestination,
    action: &mut RouteAction,
    out: &mut Route,
) -> bool {
    let host = destination_host(ctx.scope, ctx.vs, &dst.destination);
    action.cluster_specifier = Some(ClusterSpecifier::Cluster(cluster_name(
        ctx,
        &dst.destination,
        &host,
    )));
    if let Some(h) = &dst.headers {
        let ops = header_ops(h);
        out.request_headers_to_add.extend(ops.request_add);
        out.request_headers_to_remove.extend(ops.request_remove);
        out.response_headers_to_add.extend(ops.response_add);
        out.response_headers_to_remove.extend(ops.response_remove);
        if let Some(a) = ops.authority
            && action.host_rewrite_specifier.is_none()
        {
            action.host_rewrite_specifier = Some(HostRewriteSpecifier::HostRewriteLiteral(a));
        }
    }
    let hash = destination_hash(ctx, &dst.destination, &host);
    let found = hash.is_some();
    action.hash_policy.extend(hash);
    found
}

/// Relative weights over several clusters; zero-weight destinations are left out (when all
/// are zero, every destination gets an equal share rather than an invalid route).
fn weighted_destinations(ctx: &ActionCtx<'_, '_>, action: &mut RouteAction) {
    let positive: Vec<&HttpRouteDestination> = ctx
        .http
        .route
        .iter()
        .filter(|d| d.weight.unwrap_or(0) > 0)
        .collect();
    let equal = positive.is_empty();
    if equal {
        tracing::warn!(rule = %ctx.http.name, "all destination weights are 0: splitting equally");
    }
    let chosen: Vec<&HttpRouteDestination> = if equal {
        ctx.http.route.iter().collect()
    } else {
        positive
    };
    let mut clusters = Vec::with_capacity(chosen.len());
    for dst in chosen {
        let weight = if equal {
            1
        } else {
            u32::try_from(dst.weight.unwrap_or(1)).unwrap_or(u32::MAX)
        };
        let host = destination_host(ctx.scope, ctx.vs, &dst.destination);
        let mut cw = ClusterWeight {
            name: cluster_name(ctx, &dst.destination, &host),
            weight: Some(UInt32Value { value: weight }),
            ..Default::default()
        };
        if let Some(h) = &dst.headers {
            let ops = header_ops(h);
            cw.request_headers_to_add = ops.request_add;
            cw.request_headers_to_remove = ops.request_remove;
            cw.response_headers_to_add = ops.response_add;
            cw.response_headers_to_remove = ops.response_remove;
            cw.host_rewrite_specifier = ops
                .authority
                .map(cluster_weight::HostRewriteSpecifier::HostRewriteLiteral);
        }
        action
            .hash_policy
            .extend(destination_hash(ctx, &dst.destination, &host));
        clusters.push(cw);
    }
    action.cluster_specifier = Some(ClusterSpecifier::WeightedClusters(WeightedCluster {
        clusters,
        ..Default::default()
    }));
}

/// The hash policy for `dst`, whose host qualified is `host`.
fn destination_hash(
    ctx: &ActionCtx<'_, '_>,
    dst: &Destination,
    host: &Hostname,
) -> Option<envoy_types::pb::envoy::config::route::v3::route_action::HashPolicy> {
    let port = dst
        .port
        .as_ref()
        .and_then(|p| p.number)
        .and_then(|n| u16::try_from(n).ok());
    hash::for_destination(ctx.scope, host, &dst.subset, port)
}

/// The destination host, short names qualified with the VirtualService's namespace.
pub fn destination_host(
    scope: &Scope<'_>,
    vs: &Config<VirtualService>,
    dst: &Destination,
) -> Hostname {
    Hostname::new_unchecked(dst.host.as_str())
        .resolve(&vs.namespace, &scope.snapshot.options.domain_suffix)
}

/// `outbound|<port>|<subset>|<host>`: the destination's port, else the service's only port,
/// else the listener port (Istio's `GetDestinationCluster`); `host` is the destination's host
/// qualified ([`destination_host`]).
fn cluster_name(ctx: &ActionCtx<'_, '_>, dst: &Destination, host: &Hostname) -> String {
    let explicit = dst
        .port
        .as_ref()
        .and_then(|p| p.number)
        .and_then(|n| u16::try_from(n).ok());
    let port = explicit
        .or_else(|| {
            ctx.scope.lookup(host).and_then(|s| {
                if let [only] = s.ports.as_slice() {
                    Some(only.port)
                } else {
                    None
                }
            })
        })
        .unwrap_or(ctx.port);
    names::outbound_cluster(port, &dst.subset, host)
}

/// The cluster of a mirror destination.
fn mirror_cluster(ctx: &ActionCtx<'_, '_>, dst: &Destination) -> String {
    cluster_name(ctx, dst, &destination_host(ctx.scope, ctx.vs, dst))
}

fn mirrors(ctx: &ActionCtx<'_, '_>) -> Vec<RequestMirrorPolicy> {
    let http = ctx.http;
    let mut out = Vec::new();
    if let Some(m) = &http.mirror {
        let fraction = match (http.mirror_percentage, http.mirror_percent) {
            (Some(p), _) => (p.value > 0.0).then(|| percent_to_fraction(p)),
            (None, Some(p)) => (p > 0).then(|| integer_to_fraction(p)),
            (None, None) => Some(integer_to_fraction(100)),
        };
        out.extend(fraction.map(|f| mirror_policy(mirror_cluster(ctx, m), f)));
    }
    for m in &http.mirrors {
        let fraction = match m.percentage {
            Some(p) => (p.value > 0.0).then(|| percent_to_fraction(p)),
            None => Some(integer_to_fraction(100)),
        };
        out.extend(fraction.map(|f| mirror_policy(mirror_cluster(ctx, &m.destination), f)));
    }
    out
}

fn mirror_policy(
    cluster: String,
    fraction: envoy_types::pb::envoy::r#type::v3::FractionalPercent,
) -> RequestMirrorPolicy {
    RequestMirrorPolicy {
        cluster,
        runtime_fraction: Some(policies::runtime_fraction(fraction)),
        trace_sampled: Some(BoolValue { value: false }),
        disable_shadow_host_suffix_append: true,
        ..Default::default()
    }
}

/// The route timeout (0 = none, Istio's default) and, as current Istio sets it, the same
/// bound for streams and for the `grpc-timeout` header (`max_stream_duration`, which
/// replaces the deprecated `max_grpc_timeout`).
fn set_timeout(action: &mut RouteAction, timeout: Option<Duration>) {
    let t = timeout.map_or_else(no_timeout, |d| pb_duration(d.as_std()));
    action.max_stream_duration = Some(route_action::MaxStreamDuration {
        max_stream_duration: Some(t),
        grpc_timeout_header_max: Some(t),
        grpc_timeout_header_offset: None,
    });
    action.timeout = Some(t);
}

/// Istio's trace operation: `<host>:<port><path>` for a single `outbound|…` cluster, else
/// `<virtual service>:<listener port><path>`.
fn operation(route: &Route, vs_name: &str, port: u16) -> String {
    let (path, star) = match route
        .r#match
        .as_ref()
        .and_then(|m| m.path_specifier.as_ref())
    {
        Some(PathSpecifier::Prefix(p)) => (p.as_str(), "*"),
        Some(PathSpecifier::Path(p)) => (p.as_str(), ""),
        Some(PathSpecifier::SafeRegex(r)) => (r.regex.as_str(), ""),
        _ => ("/*", ""),
    };
    let single = match &route.action {
        Some(Action::Route(RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster(c)),
            ..
        })) => names::parse_outbound_cluster(c).map(|(p, _, h)| {
            names::concat(&[h, ":", names::PortDigits::new(p).as_str(), path, star])
        }),
        _ => None,
    };
    single.unwrap_or_else(|| {
        names::concat(&[
            vs_name,
            ":",
            names::PortDigits::new(port).as_str(),
            path,
            star,
        ])
    })
}

/// `istio.config`: the VirtualService a route came from, as Istio records it (istioctl reads it).
fn config_metadata(vs: &Config<VirtualService>) -> Metadata {
    let path = names::concat(&[
        "/apis/networking.istio.io/v1alpha3/namespaces/",
        &vs.namespace,
        "/virtual-service/",
        &vs.name,
    ]);
    let fields = HashMap::from([(
        "config".to_owned(),
        Value {
            kind: Some(value::Kind::StringValue(path)),
        },
    )]);
    Metadata {
        filter_metadata: HashMap::from([("istio".to_owned(), Struct { fields })]),
        ..Default::default()
    }
}

/// The route of a service port no VirtualService claims: everything to
/// `outbound|<port>||<host>` with Istio's default retries, no timeout (`timeout` and
/// `max_stream_duration` 0s) and the DestinationRule's consistent hash, if any.
pub fn default_route(scope: &Scope<'_>, svc: &Service, port: u16) -> Route {
    let mut action = RouteAction {
        cluster_specifier: Some(ClusterSpecifier::Cluster(names::outbound_cluster(
            port,
            "",
            &svc.hostname,
        ))),
        retry_policy: policies::retry_policy(None, false),
        ..Default::default()
    };
    set_timeout(&mut action, None);
    action
        .hash_policy
        .extend(hash::for_destination(scope, &svc.hostname, "", Some(port)));
    Route {
        name: DEFAULT_ROUTE_NAME.into(),
        r#match: Some(match_all()),
        decorator: Some(Decorator {
            operation: names::concat(&[
                svc.hostname.as_str(),
                ":",
                names::PortDigits::new(port).as_str(),
                "/*",
            ]),
            propagate: None,
        }),
        action: Some(Action::Route(action)),
        ..Default::default()
    }
}

/// A route with no timeout to `cluster` (the catch-all's passthrough).
pub fn passthrough_action(cluster: &str) -> RouteAction {
    let mut action = RouteAction {
        cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.into())),
        ..Default::default()
    };
    set_timeout(&mut action, None);
    action
}
