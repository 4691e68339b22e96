//! Retry policy (`RouteAction.retry_policy`) with Envoy's decisions: which responses and
//! which failures without a response are retriable under `retry_on`, and the jittered
//! exponential back-off. Counting attempts and budgets is the router's job.

use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::RetryPolicy as PbRetryPolicy;
use envoy_types::pb::envoy::config::route::v3::retry_policy::{
    RetryHostPredicate, RetryPriority, retry_host_predicate, retry_priority,
};
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
use http::{HeaderMap, StatusCode};

use super::proto::{Ctx, decode_any, duration, join, opt_duration, set};
use crate::error::ConfigError;

const PREVIOUS_HOSTS: &str = "envoy.retry_host_predicates.previous_hosts";
const PREVIOUS_PRIORITIES: &str = "envoy.retry_priorities.previous_priorities";

/// The `retry_on` conditions, one bit each.
mod on {
    pub const X5XX: u32 = 1;
    pub const GATEWAY_ERROR: u32 = 1 << 1;
    pub const RESET: u32 = 1 << 2;
    pub const CONNECT_FAILURE: u32 = 1 << 3;
    pub const RETRIABLE_4XX: u32 = 1 << 4;
    pub const REFUSED_STREAM: u32 = 1 << 5;
    pub const RETRIABLE_STATUS_CODES: u32 = 1 << 6;
    pub const ENVOY_RATELIMITED: u32 = 1 << 7;
    pub const GRPC_CANCELLED: u32 = 1 << 8;
    pub const GRPC_DEADLINE_EXCEEDED: u32 = 1 << 9;
    pub const GRPC_INTERNAL: u32 = 1 << 10;
    pub const GRPC_RESOURCE_EXHAUSTED: u32 = 1 << 11;
    pub const GRPC_UNAVAILABLE: u32 = 1 << 12;
    /// Only affects HTTP/3, which mast-proxy does not speak: accepted, never applies.
    pub const HTTP3_POST_CONNECT_FAILURE: u32 = 1 << 13;
    pub const ANY_GRPC: u32 = GRPC_CANCELLED
        | GRPC_DEADLINE_EXCEEDED
        | GRPC_INTERNAL
        | GRPC_RESOURCE_EXHAUSTED
        | GRPC_UNAVAILABLE;
}

fn condition(name: &str) -> Option<u32> {
    Some(match name {
        "5xx" => on::X5XX,
        "gateway-error" => on::GATEWAY_ERROR,
        "reset" => on::RESET,
        "connect-failure" => on::CONNECT_FAILURE,
        "retriable-4xx" => on::RETRIABLE_4XX,
        "refused-stream" => on::REFUSED_STREAM,
        "retriable-status-codes" => on::RETRIABLE_STATUS_CODES,
        "envoy-ratelimited" => on::ENVOY_RATELIMITED,
        "cancelled" => on::GRPC_CANCELLED,
        "deadline-exceeded" => on::GRPC_DEADLINE_EXCEEDED,
        "internal" => on::GRPC_INTERNAL,
        "resource-exhausted" => on::GRPC_RESOURCE_EXHAUSTED,
        "unavailable" => on::GRPC_UNAVAILABLE,
        "http3-post-connect-failure" => on::HTTP3_POST_CONNECT_FAILURE,
        _ => return None,
    })
}

/// How an upstream attempt failed without a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// The connection could not be established (or timed out connecting).
    ConnectFailure,
    /// The stream or connection was reset after it was established.
    Reset,
    /// HTTP/2 `REFUSED_STREAM`.
    RefusedStream,
    /// The per-try timeout fired.
    PerTryTimeout,
    /// A circuit breaker or pool overflowed: never retried.
    Overflow,
}

/// A route's retry policy.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// How many retries (not attempts) are allowed; Envoy's default is 1.
    pub num_retries: u32,
    /// The timeout of each attempt (`None`: only the route timeout applies).
    pub per_try_timeout: Option<Duration>,
    /// `retry_host_predicate` previous_hosts: a retry avoids hosts already tried.
    pub previous_hosts: bool,
    /// How many times host selection is reattempted to satisfy the predicate (at least 1).
    pub host_selection_max_attempts: u32,
    /// `retry_priority` previous_priorities: `Some(update_frequency)` when set (a retry
    /// avoids priorities already tried).
    pub previous_priorities: Option<u32>,
    on: u32,
    codes: Vec<u32>,
    base: Duration,
    max: Duration,
}

impl RetryPolicy {
    /// Whether a response is retriable (5xx, gateway-error, retriable-4xx, retriable-status-codes,
    /// and the gRPC conditions cancelled / deadline-exceeded / internal / resource-exhausted /
    /// unavailable read from the response's `grpc-status` header), as Envoy decides.
    /// A response carrying `x-envoy-overloaded` is never retried; one carrying
    /// `x-envoy-ratelimited` only under `envoy-ratelimited`.
    pub fn retry_on_response(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        if headers.contains_key("x-envoy-overloaded") {
            return false;
        }
        if headers.contains_key("x-envoy-ratelimited") {
            return self.has(on::ENVOY_RATELIMITED);
        }
        let code = status.as_u16();
        (self.has(on::X5XX) && status.is_server_error())
            || (self.has(on::GATEWAY_ERROR) && matches!(code, 502..=504))
            || (self.has(on::RETRIABLE_4XX) && code == 409)
            || (self.has(on::RETRIABLE_STATUS_CODES) && self.codes.contains(&u32::from(code)))
            || (self.on & on::ANY_GRPC != 0 && self.grpc_retriable(headers))
    }

    fn grpc_retriable(&self, headers: &HeaderMap) -> bool {
        let Some(status) = headers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok()?.parse::<u32>().ok())
        else {
            return false;
        };
        let bit = match status {
            1 => on::GRPC_CANCELLED,
            4 => on::GRPC_DEADLINE_EXCEEDED,
            8 => on::GRPC_RESOURCE_EXHAUSTED,
            13 => on::GRPC_INTERNAL,
            14 => on::GRPC_UNAVAILABLE,
            _ => return false,
        };
        self.has(bit)
    }

    /// Whether a failure without a response is retriable (Envoy: 5xx, gateway-error and reset
    /// cover connect failures, resets and per-try timeouts; connect-failure and refused-stream
    /// cover only their own case; an overflow is never retried).
    pub fn retry_on_failure(&self, failure: UpstreamFailure) -> bool {
        if failure == UpstreamFailure::Overflow {
            return false;
        }
        self.has(on::X5XX | on::GATEWAY_ERROR | on::RESET)
            || (failure == UpstreamFailure::ConnectFailure && self.has(on::CONNECT_FAILURE))
            || (failure == UpstreamFailure::RefusedStream && self.has(on::REFUSED_STREAM))
    }

    /// Envoy's jittered exponential back-off before retry `n` (1-based): base 25 ms unless
    /// retry_back_off sets it, max 10x base (or retry_back_off's max), full jitter: a uniform
    /// draw below `(2^n - 1) * base`, capped at the max, at millisecond granularity.
    pub fn back_off(&self, retry: u32) -> Duration {
        let base = self.base.as_millis().max(1) as u64;
        let max = self.max.as_millis() as u64;
        let multiplier = (1u64 << retry.clamp(1, 32)) - 1;
        let ceiling = multiplier.saturating_mul(base);
        Duration::from_millis(fastrand::u64(..ceiling).min(max))
    }

    fn has(&self, bits: u32) -> bool {
        self.on & bits != 0
    }

    /// Converts a `RetryPolicy` at `path`.
    pub(crate) fn from_proto(
        ctx: Ctx<'_>,
        path: &str,
        p: &PbRetryPolicy,
    ) -> Result<Self, ConfigError> {
        refuse_unsupported(ctx, path, p)?;
        let mut bits = 0;
        for cond in p
            .retry_on
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            bits |= condition(cond).ok_or_else(|| {
                ctx.err(
                    join(path, "retry_on"),
                    format!("condition {cond:?} is not supported"),
                )
            })?;
        }
        let (base, max) = back_off(
            ctx,
            &join(path, "retry_back_off"),
            p.retry_back_off.as_ref(),
        )?;
        let mut previous_hosts = false;
        for (i, pred) in p.retry_host_predicate.iter().enumerate() {
            host_predicate(ctx, &format!("{path}.retry_host_predicate[{i}]"), pred)?;
            previous_hosts = true;
        }
        let previous_priorities = match &p.retry_priority {
            Some(rp) => Some(priority(ctx, &join(path, "retry_priority"), rp)?),
            None => None,
        };
        Ok(RetryPolicy {
            num_retries: p.num_retries.as_ref().map_or(1, |n| n.value),
            per_try_timeout: opt_duration(
                ctx,
                &join(path, "per_try_timeout"),
                p.per_try_timeout.as_ref(),
            )?,
            previous_hosts,
            host_selection_max_attempts: u32::try_from(p.host_selection_retry_max_attempts)
                .unwrap_or(u32::MAX)
                .max(1),
            previous_priorities,
            on: bits,
            codes: p.retriable_status_codes.clone(),
            base,
            max,
        })
    }
}

fn back_off(
    ctx: Ctx<'_>,
    path: &str,
    b: Option<&envoy_types::pb::envoy::config::route::v3::retry_policy::RetryBackOff>,
) -> Result<(Duration, Duration), ConfigError> {
    const DEFAULT_BASE: Duration = Duration::from_millis(25);
    let Some(b) = b else {
        return Ok((DEFAULT_BASE, DEFAULT_BASE * 10));
    };
    let base = match &b.base_interval {
        Some(d) => duration(ctx, &join(path, "base_interval"), d)?,
        None => return Err(ctx.err(join(path, "base_interval"), "required")),
    };
    if base < Duration::from_millis(1) {
        return Err(ctx.err(join(path, "base_interval"), "must be at least 1ms"));
    }
    let max = match &b.max_interval {
        Some(d) => duration(ctx, &join(path, "max_interval"), d)?,
        None => base * 10,
    };
    if max < base {
        return Err(ctx.err(
            join(path, "max_interval"),
            "must not be less than base_interval",
        ));
    }
    Ok((base, max))
}

fn host_predicate(ctx: Ctx<'_>, path: &str, p: &RetryHostPredicate) -> Result<(), ConfigError> {
    match &p.config_type {
        Some(retry_host_predicate::ConfigType::TypedConfig(any)) => {
            decode_any::<PreviousHostsPredicate>(ctx, &join(path, "typed_config"), any).map(|_| ())
        }
        None if p.name == PREVIOUS_HOSTS => Ok(()),
        None => Err(ctx.err(
            join(path, "name"),
            format!("retry host predicate {:?} is not supported", p.name),
        )),
    }
}

fn priority(ctx: Ctx<'_>, path: &str, p: &RetryPriority) -> Result<u32, ConfigError> {
    let Some(retry_priority::ConfigType::TypedConfig(any)) = &p.config_type else {
        let reason = if p.name == PREVIOUS_PRIORITIES {
            "typed_config is required"
        } else {
            "not supported"
        };
        return Err(ctx.err(
            join(path, "name"),
            format!("retry priority {:?}: {reason}", p.name),
        ));
    };
    let cfg: PreviousPrioritiesConfig = decode_any(ctx, &join(path, "typed_config"), any)?;
    u32::try_from(cfg.update_frequency)
        .ok()
        .filter(|f| *f > 0)
        .ok_or_else(|| {
            ctx.err(
                join(path, "typed_config.update_frequency"),
                "must be greater than 0",
            )
        })
}

/// Refuses the `RetryPolicy` fields mast-proxy does not implement (exhaustive, so a new
/// proto field is a compile error here).
fn refuse_unsupported(ctx: Ctx<'_>, path: &str, p: &PbRetryPolicy) -> Result<(), ConfigError> {
    let PbRetryPolicy {
        retry_on: _,
        num_retries: _,
        per_try_timeout: _,
        per_try_idle_timeout,
        retry_priority: _,
        retry_host_predicate: _,
        retry_options_predicates,
        host_selection_retry_max_attempts: _,
        retriable_status_codes: _,
        retry_back_off: _,
        rate_limited_retry_back_off,
        retriable_headers,
        retriable_request_headers,
        refresh_cluster_on_retry,
    } = p;
    ctx.deny(
        path,
        &[
            ("per_try_idle_timeout", per_try_idle_timeout.is_some()),
            (
                "retry_options_predicates",
                !retry_options_predicates.is_empty(),
            ),
            (
                "rate_limited_retry_back_off",
                rate_limited_retry_back_off.is_some(),
            ),
            ("retriable_headers", !retriable_headers.is_empty()),
            (
                "retriable_request_headers",
                !retriable_request_headers.is_empty(),
            ),
            ("refresh_cluster_on_retry", set(refresh_cluster_on_retry)),
        ],
    )
}
