//! The tracers (HCM `tracing.provider`) → [`Provider`]: `envoy.tracers.zipkin`
//! (`ZipkinConfig`: Zipkin v2 JSON, `HTTP_JSON` only) and `envoy.tracers.opentelemetry`
//! (`OpenTelemetryConfig`: OTLP/HTTP protobuf through `http_service`), each posting to a
//! [`Collector`] cluster. Anything else is refused with the field it names.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::HttpService;
use envoy_types::pb::envoy::config::core::v3::http_uri::HttpUpstreamType;
use envoy_types::pb::envoy::config::trace::v3::tracing::Http;
use envoy_types::pb::envoy::config::trace::v3::tracing::http::ConfigType;
use envoy_types::pb::envoy::config::trace::v3::{OpenTelemetryConfig, ZipkinConfig};
use http::{HeaderName, HeaderValue};
use prost::{Message as _, Name as _};

type Failure = (String, String);

fn fail(field: &str, reason: impl Into<String>) -> Failure {
    (field.to_owned(), reason.into())
}

/// How long one export may take (Envoy's `tracing.zipkin.request_timeout` default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Spans kept while the collector is slow or down (Envoy's OpenTelemetry `max_cache_size`).
pub const DEFAULT_BUFFER: usize = 1024;

/// Where spans are posted: a cluster of the cluster manager, a `Host` and a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collector {
    /// The cluster.
    pub cluster: String,
    /// The `Host` header (`collector_hostname`, the URI's authority, else the cluster name).
    pub host: String,
    /// The request path.
    pub path: String,
    /// Extra request headers (`request_headers_to_add`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Timeout of one export request.
    pub timeout: Duration,
}

/// The Zipkin tracer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zipkin {
    /// The collector.
    pub collector: Collector,
    /// New traces get 128-bit ids.
    pub trace_id_128bit: bool,
    /// The inbound (SERVER) span reuses the caller's span id (`shared_span_context`, default
    /// true).
    pub shared_span_context: bool,
    /// `USE_B3_WITH_W3C_PROPAGATION`: read `traceparent` when there is no B3, write both.
    pub w3c: bool,
    /// `timestamp_trace_ids`: the trace id's high 32 bits are the epoch seconds.
    pub timestamp_trace_ids: bool,
}

/// The OpenTelemetry tracer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTelemetry {
    /// The collector (`http_service`); `None`: spans are not exported.
    pub collector: Option<Collector>,
    /// `service.name` (default `unknown_service:envoy`).
    pub service_name: String,
    /// `set_service_name_resource_attribute` (default true).
    pub service_name_attribute: bool,
    /// `set_telemetry_sdk_resource_attributes` (default true).
    pub sdk_attributes: bool,
    /// `set_instrumentation_scope` (default true).
    pub scope: bool,
    /// `max_cache_size` (default 1024).
    pub buffer: usize,
}

/// A tracer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// `envoy.tracers.zipkin`.
    Zipkin(Zipkin),
    /// `envoy.tracers.opentelemetry`.
    OpenTelemetry(OpenTelemetry),
}

impl Provider {
    /// Converts `provider` (fields relative to it).
    pub fn from_proto(provider: &Http) -> Result<Self, Failure> {
        let Some(ConfigType::TypedConfig(any)) = &provider.config_type else {
            return Err(fail("typed_config", "required"));
        };
        let bad = |e: prost::DecodeError| fail("typed_config", format!("does not decode: {e}"));
        if any.type_url == ZipkinConfig::type_url() {
            let z = ZipkinConfig::decode(any.value.as_slice()).map_err(bad)?;
            zipkin(&z).map(Provider::Zipkin)
        } else if any.type_url == OpenTelemetryConfig::type_url() {
            let o = OpenTelemetryConfig::decode(any.value.as_slice()).map_err(bad)?;
            otel(&o).map(Provider::OpenTelemetry)
        } else {
            Err(fail(
                "typed_config",
                format!(
                    "tracer {:?} ({}) is not supported by mast-proxy",
                    provider.name, any.type_url
                ),
            ))
        }
    }
}

fn under(prefix: &str) -> impl Fn(Failure) -> Failure + '_ {
    move |(f, r)| (format!("typed_config.{prefix}{f}"), r)
}

#[allow(deprecated)]
fn zipkin(z: &ZipkinConfig) -> Result<Zipkin, Failure> {
    let at = |f: &str| format!("typed_config.{f}");
    match z.collector_endpoint_version {
        1 => {}
        0 => {
            return Err(fail(
                &at("collector_endpoint_version"),
                "HTTP_JSON_V1 is deprecated and unavailable; use HTTP_JSON",
            ));
        }
        v => {
            return Err(fail(
                &at("collector_endpoint_version"),
                format!("version {v} is not supported by mast-proxy (HTTP_JSON only)"),
            ));
        }
    }
    if z.split_spans_for_request {
        return Err(fail(
            &at("split_spans_for_request"),
            "not supported by mast-proxy yet",
        ));
    }
    let w3c = match z.trace_context_option {
        0 => false,
        1 => true,
        v => {
            return Err(fail(
                &at("trace_context_option"),
                format!("unknown value {v}"),
            ));
        }
    };
    let collector = match &z.collector_service {
        Some(s) => http_service(s).map_err(under("collector_service."))?,
        None => legacy_collector(z)?,
    };
    Ok(Zipkin {
        collector,
        trace_id_128bit: z.trace_id_128bit,
        shared_span_context: z.shared_span_context.is_none_or(|b| b.value),
        w3c,
        timestamp_trace_ids: z.timestamp_trace_ids,
    })
}

/// The collector from `collector_cluster` / `collector_endpoint` / `collector_hostname`.
fn legacy_collector(z: &ZipkinConfig) -> Result<Collector, Failure> {
    if z.collector_cluster.is_empty() || z.collector_endpoint.is_empty() {
        return Err(fail(
            "typed_config.collector_cluster",
            "collector_cluster and collector_endpoint are required without collector_service",
        ));
    }
    Ok(Collector {
        host: if z.collector_hostname.is_empty() {
            z.collector_cluster.clone()
        } else {
            z.collector_hostname.clone()
        },
        cluster: z.collector_cluster.clone(),
        path: z.collector_endpoint.clone(),
        headers: Vec::new(),
        timeout: DEFAULT_TIMEOUT,
    })
}

fn otel(o: &OpenTelemetryConfig) -> Result<OpenTelemetry, Failure> {
    let at = |f: &str| format!("typed_config.{f}");
    let unsupported = [
        ("grpc_service", o.grpc_service.is_some()),
        ("exporter", o.exporter.is_some()),
        ("resource_detectors", !o.resource_detectors.is_empty()),
        ("sampler", o.sampler.is_some()),
    ];
    if let Some((field, _)) = unsupported.iter().find(|(_, set)| *set) {
        return Err(fail(&at(field), "not supported by mast-proxy yet"));
    }
    let collector = o
        .http_service
        .as_ref()
        .map(http_service)
        .transpose()
        .map_err(under("http_service."))?;
    let flag = |b: Option<&envoy_types::pb::google::protobuf::BoolValue>| b.is_none_or(|b| b.value);
    Ok(OpenTelemetry {
        collector,
        service_name: if o.service_name.is_empty() {
            "unknown_service:envoy".to_owned()
        } else {
            o.service_name.clone()
        },
        service_name_attribute: flag(o.set_service_name_resource_attribute.as_ref()),
        sdk_attributes: flag(o.set_telemetry_sdk_resource_attributes.as_ref()),
        scope: flag(o.set_instrumentation_scope.as_ref()),
        buffer: o
            .max_cache_size
            .map_or(DEFAULT_BUFFER, |n| (n.value as usize).max(1)),
    })
}

/// `HttpService`: the cluster, the URI (`http://host[:port]/path` or a path alone, then the
/// `Host` is the cluster name), the timeout and the headers to add.
fn http_service(s: &HttpService) -> Result<Collector, Failure> {
    let Some(uri) = &s.http_uri else {
        return Err(fail("http_uri", "required"));
    };
    let Some(HttpUpstreamType::Cluster(cluster)) = &uri.http_upstream_type else {
        return Err(fail("http_uri.cluster", "required"));
    };
    if cluster.is_empty() {
        return Err(fail("http_uri.cluster", "required"));
    }
    let (host, path) = split_uri(&uri.uri).ok_or_else(|| {
        fail(
            "http_uri.uri",
            format!("{:?} is not a URI or a path", uri.uri),
        )
    })?;
    let mut headers = Vec::new();
    for (i, h) in s.request_headers_to_add.iter().enumerate() {
        let Some(kv) = &h.header else {
            return Err(fail(
                &format!("request_headers_to_add[{i}].header"),
                "required",
            ));
        };
        let name = HeaderName::from_bytes(kv.key.as_bytes());
        let value = HeaderValue::from_str(&kv.value);
        let (Ok(name), Ok(value)) = (name, value) else {
            return Err(fail(
                &format!("request_headers_to_add[{i}].header"),
                "not a valid header",
            ));
        };
        headers.push((name, value));
    }
    Ok(Collector {
        host: host.unwrap_or_else(|| cluster.clone()),
        cluster: cluster.clone(),
        path,
        headers,
        timeout: crate::hcm::config::duration(uri.timeout.as_ref()).unwrap_or(DEFAULT_TIMEOUT),
    })
}

/// `(authority, path)` of `http[s]://authority/path`, or `(None, path)` for a path.
fn split_uri(uri: &str) -> Option<(Option<String>, String)> {
    if uri.starts_with('/') {
        return Some((None, uri.to_owned()));
    }
    let rest = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    (!host.is_empty()).then(|| (Some(host.to_owned()), path.to_owned()))
}
