//! Istio's standard metrics (`istio_requests_total`, `istio_request_duration_milliseconds`,
//! `istio_request_bytes`, `istio_response_bytes`, `istio_tcp_*`), with Istio's names, label
//! names and (Envoy's default) buckets, and the peer metadata exchange that fills the
//! `source_*` / `destination_*` labels (`x-envoy-peer-metadata` / `-id` headers).
//!
//! The metrics live in one process-wide [`IstioStats`] installed once at start
//! ([`install`]); when none is installed (unit tests of other modules, benchmarks with
//! metrics off) every hook is a no-op. Label sets are cached per thread
//! ([`cache`]), so recording a request allocates nothing once its label set has been seen.

mod cache;
pub mod http;
pub mod identity;
pub mod peer;
pub mod tcp;
#[cfg(test)]
mod tests;

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use identity::Identity;

/// Envoy's default histogram buckets, which Istio's stats use for every histogram.
pub const BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// The labels Istio puts on its HTTP metrics (names as Istio's Prometheus output).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, EncodeLabelSet)]
pub struct HttpLabels {
    /// The workload labels both sides share.
    #[prometheus(flatten)]
    pub peers: PeerLabels,
    /// `http` or `grpc`.
    pub request_protocol: &'static str,
    /// The response status code.
    pub response_code: u16,
    /// The gRPC status, `unknown` for non-gRPC.
    pub grpc_response_status: String,
    /// Envoy's response flags (`-` when none).
    pub response_flags: String,
    /// `mutual_tls`, `none` or `unknown`.
    pub connection_security_policy: &'static str,
}

/// The labels Istio puts on its TCP metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, EncodeLabelSet)]
pub struct TcpLabels {
    /// The workload labels both sides share.
    #[prometheus(flatten)]
    pub peers: PeerLabels,
    /// Always `tcp`.
    pub request_protocol: &'static str,
    /// Envoy's response flags (`-` when none).
    pub response_flags: String,
    /// `mutual_tls`, `none` or `unknown`.
    pub connection_security_policy: &'static str,
}

/// `reporter` and the source / destination workload labels (`unknown` when not known).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, EncodeLabelSet)]
pub struct PeerLabels {
    /// `source` (outbound) or `destination` (inbound).
    pub reporter: &'static str,
    /// The client workload.
    pub source_workload: String,
    /// Its namespace.
    pub source_workload_namespace: String,
    /// Its SPIFFE principal.
    pub source_principal: String,
    /// Its `app` label.
    pub source_app: String,
    /// Its `version` label.
    pub source_version: String,
    /// Its canonical service.
    pub source_canonical_service: String,
    /// Its canonical revision.
    pub source_canonical_revision: String,
    /// Its cluster id.
    pub source_cluster: String,
    /// The server workload.
    pub destination_workload: String,
    /// Its namespace.
    pub destination_workload_namespace: String,
    /// Its SPIFFE principal.
    pub destination_principal: String,
    /// Its `app` label.
    pub destination_app: String,
    /// Its `version` label.
    pub destination_version: String,
    /// The service's host name.
    pub destination_service: String,
    /// The service's short name.
    pub destination_service_name: String,
    /// The service's namespace.
    pub destination_service_namespace: String,
    /// Its canonical service.
    pub destination_canonical_service: String,
    /// Its canonical revision.
    pub destination_canonical_revision: String,
    /// Its cluster id.
    pub destination_cluster: String,
}

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// A histogram family built with Istio's buckets.
pub type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Istio's standard metrics.
#[derive(Debug, Clone)]
pub struct IstioStats {
    /// `istio_requests_total`.
    pub requests: Family<HttpLabels, Counter>,
    /// `istio_request_duration_milliseconds`.
    pub duration: HistogramFamily<HttpLabels>,
    /// `istio_request_bytes`.
    pub request_bytes: HistogramFamily<HttpLabels>,
    /// `istio_response_bytes`.
    pub response_bytes: HistogramFamily<HttpLabels>,
    /// `istio_tcp_sent_bytes_total`.
    pub tcp_sent: Family<TcpLabels, Counter>,
    /// `istio_tcp_received_bytes_total`.
    pub tcp_received: Family<TcpLabels, Counter>,
    /// `istio_tcp_connections_opened_total`.
    pub tcp_opened: Family<TcpLabels, Counter>,
    /// `istio_tcp_connections_closed_total`.
    pub tcp_closed: Family<TcpLabels, Counter>,
    /// Who this proxy is.
    pub identity: Identity,
}

impl IstioStats {
    /// New metrics for `identity`, registered in `registry` under Istio's names (the
    /// encoder adds `_total` to counters).
    pub fn register(registry: &mut Registry, identity: Identity) -> Self {
        let s = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(histogram as fn() -> Histogram),
            request_bytes: Family::new_with_constructor(histogram as fn() -> Histogram),
            response_bytes: Family::new_with_constructor(histogram as fn() -> Histogram),
            tcp_sent: Family::default(),
            tcp_received: Family::default(),
            tcp_opened: Family::default(),
            tcp_closed: Family::default(),
            identity,
        };
        registry.register("istio_requests", "Requests", s.requests.clone());
        registry.register(
            "istio_request_duration_milliseconds",
            "Request duration",
            s.duration.clone(),
        );
        registry.register(
            "istio_request_bytes",
            "Request sizes",
            s.request_bytes.clone(),
        );
        registry.register(
            "istio_response_bytes",
            "Response sizes",
            s.response_bytes.clone(),
        );
        for (name, help, family) in [
            (
                "istio_tcp_sent_bytes",
                "Bytes sent to the client",
                &s.tcp_sent,
            ),
            (
                "istio_tcp_received_bytes",
                "Bytes received from the client",
                &s.tcp_received,
            ),
            (
                "istio_tcp_connections_opened",
                "Connections opened",
                &s.tcp_opened,
            ),
            (
                "istio_tcp_connections_closed",
                "Connections closed",
                &s.tcp_closed,
            ),
        ] {
            registry.register(name, help, family.clone());
        }
        s
    }
}

static GLOBAL: OnceLock<IstioStats> = OnceLock::new();

/// Installs the process's metrics (the first call wins); hooks record into them from then on.
pub fn install(stats: IstioStats) {
    let _ = GLOBAL.set(stats);
}

/// The installed metrics, if any.
pub fn global() -> Option<&'static IstioStats> {
    GLOBAL.get()
}

/// The `reporter` of a TCP proxy: `destination` when it forwards to the workload (`inbound|…`
/// or `InboundPassthroughCluster…` cluster), else `source`. (HTTP reads the listener's
/// `traffic_direction`.)
pub fn is_inbound(prefix_or_cluster: &str) -> bool {
    prefix_or_cluster.starts_with("inbound") || prefix_or_cluster.starts_with("InboundPassthrough")
}

/// `destination_service`, `_name` and `_namespace` from an Istio cluster name
/// (`outbound|port|subset|host` or `inbound|port|subset|host`): the host, its first label,
/// its second label; `None` when the name has no host part.
pub fn service_of_cluster(cluster: &str) -> Option<(&str, &str, &str)> {
    let mut parts = cluster.splitn(4, '|');
    let (_dir, _port, _subset) = (parts.next()?, parts.next()?, parts.next()?);
    let host = parts.next().filter(|h| !h.is_empty())?;
    Some(service_of_host(host))
}

/// (host, name, namespace) of a service host name (`name.namespace.svc…`); `unknown` for
/// a missing namespace label.
pub fn service_of_host(host: &str) -> (&str, &str, &str) {
    let mut labels = host.split('.');
    let name = labels.next().unwrap_or(host);
    let ns = labels.next().unwrap_or(UNKNOWN);
    (host, name, ns)
}

/// The value Istio gives a label it cannot fill.
pub const UNKNOWN: &str = "unknown";
