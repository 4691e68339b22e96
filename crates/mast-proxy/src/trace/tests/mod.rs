//! Tests of tracing: the propagation table (B3 multi, B3 single, W3C, none, sampled 0/1,
//! force-trace) through the request hooks, conversion and refusals, the Zipkin JSON and OTLP
//! encodings, and export to a collector stand-in on 127.0.0.1 through a real cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod config;
mod encoding;
mod export;
mod propagation;

use std::net::SocketAddr;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::HttpService;
use envoy_types::pb::envoy::config::core::v3::HttpUri;
use envoy_types::pb::envoy::config::core::v3::http_uri::HttpUpstreamType;
use envoy_types::pb::envoy::config::trace::v3::tracing::Http;
use envoy_types::pb::envoy::config::trace::v3::tracing::http::ConfigType;
use envoy_types::pb::envoy::config::trace::v3::{OpenTelemetryConfig, ZipkinConfig};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing;
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::{Any, BoolValue};
use http::HeaderMap;
use prost::Name;

use super::{RequestTrace, TraceConfig};

fn any<T: prost::Message + Name>(m: &T) -> Any {
    Any {
        type_url: T::type_url(),
        value: m.encode_to_vec(),
    }
}

/// Istio's Zipkin provider (128-bit ids, no shared span context) posting to `cluster`.
pub(super) fn zipkin_pb(cluster: &str) -> ZipkinConfig {
    ZipkinConfig {
        collector_cluster: cluster.into(),
        collector_endpoint: "/api/v2/spans".into(),
        collector_endpoint_version: 1,
        trace_id_128bit: true,
        shared_span_context: Some(BoolValue { value: false }),
        collector_hostname: "zipkin.local:9411".into(),
        ..Default::default()
    }
}

/// An OpenTelemetry provider posting to `cluster`.
pub(super) fn otel_pb(cluster: &str) -> OpenTelemetryConfig {
    OpenTelemetryConfig {
        http_service: Some(HttpService {
            http_uri: Some(HttpUri {
                uri: "http://otel.local:4318/v1/traces".into(),
                timeout: None,
                http_upstream_type: Some(HttpUpstreamType::Cluster(cluster.into())),
            }),
            ..Default::default()
        }),
        service_name: "client.default".into(),
        ..Default::default()
    }
}

/// HCM `tracing` with `provider` at `random` percent.
pub(super) fn tracing<T: prost::Message + Name>(provider: &T, random: f64) -> Tracing {
    Tracing {
        random_sampling: Some(Percent { value: random }),
        provider: Some(Http {
            name: "tracer".into(),
            config_type: Some(ConfigType::TypedConfig(any(provider))),
        }),
        ..Default::default()
    }
}

pub(super) fn config(t: &Tracing) -> Arc<TraceConfig> {
    Arc::new(TraceConfig::from_proto(t, "outbound_0.0.0.0_80").expect("converts"))
}

pub(super) fn peer() -> SocketAddr {
    "10.0.0.7:40000".parse().unwrap()
}

/// A request to `http://svc.default:8080/p?q=1` with `headers`.
pub(super) fn parts(headers: &[(&str, &str)]) -> http::request::Parts {
    let mut b = http::Request::builder().uri("http://svc.default:8080/p?q=1");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

/// Runs the start hook, then the router's injection: the request's span and the headers
/// the upstream receives.
pub(super) fn through(
    config: &Arc<TraceConfig>,
    inbound: bool,
    headers: &[(&str, &str)],
) -> (Option<RequestTrace>, HeaderMap) {
    let mut p = parts(headers);
    super::start(config, inbound, peer(), &mut p);
    let mut head = p.headers.clone();
    super::inject(&p.extensions, &mut head);
    (p.extensions.get::<RequestTrace>().cloned(), head)
}
