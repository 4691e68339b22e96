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
        registry.register("istio_build", "Istio component build info", build_info());
        s
    }

    /// Counts one `family` event for `cluster`.
    pub fn cluster(family: &Family<ClusterLabel, Counter>, cluster: &str) {
        CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            let key = (std::ptr::from_ref(family) as usize, cluster);
            if let Some(c) = cache.get(&key as &dyn CacheKey) {
                c.inc();
                return;
            }
            let counter = family
                .get_or_create(&ClusterLabel {
                    envoy_cluster_name: cluster.to_owned(),
                })
                .clone();
            counter.inc();
            if cache.len() > 4096 {
                cache.clear();
            }
            cache.insert((key.0, cluster.to_owned()), counter);
        });
    }
}

/// `istio_build{component="proxy",tag=<version>} 1`, as Istio's proxies report it (Istio's
/// mesh dashboard lists components by version from it).
fn build_info() -> Family<BuildLabels, prometheus_client::metrics::gauge::Gauge> {
    let family = Family::<BuildLabels, prometheus_client::metrics::gauge::Gauge>::default();
    family
        .get_or_create(&BuildLabels {
            component: "proxy",
            tag: env!("CARGO_PKG_VERSION"),
        })
        .set(1);
    family
}

/// `istio_build` labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    component: &'static str,
    tag: &'static str,
}

/// A per-thread cache of counter handles by (family, cluster), so counting allocates and
/// locks nothing once a cluster has been seen on this thread.
type Cache = std::collections::HashMap<(usize, String), Counter>;

thread_local! {
    static CACHE: std::cell::RefCell<Cache> = std::cell::RefCell::new(Cache::new());
}

/// Borrowed lookups into [`Cache`] keys.
trait CacheKey {
    fn family(&self) -> usize;
    fn cluster(&self) -> &str;
}

impl CacheKey for (usize, String) {
    fn family(&self) -> usize {
        self.0
    }
    fn cluster(&self) -> &str {
        &self.1
    }
}

impl CacheKey for (usize, &str) {
    fn family(&self) -> usize {
        self.0
    }
    fn cluster(&self) -> &str {
        self.1
    }
}

impl<'a> std::borrow::Borrow<dyn CacheKey + 'a> for (usize, String) {
    fn borrow(&self) -> &(dyn CacheKey + 'a) {
        self
    }
}

impl PartialEq for dyn CacheKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.family() == other.family() && self.cluster() == other.cluster()
    }
}

impl Eq for dyn CacheKey + '_ {}

impl std::hash::Hash for dyn CacheKey + '_ {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.family().hash(state);
        self.cluster().hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_cluster_through_the_cache() {
        let mut registry = Registry::default();
        let stats = ProxyStats::register(&mut registry);
        for _ in 0..3 {
            ProxyStats::cluster(&stats.upstream_rq, "outbound|80||a");
        }
        ProxyStats::cluster(&stats.upstream_rq, "outbound|80||b");
        ProxyStats::cluster(&stats.upstream_rq_retry, "outbound|80||a");
        let get = |f: &Family<ClusterLabel, Counter>, c: &str| {
            f.get_or_create(&ClusterLabel {
                envoy_cluster_name: c.into(),
            })
            .get()
        };
        assert_eq!(get(&stats.upstream_rq, "outbound|80||a"), 3);
        assert_eq!(get(&stats.upstream_rq, "outbound|80||b"), 1);
        assert_eq!(get(&stats.upstream_rq_retry, "outbound|80||a"), 1);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap_or_default();
        assert!(
            text.contains(
                "envoy_cluster_upstream_rq_total{envoy_cluster_name=\"outbound|80||a\"} 3"
            ),
            "{text}"
        );
    }
}
