//! Tracing on every HTTP connection manager of a sidecar (outbound and inbound, both capture
//! modes) when the snapshot configures it (`SnapshotOptions.tracing`), as Istio's
//! `configureTracing` (`pilot/pkg/networking/core/tracing.go`) does:
//!
//! - `client_sampling` and `overall_sampling` 100 %, `random_sampling` = the configured rate;
//! - `provider`: `envoy.tracers.zipkin` (`ZipkinConfig` with the `zipkin` cluster, HTTP_JSON,
//!   128-bit trace ids, no shared span context) or `envoy.tracers.opentelemetry`
//!   (`OpenTelemetryConfig` posting OTLP/HTTP through the `opentelemetry` cluster, with the
//!   proxy's service name);
//! - Istio's service tags as literals from the node, sorted: `istio.canonical_revision`,
//!   `istio.canonical_service`, `istio.cluster_id`, `istio.mesh_id`, `istio.namespace`.
//!
//! The tags and the service name make the listeners depend on the proxy's identity: while
//! tracing is on, [`TraceIdentity`] is part of [`crate::ShareKey`] for iptables sidecars
//! (whose outbound listeners are shared).
//!
//! The tracing of a proxy's listeners ([`for_proxy`]) is computed once per generation and
//! set by the builders on each HCM they build ([`super::telemetry`]). Gateways
//! (`router` nodes) also get `spawn_upstream_span: true`: as with Istio's gateways, the
//! request's span is a SERVER span and each upstream request a CLIENT child span.

use envoy_types::pb::envoy::config::core::v3::HttpService;
use envoy_types::pb::envoy::config::core::v3::HttpUri;
use envoy_types::pb::envoy::config::core::v3::http_uri::HttpUpstreamType;
use envoy_types::pb::envoy::config::trace::v3::tracing::Http as TracingProvider;
use envoy_types::pb::envoy::config::trace::v3::tracing::http::ConfigType as ProviderConfig;
use envoy_types::pb::envoy::config::trace::v3::zipkin_config::CollectorEndpointVersion;
use envoy_types::pb::envoy::config::trace::v3::{OpenTelemetryConfig, ZipkinConfig};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing;
use envoy_types::pb::envoy::r#type::tracing::v3::CustomTag;
use envoy_types::pb::envoy::r#type::tracing::v3::custom_tag::{Literal, Type as TagType};
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::Duration;
use envoy_types::util::pack_any;
use mast_model::{ProxyNode, TraceCollector, TracingOptions};
use prost::{Message, Name};
use serde_json::Value;

use super::filters::bool_value;
use crate::cluster::trace::{CollectorTarget, OPENTELEMETRY_CLUSTER};
use crate::share::Part;

/// Envoy's Zipkin tracer.
pub const ZIPKIN_PROVIDER: &str = "envoy.tracers.zipkin";
/// Envoy's OpenTelemetry tracer.
pub const OPENTELEMETRY_PROVIDER: &str = "envoy.tracers.opentelemetry";
/// Timeout of one OTLP/HTTP export (Istio's default for HTTP services).
const OTLP_TIMEOUT_SECS: i64 = 5;
/// What Istio writes for an identity value the node does not give.
const UNKNOWN: &str = "unknown";

/// What the tracing configuration reads from a proxy: the literal tag values and the service
/// name spans are reported under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceIdentity {
    /// `istio.canonical_service`.
    pub canonical_service: String,
    /// `istio.canonical_revision`.
    pub canonical_revision: String,
    /// `istio.cluster_id`.
    pub cluster_id: String,
    /// `istio.mesh_id`.
    pub mesh_id: String,
    /// `istio.namespace`.
    pub namespace: String,
    /// The span service name (OpenTelemetry `service.name`): the node's cluster,
    /// `<workload>.<namespace>`.
    pub service_name: String,
}

impl TraceIdentity {
    /// The identity of `proxy`. The canonical service and revision follow Istio's labels
    /// (`service.istio.io/canonical-name`, `app.kubernetes.io/name`, `app`, else the workload;
    /// `service.istio.io/canonical-revision`, `app.kubernetes.io/version`, `version`, else
    /// `latest`), as the injector derives them.
    pub fn of(proxy: &ProxyNode) -> Self {
        let label = |k: &str| proxy.labels.get(k).filter(|v| !v.is_empty()).cloned();
        let meta = |k: &str| {
            proxy
                .metadata
                .get(k)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let workload = if proxy.workload.is_empty() {
            UNKNOWN.to_owned()
        } else {
            proxy.workload.clone()
        };
        let namespace = if proxy.namespace.is_empty() {
            "default".to_owned()
        } else {
            proxy.namespace.clone()
        };
        Self {
            canonical_service: label("service.istio.io/canonical-name")
                .or_else(|| label("app.kubernetes.io/name"))
                .or_else(|| label("app"))
                .unwrap_or_else(|| workload.clone()),
            canonical_revision: label("service.istio.io/canonical-revision")
                .or_else(|| label("app.kubernetes.io/version"))
                .or_else(|| label("version"))
                .unwrap_or_else(|| "latest".to_owned()),
            cluster_id: meta("CLUSTER_ID").unwrap_or_else(|| UNKNOWN.to_owned()),
            mesh_id: meta("MESH_ID").unwrap_or_else(|| UNKNOWN.to_owned()),
            service_name: format!("{workload}.{namespace}"),
            namespace,
        }
    }

    /// The identity the tracing of `part` of `proxy`'s listeners carries. A shared part is
    /// generated once for every proxy with the same share key (iptables sidecars of a
    /// namespace), so with Zipkin it carries only the namespace-wide tags: the spans' service
    /// name (the node's cluster, which the proxy fills in) still names the workload, and the
    /// inbound listeners carry every tag. OpenTelemetry's service name is in the
    /// configuration, so its shared part keeps the workload's identity.
    pub fn for_part(proxy: &ProxyNode, options: &TracingOptions, part: Part) -> Self {
        let mut id = Self::of(proxy);
        if part == Part::Shared && matches!(options.collector, TraceCollector::Zipkin { .. }) {
            id.canonical_service.clear();
            id.canonical_revision.clear();
            id.service_name.clear();
        }
        id
    }

    /// Istio's service tags, sorted by name (empty values left out).
    pub fn custom_tags(&self) -> Vec<CustomTag> {
        [
            ("istio.canonical_revision", &self.canonical_revision),
            ("istio.canonical_service", &self.canonical_service),
            ("istio.cluster_id", &self.cluster_id),
            ("istio.mesh_id", &self.mesh_id),
            ("istio.namespace", &self.namespace),
        ]
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(tag, value)| CustomTag {
            tag: tag.to_owned(),
            r#type: Some(TagType::Literal(Literal {
                value: value.clone(),
            })),
        })
        .collect()
    }
}

/// A percentage from basis points (10000 = 100 %).
fn percent(bp: u32) -> Percent {
    Percent {
        value: f64::from(bp.min(10_000)) / 100.0,
    }
}

/// The HCM `tracing` for a proxy of `identity`, or `None` when the collector's address is
/// unusable.
pub fn hcm_tracing(options: &TracingOptions, identity: &TraceIdentity) -> Option<Tracing> {
    let target = CollectorTarget::of(options)?;
    let provider = if target.cluster == OPENTELEMETRY_CLUSTER {
        let config = OpenTelemetryConfig {
            http_service: Some(HttpService {
                http_uri: Some(HttpUri {
                    uri: format!("http://{}{}", target.authority(), target.path),
                    timeout: Some(Duration {
                        seconds: OTLP_TIMEOUT_SECS,
                        nanos: 0,
                    }),
                    http_upstream_type: Some(HttpUpstreamType::Cluster(target.cluster.into())),
                }),
                ..Default::default()
            }),
            service_name: identity.service_name.clone(),
            ..Default::default()
        };
        provider(OPENTELEMETRY_PROVIDER, config)
    } else {
        let config = ZipkinConfig {
            collector_cluster: target.cluster.into(),
            collector_endpoint: target.path.clone(),
            collector_endpoint_version: CollectorEndpointVersion::HttpJson as i32,
            trace_id_128bit: true,
            shared_span_context: bool_value(false),
            collector_hostname: target.host.clone(),
            ..Default::default()
        };
        provider(ZIPKIN_PROVIDER, config)
    };
    Some(Tracing {
        client_sampling: Some(percent(10_000)),
        random_sampling: Some(percent(options.sampling_bp)),
        overall_sampling: Some(percent(10_000)),
        custom_tags: identity.custom_tags(),
        provider: Some(provider),
        ..Default::default()
    })
}

fn provider<T: Message + Name>(name: &str, config: T) -> TracingProvider {
    TracingProvider {
        name: name.to_owned(),
        config_type: Some(ProviderConfig::TypedConfig(pack_any(config))),
    }
}

/// The HCM `tracing` of `part` of `proxy`'s listeners; `None` when the collector's address
/// is unusable. The listener builders set it on every HTTP connection manager they build
/// (through [`super::telemetry::Telemetry`]).
pub(crate) fn for_proxy(
    options: &TracingOptions,
    proxy: &ProxyNode,
    part: Part,
) -> Option<Tracing> {
    let identity = TraceIdentity::for_part(proxy, options, part);
    let mut tracing = hcm_tracing(options, &identity)?;
    // A gateway is a hop of its own, as Istio configures gateways: its span is a SERVER span
    // and each upstream request gets a CLIENT child span.
    if proxy.node_type == mast_model::NodeType::Router {
        tracing.spawn_upstream_span = bool_value(true);
    }
    Some(tracing)
}

#[cfg(test)]
#[path = "tests_trace.rs"]
mod tests;
