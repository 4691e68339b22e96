//! `RouteConfiguration` → [`RouteTable`]: walks the table, its virtual hosts and routes,
//! refuses every field mast-proxy does not implement (naming it), and hands the parts to the
//! submodules that compile them.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::route::v3::route::Action as PbAction;
use envoy_types::pb::envoy::config::route::v3::{
    Route as PbRoute, RouteConfiguration, VirtualHost as PbVirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::google::protobuf::Any;

use super::action::Forward;
use super::cors::Cors;
use super::fault::Fault;
use super::headers::HeaderMutation;
use super::matcher::RouteMatcher;
use super::proto::{Ctx, decode_any, join, set};
use super::redirect::{DirectResponse, Redirect};
use super::vhost::DomainIndex;
use super::{Action, RequireTls, Route, RouteTable, VirtualHost};
use crate::error::ConfigError;

/// The fault filter's name in `typed_per_filter_config`.
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";
/// The CORS filter's name in `typed_per_filter_config`.
pub const CORS_FILTER: &str = "envoy.filters.http.cors";

/// Envoy's default `max_direct_response_body_size_bytes`.
const DEFAULT_MAX_DIRECT_BODY: usize = 4096;

/// Converts a whole table.
pub(crate) fn table(rc: &RouteConfiguration) -> Result<RouteTable, ConfigError> {
    let RouteConfiguration {
        name,
        virtual_hosts,
        vhds,
        internal_only_headers,
        response_headers_to_add,
        response_headers_to_remove,
        request_headers_to_add,
        request_headers_to_remove,
        most_specific_header_mutations_wins,
        validate_clusters: _,
        max_direct_response_body_size_bytes,
        cluster_specifier_plugins,
        request_mirror_policies,
        ignore_port_in_host_matching,
        vhost_header,
        ignore_path_parameters_in_path_matching,
        typed_per_filter_config,
        metadata: _,
        route_specifiers,
    } = rc;
    let ctx = Ctx { name };
    ctx.deny(
        "",
        &[
            ("vhds", vhds.is_some()),
            ("internal_only_headers", !internal_only_headers.is_empty()),
            (
                "response_headers_to_add",
                !response_headers_to_add.is_empty(),
            ),
            (
                "response_headers_to_remove",
                !response_headers_to_remove.is_empty(),
            ),
            ("request_headers_to_add", !request_headers_to_add.is_empty()),
            (
                "request_headers_to_remove",
                !request_headers_to_remove.is_empty(),
            ),
            (
                "most_specific_header_mutations_wins",
                set(most_specific_header_mutations_wins),
            ),
            (
                "cluster_specifier_plugins",
                !cluster_specifier_plugins.is_empty(),
            ),
            (
                "request_mirror_policies",
                !request_mirror_policies.is_empty(),
            ),
            ("vhost_header", !vhost_header.is_empty()),
            (
                "ignore_path_parameters_in_path_matching",
                set(ignore_path_parameters_in_path_matching),
            ),
            (
                "typed_per_filter_config",
                !typed_per_filter_config.is_empty(),
            ),
            ("route_specifiers", !route_specifiers.is_empty()),
        ],
    )?;
    let max_body = max_direct_response_body_size_bytes
        .as_ref()
        .map_or(DEFAULT_MAX_DIRECT_BODY, |v| v.value as usize);
    let mut index = DomainIndex::default();
    let mut vhosts = Vec::with_capacity(virtual_hosts.len());
    for (i, vh) in virtual_hosts.iter().enumerate() {
        index.add(ctx, i, &vh.domains)?;
        vhosts.push(virtual_host(
            ctx,
            &format!("virtual_hosts[{i}]"),
            vh,
            max_body,
        )?);
    }
    index.finish();
    Ok(RouteTable {
        name: name.clone(),
        vhosts,
        index,
        max_direct_response_body_size: max_body,
        ignore_port_in_host_matching: *ignore_port_in_host_matching,
    })
}

#[allow(deprecated)]
fn virtual_host(
    ctx: Ctx<'_>,
    path: &str,
    vh: &PbVirtualHost,
    max_body: usize,
) -> Result<VirtualHost, ConfigError> {
    let PbVirtualHost {
        name,
        domains: _,
        routes,
        matcher,
        require_tls,
        virtual_clusters: _,
        rate_limits,
        request_headers_to_add,
        request_headers_to_remove,
        response_headers_to_add,
        response_headers_to_remove,
        cors,
        typed_per_filter_config,
        include_request_attempt_count,
        include_attempt_count_in_response,
        retry_policy,
        retry_policy_typed_config,
        hedge_policy,
        include_is_timeout_retry_header,
        per_request_buffer_limit_bytes,
        request_body_buffer_limit,
        request_mirror_policies,
        metadata: _,
        route_specifiers,
    } = vh;
    ctx.deny(
        path,
        &[
            ("matcher", matcher.is_some()),
            ("rate_limits", !rate_limits.is_empty()),
            ("request_headers_to_add", !request_headers_to_add.is_empty()),
            (
                "request_headers_to_remove",
                !request_headers_to_remove.is_empty(),
            ),
            (
                "response_headers_to_add",
                !response_headers_to_add.is_empty(),
            ),
            (
                "response_headers_to_remove",
                !response_headers_to_remove.is_empty(),
            ),
            ("cors", cors.is_some()),
            (
                "typed_per_filter_config",
                !typed_per_filter_config.is_empty(),
            ),
            (
                "include_request_attempt_count",
                set(include_request_attempt_count),
            ),
            (
                "include_attempt_count_in_response",
                set(include_attempt_count_in_response),
            ),
            ("retry_policy", retry_policy.is_some()),
            (
                "retry_policy_typed_config",
                retry_policy_typed_config.is_some(),
            ),
            ("hedge_policy", hedge_policy.is_some()),
            (
                "include_is_timeout_retry_header",
                set(include_is_timeout_retry_header),
            ),
            (
                "per_request_buffer_limit_bytes",
                per_request_buffer_limit_bytes.is_some(),
            ),
            (
                "request_body_buffer_limit",
                request_body_buffer_limit.is_some(),
            ),
            (
                "request_mirror_policies",
                !request_mirror_policies.is_empty(),
            ),
            ("route_specifiers", !route_specifiers.is_empty()),
        ],
    )?;
    let routes = routes
        .iter()
        .enumerate()
        .map(|(i, r)| route(ctx, &format!("{path}.routes[{i}]"), r, max_body))
        .collect::<Result<_, _>>()?;
    let require_tls = match require_tls {
        0 => RequireTls::None,
        1 => RequireTls::ExternalOnly,
        2 => RequireTls::All,
        v => {
            return Err(ctx.err(format!("{path}.require_tls"), format!("unknown value {v}")));
        }
    };
    let ssl_redirect = match require_tls {
        RequireTls::None => None,
        _ => Some(ssl_redirect_route(ctx, path)?),
    };
    Ok(VirtualHost {
        name: name.clone(),
        routes,
        require_tls,
        ssl_redirect,
    })
}

/// The route Envoy answers with when `require_tls` redirects (matches everything).
fn ssl_redirect_route(ctx: Ctx<'_>, path: &str) -> Result<Route, ConfigError> {
    use envoy_types::pb::envoy::config::route::v3::{RouteMatch, route_match::PathSpecifier};
    let all = RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix("/".into())),
        ..RouteMatch::default()
    };
    Ok(Route {
        name: String::new(),
        action: Action::Redirect(Redirect::ssl()),
        request_headers: HeaderMutation::default(),
        response_headers: HeaderMutation::default(),
        fault: None,
        cors: None,
        decorator: None,
        stat_prefix: None,
        matcher: RouteMatcher::from_proto(ctx, path, &all)?,
        rewrite: None,
    })
}

#[allow(deprecated)]
fn route(ctx: Ctx<'_>, path: &str, r: &PbRoute, max_body: usize) -> Result<Route, ConfigError> {
    let PbRoute {
        name,
        r#match,
        metadata: _,
        decorator,
        typed_per_filter_config,
        request_headers_to_add,
        request_headers_to_remove,
        response_headers_to_add,
        response_headers_to_remove,
        tracing,
        per_request_buffer_limit_bytes,
        stat_prefix,
        request_body_buffer_limit,
        route_specifiers,
        action,
    } = r;
    ctx.deny(
        path,
        &[
            ("tracing", tracing.is_some()),
            (
                "per_request_buffer_limit_bytes",
                per_request_buffer_limit_bytes.is_some(),
            ),
            (
                "request_body_buffer_limit",
                request_body_buffer_limit.is_some(),
            ),
            ("route_specifiers", !route_specifiers.is_empty()),
        ],
    )?;
    let Some(m) = r#match else {
        return Err(ctx.err(join(path, "match"), "required"));
    };
    let matcher = RouteMatcher::from_proto(ctx, &join(path, "match"), m)?;
    let (action, rewrite) = match action {
        Some(PbAction::Route(a)) => {
            let (f, rw) = Forward::from_proto(ctx, &join(path, "route"), a)?;
            (Action::Forward(f), rw)
        }
        Some(PbAction::Redirect(rd)) => (
            Action::Redirect(Redirect::from_proto(
                ctx,
                &join(path, "redirect"),
                rd,
                &matcher.path,
            )?),
            None,
        ),
        Some(PbAction::DirectResponse(d)) => (
            Action::Direct(DirectResponse::from_proto(
                ctx,
                &join(path, "direct_response"),
                d,
                max_body,
            )?),
            None,
        ),
        Some(PbAction::FilterAction(_)) => {
            return Err(ctx.err(join(path, "filter_action"), "not supported by mast-proxy"));
        }
        Some(PbAction::NonForwardingAction(_)) => {
            return Err(ctx.err(
                join(path, "non_forwarding_action"),
                "not supported by mast-proxy",
            ));
        }
        None => return Err(ctx.err(path, "no action")),
    };
    let (fault, cors) = filters(
        ctx,
        &join(path, "typed_per_filter_config"),
        typed_per_filter_config,
    )?;
    Ok(Route {
        name: name.clone(),
        action,
        request_headers: HeaderMutation::from_fields(
            ctx,
            path,
            "request",
            request_headers_to_add,
            request_headers_to_remove,
        )?,
        response_headers: HeaderMutation::from_fields(
            ctx,
            path,
            "response",
            response_headers_to_add,
            response_headers_to_remove,
        )?,
        fault,
        cors,
        decorator: decorator
            .as_ref()
            .map(|d| d.operation.clone())
            .filter(|o| !o.is_empty()),
        stat_prefix: (!stat_prefix.is_empty()).then(|| stat_prefix.clone()),
        matcher,
        rewrite,
    })
}

/// The per-route fault and CORS configs; any other filter is refused.
fn filters(
    ctx: Ctx<'_>,
    path: &str,
    configs: &HashMap<String, Any>,
) -> Result<(Option<Fault>, Option<Cors>), ConfigError> {
    let mut names: Vec<&String> = configs.keys().collect();
    names.sort();
    let (mut fault, mut cors) = (None, None);
    for name in names {
        let p = format!("{path}[{name:?}]");
        let any = &configs[name];
        match name.as_str() {
            FAULT_FILTER => {
                let f: HttpFault = decode_any(ctx, &p, any)?;
                fault = Some(Fault::from_proto(ctx, &p, &f)?);
            }
            CORS_FILTER => {
                let c: CorsPolicy = decode_any(ctx, &p, any)?;
                cors = Some(Cors::from_proto(ctx, &p, &c)?);
            }
            _ => {
                return Err(ctx.err(
                    p,
                    "no such filter in mast-proxy (only fault and CORS are configured per route)",
                ));
            }
        }
    }
    Ok((fault, cors))
}
