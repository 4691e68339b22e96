//! The proxy's own counters, named as Envoy's (`envoy_cluster_upstream_rq_total{envoy_cluster_name}`
//! in Prometheus form, `cluster.<name>.upstream_rq_total` on `/stats`), so tooling and tests
//! written for Envoy read them unchanged. Istio's standard metrics come with the
//! observability issue.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// A cluster label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ClusterLabel {
    /// The cluster's name.
    pub envoy_cluster_name: String,
}

/// An HTTP connection manager label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct HcmLabel {
    /// The manager's `stat_prefix`.
    pub envoy_http_conn_manager_prefix: String,
}

/// Envoy-named counters.
#[derive(Debug, Default, Clone)]
pub struct ProxyStats {
    /// Requests sent to a cluster (each attempt).
    pub upstream_rq: Family<ClusterLabel, Counter>,
    /// Retries.
    pub upstream_rq_retry: Family<ClusterLabel, Counter>,
    /// Requests that timed out.
    pub upstream_rq_timeout: Family<ClusterLabel, Counter>,
    /// Connection failures.
    pub upstream_cx_connect_fail: Family<ClusterLabel, Counter>,
    /// Circuit-breaker overflows.
    pub upstream_rq_pending_overflow: Family<ClusterLabel, Counter>,
    /// Requests with no healthy upstream.
    pub upstream_cx_none_healthy: Family<ClusterLabel, Counter>,
    /// Requests that matched no route.
    pub no_route: Family<HcmLabel, Counter>,
    /// Requests whose route named an unknown cluster.
    pub no_cluster: Family<HcmLabel, Counter>,
}

impl ProxyStats {
    /// New counters, registered in `registry` under Envoy's names.
    pub fn register(registry: &mut Registry) -> Self {
        let s = Self::default();
        let cluster = [
            (
                "envoy_cluster_upstream_rq",
                "Requests sent upstream",
                &s.upstream_rq,
            ),
            (
                "envoy_cluster_upstream_rq_retry",
                "Retries",
                &s.upstream_rq_retry,
            ),
            (
                "envoy_cluster_upstream_rq_timeout",
                "Timed-out requests",
                &s.upstream_rq_timeout,
            ),
            (
                "envoy_cluster_upstream_cx_connect_fail",
                "Connection failures",
                &s.upstream_cx_connect_fail,
            ),
            (
                "envoy_cluster_upstream_rq_pending_overflow",
                "Circuit-breaker overflows",
                &s.upstream_rq_pending_overflow,
            ),
            (
                "envoy_cluster_upstream_cx_none_healthy",
                "No healthy upstream",
                &s.upstream_cx_none_healthy,
            ),
        ];
        for (name, help, family) in cluster {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "envoy_http_no_route",
            "Requests with no route",
            s.no_route.clone(),
        );
        registry.register(
            "envoy_http_no_cluster",
            "Routes to unknown clusters",
            s.no_cluster.clone(),
        );
        s
    }

    /// Counts one `family` event for `cluster`.
    pub fn cluster(family: &Family<ClusterLabel, Counter>, cluster: &str) {
        family
            .get_or_create(&ClusterLabel {
                envoy_cluster_name: cluster.to_owned(),
            })
            .inc();
    }
}
