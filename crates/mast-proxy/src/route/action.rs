//! Forwarding routes (`RouteAction`): destinations (one cluster or weighted clusters with
//! their own header mutations and host rewrite), timeouts, rewrites, mirrors, retries, hash
//! policies and upgrades. Fields mastd never emits that would change behaviour are refused.

use std::net::IpAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::RouteAction;
use envoy_types::pb::envoy::config::route::v3::route_action::{
    HostRewriteSpecifier, MaxStreamDuration, RequestMirrorPolicy, UpgradeConfig,
};
use http::{HeaderValue, StatusCode};

use super::RequestHead;
pub use super::destination::Destination;
use super::destination::{Destinations, host_value};
use super::hash::{HashRule, hash};
use super::proto::{Ctx, Fraction, join, opt_duration, set};
use super::retry::RetryPolicy;
use super::rewrite::PathRewrite;
use crate::error::ConfigError;

/// Envoy's route timeout when `timeout` is unset.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// A request mirror (shadow) policy.
#[derive(Clone, Debug)]
pub struct Mirror {
    /// The cluster that receives the copy.
    pub cluster: String,
    /// Whether the copy's authority gets Envoy's `-shadow` host suffix
    /// (`!disable_shadow_host_suffix_append`; mastd disables it).
    pub shadow_host_suffix: bool,
    fraction: Fraction,
}

impl Mirror {
    /// Whether a request with this random value is mirrored (Envoy: `random % denominator <
    /// numerator` of `runtime_fraction.default_value`; 100% when unset).
    pub fn sampled(&self, random: u64) -> bool {
        self.fraction.hit(random)
    }
}

/// A route that forwards upstream.
#[derive(Clone, Debug)]
pub struct Forward {
    /// The route timeout (`None` = no route timeout, "0s"); Envoy's 15 s when unset.
    pub timeout: Option<Duration>,
    /// `host_rewrite_literal`: the authority sent upstream.
    pub host_rewrite: Option<HeaderValue>,
    /// Request mirrors.
    pub mirrors: Vec<Mirror>,
    /// The retry policy, if any.
    pub retry: Option<RetryPolicy>,
    /// upgrade_configs CONNECT with connect_config: terminate CONNECT, tunnel TCP.
    pub connect: bool,
    /// Other route-level upgrade types enabled (lowercase), if any; `"connect"` here means
    /// CONNECT forwarded as a request (no `connect_config`).
    pub upgrades: Vec<String>,
    /// `max_stream_duration.max_stream_duration` (`None`: unset or 0).
    pub max_stream_duration: Option<Duration>,
    /// `max_stream_duration.grpc_timeout_header_max` (`None`: unset or 0; see Envoy's docs
    /// for how 0 lets `grpc-timeout` apply uncapped).
    pub grpc_timeout_header_max: Option<Duration>,
    /// Whether `grpc_timeout_header_max` was set at all (Envoy only honours `grpc-timeout`
    /// when it is).
    pub grpc_timeout_header_set: bool,
    /// `cluster_not_found_response_code`: the status when the picked cluster does not exist
    /// (503 by default; istiod asks 500 for Gateway API routes).
    pub cluster_not_found: StatusCode,
    destinations: Destinations,
    hash_rules: Vec<HashRule>,
}

impl Forward {
    /// The destination: the single cluster, or a weighted pick with `random` (Envoy: random % total).
    pub fn pick(&self, random: u64) -> &Destination {
        self.destinations.pick(random)
    }

    /// Every destination cluster, in configuration order.
    pub fn clusters(&self) -> impl Iterator<Item = &str> {
        self.destinations.clusters()
    }

    /// The consistent-hash key from hash_policy (header, cookie (value only; no cookie
    /// generation needed), connection_properties.source_ip, query_parameter), combined as Envoy
    /// does; None when no policy yields a value.
    pub fn hash(&self, req: &RequestHead<'_>, source_ip: Option<IpAddr>) -> Option<u64> {
        if self.hash_rules.is_empty() {
            return None;
        }
        hash(&self.hash_rules, req, source_ip)
    }

    /// Converts a `RouteAction` at `path`; returns the path rewrite as well.
    pub(crate) fn from_proto(
        ctx: Ctx<'_>,
        path: &str,
        a: &RouteAction,
    ) -> Result<(Self, Option<PathRewrite>), ConfigError> {
        refuse_unsupported(ctx, path, a)?;
        let rewrite =
            PathRewrite::from_proto(ctx, path, &a.prefix_rewrite, a.regex_rewrite.as_ref())?;
        let destinations = Destinations::from_proto(ctx, path, a.cluster_specifier.as_ref())?;
        let host_rewrite = match &a.host_rewrite_specifier {
            Some(HostRewriteSpecifier::HostRewriteLiteral(h)) => {
                Some(host_value(ctx, &join(path, "host_rewrite_literal"), h)?)
            }
            Some(_) => {
                return Err(ctx.err(
                    join(path, "host_rewrite_specifier"),
                    "only host_rewrite_literal is supported",
                ));
            }
            None => None,
        };
        let timeout = match &a.timeout {
            Some(t) => opt_duration(ctx, &join(path, "timeout"), Some(t))?,
            None => Some(DEFAULT_TIMEOUT),
        };
        let retry = match &a.retry_policy {
            Some(r) => Some(RetryPolicy::from_proto(
                ctx,
                &join(path, "retry_policy"),
                r,
            )?),
            None => None,
        };
        let mirrors = a
            .request_mirror_policies
            .iter()
            .enumerate()
            .map(|(i, m)| mirror(ctx, &format!("{path}.request_mirror_policies[{i}]"), m))
            .collect::<Result<_, _>>()?;
        let hash_rules = a
            .hash_policy
            .iter()
            .enumerate()
            .map(|(i, h)| HashRule::from_proto(ctx, &format!("{path}.hash_policy[{i}]"), h))
            .collect::<Result<_, _>>()?;
        let (connect, upgrades) = upgrades(ctx, path, &a.upgrade_configs)?;
        let (max_stream, grpc_max, grpc_set) = stream_duration(
            ctx,
            &join(path, "max_stream_duration"),
            a.max_stream_duration.as_ref(),
        )?;
        let cluster_not_found = match a.cluster_not_found_response_code {
            0 => StatusCode::SERVICE_UNAVAILABLE,
            1 => StatusCode::NOT_FOUND,
            2 => StatusCode::INTERNAL_SERVER_ERROR,
            other => {
                return Err(ctx.err(
                    join(path, "cluster_not_found_response_code"),
                    format!("unknown value {other}"),
                ));
            }
        };
        let forward = Forward {
            timeout,
            cluster_not_found,
            host_rewrite,
            mirrors,
            retry,
            connect,
            upgrades,
            max_stream_duration: max_stream,
            grpc_timeout_header_max: grpc_max,
            grpc_timeout_header_set: grpc_set,
            destinations,
            hash_rules,
        };
        Ok((forward, rewrite))
    }
}

fn mirror(ctx: Ctx<'_>, path: &str, m: &RequestMirrorPolicy) -> Result<Mirror, ConfigError> {
    // runtime_key: no runtime, the default applies; trace_sampled only affects tracing.
    ctx.deny(
        path,
        &[
            ("cluster_header", !m.cluster_header.is_empty()),
            (
                "request_headers_mutations",
                !m.request_headers_mutations.is_empty(),
            ),
            ("host_rewrite_literal", !m.host_rewrite_literal.is_empty()),
        ],
    )?;
    if m.cluster.is_empty() {
        return Err(ctx.err(join(path, "cluster"), "empty cluster name"));
    }
    let fraction = match m
        .runtime_fraction
        .as_ref()
        .and_then(|r| r.default_value.as_ref())
    {
        Some(f) => Fraction::from_proto(ctx, &join(path, "runtime_fraction.default_value"), f)?,
        None => Fraction::ALWAYS,
    };
    Ok(Mirror {
        cluster: m.cluster.clone(),
        shadow_host_suffix: !m.disable_shadow_host_suffix_append,
        fraction,
    })
}

fn upgrades(
    ctx: Ctx<'_>,
    path: &str,
    configs: &[UpgradeConfig],
) -> Result<(bool, Vec<String>), ConfigError> {
    let mut connect = false;
    let mut others = Vec::new();
    for (i, u) in configs.iter().enumerate() {
        let p = format!("{path}.upgrade_configs[{i}]");
        if u.enabled.is_some_and(|e| !e.value) {
            return Err(ctx.err(
                join(&p, "enabled"),
                "disabling an upgrade per route is not supported",
            ));
        }
        let kind = u.upgrade_type.to_ascii_lowercase();
        match &u.connect_config {
            Some(cc) => {
                ctx.deny(
                    &join(&p, "connect_config"),
                    &[
                        ("proxy_protocol_config", cc.proxy_protocol_config.is_some()),
                        ("allow_post", cc.allow_post),
                    ],
                )?;
                if kind != "connect" {
                    return Err(ctx.err(join(&p, "connect_config"), "only valid for CONNECT"));
                }
                connect = true;
            }
            None if kind.is_empty() => return Err(ctx.err(join(&p, "upgrade_type"), "empty")),
            None => others.push(kind),
        }
    }
    Ok((connect, others))
}

fn stream_duration(
    ctx: Ctx<'_>,
    path: &str,
    m: Option<&MaxStreamDuration>,
) -> Result<(Option<Duration>, Option<Duration>, bool), ConfigError> {
    let Some(m) = m else {
        return Ok((None, None, false));
    };
    ctx.deny(
        path,
        &[(
            "grpc_timeout_header_offset",
            m.grpc_timeout_header_offset.is_some(),
        )],
    )?;
    Ok((
        opt_duration(
            ctx,
            &join(path, "max_stream_duration"),
            m.max_stream_duration.as_ref(),
        )?,
        opt_duration(
            ctx,
            &join(path, "grpc_timeout_header_max"),
            m.grpc_timeout_header_max.as_ref(),
        )?,
        m.grpc_timeout_header_max.is_some(),
    ))
}

/// Refuses the `RouteAction` fields mast-proxy does not implement. The exhaustive
/// destructuring makes a new proto field a compile error here, not a silent omission.
#[allow(deprecated)]
fn refuse_unsupported(ctx: Ctx<'_>, path: &str, a: &RouteAction) -> Result<(), ConfigError> {
    let RouteAction {
        cluster_not_found_response_code: _,
        metadata_match,
        prefix_rewrite: _,
        regex_rewrite: _,
        path_rewrite_policy,
        path_rewrite,
        append_x_forwarded_host,
        timeout: _,
        idle_timeout,
        flush_timeout,
        early_data_policy,
        retry_policy: _,
        retry_policy_typed_config,
        request_mirror_policies: _,
        priority,
        rate_limits,
        include_vh_rate_limits,
        hash_policy: _,
        cors,
        max_grpc_timeout,
        grpc_timeout_offset,
        upgrade_configs: _,
        internal_redirect_policy,
        internal_redirect_action,
        max_internal_redirects,
        hedge_policy,
        max_stream_duration: _,
        cluster_specifier: _,
        host_rewrite_specifier: _,
    } = a;
    ctx.deny(
        path,
        &[
            ("metadata_match", metadata_match.is_some()),
            ("path_rewrite_policy", path_rewrite_policy.is_some()),
            ("path_rewrite", !path_rewrite.is_empty()),
            ("append_x_forwarded_host", set(append_x_forwarded_host)),
            ("idle_timeout", idle_timeout.is_some()),
            ("flush_timeout", flush_timeout.is_some()),
            ("early_data_policy", early_data_policy.is_some()),
            (
                "retry_policy_typed_config",
                retry_policy_typed_config.is_some(),
            ),
            ("priority", set(priority)),
            ("rate_limits", !rate_limits.is_empty()),
            ("include_vh_rate_limits", include_vh_rate_limits.is_some()),
            ("cors", cors.is_some()),
            ("max_grpc_timeout", max_grpc_timeout.is_some()),
            ("grpc_timeout_offset", grpc_timeout_offset.is_some()),
            (
                "internal_redirect_policy",
                internal_redirect_policy.is_some(),
            ),
            ("internal_redirect_action", set(internal_redirect_action)),
            ("max_internal_redirects", max_internal_redirects.is_some()),
            ("hedge_policy", hedge_policy.is_some()),
        ],
    )
}
