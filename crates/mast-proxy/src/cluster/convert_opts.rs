//! Conversion helpers for a Cluster's option blocks: circuit breakers, HTTP protocol options,
//! TCP keepalive and outlier detection.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as PbCluster;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
};
use prost::Message as _;

use super::convert::{KIND, dur};
use super::outlier::OutlierConfig;
use crate::error::ConfigError;
use crate::upstream::{Keepalive, Limits, Protocol, UpstreamOptions};

const HTTP_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// `circuit_breakers`: the DEFAULT priority's thresholds (Envoy's defaults when unset).
pub(crate) fn breakers(c: &PbCluster) -> Result<Limits, ConfigError> {
    let mut limits = Limits::default();
    let Some(cb) = &c.circuit_breakers else {
        return Ok(limits);
    };
    if !cb.per_host_thresholds.is_empty() {
        return Err(ConfigError::new(
            KIND,
            &c.name,
            "circuit_breakers.per_host_thresholds",
            "not supported",
        ));
    }
    // Priority HIGH (1) thresholds apply to high-priority routes, which mastd never emits.
    if let Some(t) = cb.thresholds.iter().find(|t| t.priority == 0) {
        let v = |w: Option<u32>, d: u64| w.map_or(d, u64::from);
        limits.max_connections = v(t.max_connections.map(|x| x.value), 1024);
        limits.max_pending_requests = v(t.max_pending_requests.map(|x| x.value), 1024);
        limits.max_requests = v(t.max_requests.map(|x| x.value), 1024);
        limits.max_retries = v(t.max_retries.map(|x| x.value), 3);
        if let Some(b) = &t.retry_budget {
            let percent = b.budget_percent.as_ref().map_or(20.0, |p| p.value);
            let min = b.min_retry_concurrency.map_or(3, |m| u64::from(m.value));
            limits.retry_budget = Some((percent, min));
        }
    }
    Ok(limits)
}

/// `upstream_connection_options.tcp_keepalive`.
pub(crate) fn keepalive(c: &PbCluster) -> Option<Keepalive> {
    let ka = c
        .upstream_connection_options
        .as_ref()?
        .tcp_keepalive
        .as_ref()?;
    Some(Keepalive {
        probes: ka.keepalive_probes.map(|v| v.value),
        time: ka
            .keepalive_time
            .map(|v| Duration::from_secs(v.value.into())),
        interval: ka
            .keepalive_interval
            .map(|v| Duration::from_secs(v.value.into())),
    })
}

/// `typed_extension_protocol_options[HttpProtocolOptions]` (the HTTP protocol and pool limits).
pub(crate) fn http_options(c: &PbCluster) -> Result<UpstreamOptions, ConfigError> {
    let err = |field: &str, reason: String| ConfigError::new(KIND, &c.name, field, reason);
    let mut o = UpstreamOptions::default();
    for key in c.typed_extension_protocol_options.keys() {
        if key != HTTP_OPTIONS {
            return Err(err(
                &format!("typed_extension_protocol_options[{key:?}]"),
                "not supported".into(),
            ));
        }
    }
    let Some(any) = c.typed_extension_protocol_options.get(HTTP_OPTIONS) else {
        return Ok(o);
    };
    let field = format!("typed_extension_protocol_options[{HTTP_OPTIONS:?}]");
    let h = HttpProtocolOptions::decode(any.value.as_slice())
        .map_err(|e| err(&field, e.to_string()))?;
    if !h.http_filters.is_empty() || h.header_validation_config.is_some() {
        return Err(err(
            &format!("{field}.http_filters"),
            "not supported".into(),
        ));
    }
    if let Some(u) = &h.upstream_http_protocol_options {
        if !u.override_auto_sni_header.is_empty() {
            return Err(err(
                &format!("{field}.upstream_http_protocol_options.override_auto_sni_header"),
                "not supported".into(),
            ));
        }
        o.auto_sni = u.auto_sni;
        o.auto_san = u.auto_san_validation;
    }
    if let Some(common) = &h.common_http_protocol_options {
        o.idle_timeout = match common.idle_timeout.as_ref().map(dur) {
            None => Some(Duration::from_secs(3600)),
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
        };
        o.max_connection_duration = common.max_connection_duration.as_ref().map(dur);
        o.max_requests_per_connection = common.max_requests_per_connection.map(|v| v.value);
    }
    match &h.upstream_protocol_options {
        None => {}
        Some(UpstreamProtocolOptions::ExplicitHttpConfig(e)) => match &e.protocol_config {
            None | Some(ProtocolConfig::HttpProtocolOptions(_)) => o.protocol = Protocol::Http1,
            Some(ProtocolConfig::Http2ProtocolOptions(h2)) => {
                o.protocol = Protocol::Http2;
                o.max_concurrent_streams = h2.max_concurrent_streams.map(|v| v.value);
            }
            Some(_) => {
                return Err(err(
                    &format!("{field}.explicit_http_config"),
                    "HTTP/3 is not supported".into(),
                ));
            }
        },
        Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(d)) => {
            if d.http3_protocol_options.is_some() {
                return Err(err(
                    &format!("{field}.use_downstream_protocol_config.http3_protocol_options"),
                    "not supported".into(),
                ));
            }
            o.protocol = Protocol::Downstream;
            o.max_concurrent_streams = d
                .http2_protocol_options
                .as_ref()
                .and_then(|h2| h2.max_concurrent_streams.map(|v| v.value));
        }
        Some(_) => {
            return Err(err(&format!("{field}.auto_config"), "not supported".into()));
        }
    }
    Ok(o)
}

/// `outlier_detection` with Envoy's defaults. Success-rate and failure-percentage
/// ejection are refused when enforced (mastd sets `enforcing_success_rate: 0`).
pub(crate) fn outlier(c: &PbCluster) -> Result<Option<OutlierConfig>, ConfigError> {
    let Some(od) = &c.outlier_detection else {
        return Ok(None);
    };
    let err = |field: &str, reason: &str| {
        ConfigError::new(KIND, &c.name, format!("outlier_detection.{field}"), reason)
    };
    let u = |v: Option<u32>, d: u32| v.unwrap_or(d);
    if u(od.enforcing_success_rate.map(|v| v.value), 100) != 0 {
        return Err(err(
            "enforcing_success_rate",
            "success-rate ejection is not supported; set 0",
        ));
    }
    if u(od.enforcing_failure_percentage.map(|v| v.value), 0) != 0
        || u(
            od.enforcing_failure_percentage_local_origin
                .map(|v| v.value),
            0,
        ) != 0
    {
        return Err(err("enforcing_failure_percentage", "not supported"));
    }
    if od.split_external_local_origin_errors
        && u(od.enforcing_local_origin_success_rate.map(|v| v.value), 100) != 0
    {
        return Err(err(
            "enforcing_local_origin_success_rate",
            "success-rate ejection is not supported; set 0",
        ));
    }
    if !od.monitors.is_empty() {
        return Err(err("monitors", "not supported"));
    }
    let base = od
        .base_ejection_time
        .as_ref()
        .map_or(Duration::from_secs(30), dur);
    Ok(Some(OutlierConfig {
        consecutive_5xx: u(od.consecutive_5xx.map(|v| v.value), 5),
        enforcing_5xx: u(od.enforcing_consecutive_5xx.map(|v| v.value), 100),
        consecutive_gateway: u(od.consecutive_gateway_failure.map(|v| v.value), 5),
        enforcing_gateway: u(od.enforcing_consecutive_gateway_failure.map(|v| v.value), 0),
        split_local: od.split_external_local_origin_errors,
        consecutive_local: u(od.consecutive_local_origin_failure.map(|v| v.value), 5),
        enforcing_local: u(
            od.enforcing_consecutive_local_origin_failure
                .map(|v| v.value),
            100,
        ),
        interval: od.interval.as_ref().map_or(Duration::from_secs(10), dur),
        base_ejection: base,
        max_ejection: od
            .max_ejection_time
            .as_ref()
            .map_or(Duration::from_secs(300), dur)
            .max(base),
        max_ejection_percent: u(od.max_ejection_percent.map(|v| v.value), 10).min(100),
        always_eject_one: od.always_eject_one_host.is_some_and(|v| v.value),
    }))
}
