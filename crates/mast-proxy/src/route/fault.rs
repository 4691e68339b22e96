//! Fault injection per route (`typed_per_filter_config["envoy.filters.http.fault"]`, an
//! `HTTPFault`): a fixed delay and an HTTP or gRPC abort, each with its own percentage.
//! Header-driven faults, rate limits and fault restrictions (headers, downstream nodes,
//! upstream cluster, max active faults) are refused.

use std::time::Duration;

use envoy_types::pb::envoy::extensions::filters::common::fault::v3::FaultDelay;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::fault_abort::ErrorType;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{FaultAbort, HttpFault};
use http::StatusCode;

use super::proto::{Ctx, Fraction, duration, join};
use crate::error::ConfigError;

/// How a request is aborted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abort {
    /// Answer with this HTTP status.
    Http(StatusCode),
    /// Answer a gRPC request with this `grpc-status` (HTTP 200, trailers-only).
    Grpc(u32),
}

/// A route's fault injection.
#[derive(Clone, Debug)]
pub struct Fault {
    delay: Option<(Duration, Fraction)>,
    abort: Option<(Abort, Fraction)>,
}

impl Fault {
    /// Rolls the delay percentage (each call is an independent draw, fastrand).
    pub fn delay(&self) -> Option<Duration> {
        self.delay.and_then(|(d, f)| f.roll().then_some(d))
    }

    /// Rolls the abort percentage.
    pub fn abort(&self) -> Option<Abort> {
        self.abort.and_then(|(a, f)| f.roll().then_some(a))
    }

    /// Converts an `HTTPFault` at `path`.
    pub(crate) fn from_proto(ctx: Ctx<'_>, path: &str, f: &HttpFault) -> Result<Self, ConfigError> {
        // The *_runtime fields name runtime keys: without a runtime Envoy uses the configured
        // values, as here. Stats and metadata fields change no behaviour.
        ctx.deny(
            path,
            &[
                ("upstream_cluster", !f.upstream_cluster.is_empty()),
                ("headers", !f.headers.is_empty()),
                ("downstream_nodes", !f.downstream_nodes.is_empty()),
                ("max_active_faults", f.max_active_faults.is_some()),
                ("response_rate_limit", f.response_rate_limit.is_some()),
            ],
        )?;
        let delay = match &f.delay {
            Some(d) => Some(delay(ctx, &join(path, "delay"), d)?),
            None => None,
        };
        let abort = match &f.abort {
            Some(a) => Some(abort(ctx, &join(path, "abort"), a)?),
            None => None,
        };
        Ok(Fault { delay, abort })
    }
}

/// A missing percentage is 0% (Envoy's default `FractionalPercent`).
fn percentage(
    ctx: Ctx<'_>,
    path: &str,
    p: Option<&envoy_types::pb::envoy::r#type::v3::FractionalPercent>,
) -> Result<Fraction, ConfigError> {
    Fraction::from_proto(
        ctx,
        &join(path, "percentage"),
        &p.cloned().unwrap_or_default(),
    )
}

fn delay(ctx: Ctx<'_>, path: &str, d: &FaultDelay) -> Result<(Duration, Fraction), ConfigError> {
    let fixed = match &d.fault_delay_secifier {
        Some(FaultDelaySecifier::FixedDelay(fd)) => duration(ctx, &join(path, "fixed_delay"), fd)?,
        Some(FaultDelaySecifier::HeaderDelay(_)) => {
            return Err(ctx.err(join(path, "header_delay"), "not supported by mast-proxy"));
        }
        None => return Err(ctx.err(path, "no delay type")),
    };
    Ok((fixed, percentage(ctx, path, d.percentage.as_ref())?))
}

fn abort(ctx: Ctx<'_>, path: &str, a: &FaultAbort) -> Result<(Abort, Fraction), ConfigError> {
    ctx.deny(path, &[("response_body", !a.response_body.is_empty())])?;
    let kind = match &a.error_type {
        Some(ErrorType::HttpStatus(s)) => {
            let status = u16::try_from(*s)
                .ok()
                .filter(|s| (200..600).contains(s))
                .and_then(|s| StatusCode::from_u16(s).ok())
                .ok_or_else(|| {
                    ctx.err(
                        join(path, "http_status"),
                        format!("{s} is not in [200, 600)"),
                    )
                })?;
            Abort::Http(status)
        }
        Some(ErrorType::GrpcStatus(s)) => Abort::Grpc(*s),
        Some(ErrorType::HeaderAbort(_)) => {
            return Err(ctx.err(join(path, "header_abort"), "not supported by mast-proxy"));
        }
        None => return Err(ctx.err(path, "no error type")),
    };
    Ok((kind, percentage(ctx, path, a.percentage.as_ref())?))
}
