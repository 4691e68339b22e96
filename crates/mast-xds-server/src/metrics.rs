//! The ADS server's Prometheus metrics, named as istiod names them so existing dashboards
//! read them: `pilot_xds` (connected proxies), `pilot_xds_pushes` (responses sent, by type),
//! `pilot_total_xds_rejects` (NACKs, by type) and `pilot_proxy_convergence_time` (seconds
//! from a snapshot change to the proxy's ACK, by type). Counters are exposed with the
//! OpenMetrics `_total` suffix (`pilot_xds_pushes_total`, `pilot_total_xds_rejects_total`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `type` label: `cds`, `eds`, `lds`, `rds`, or the message name of another type.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TypeLabels {
    r#type: String,
}

impl TypeLabels {
    fn of(type_url: &str) -> Self {
        Self {
            r#type: crate::status::short_type_name(type_url).to_ascii_lowercase(),
        }
    }
}

/// Push-latency buckets, in seconds: 1 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The server's metrics; cheap to clone (all handles are shared).
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    connected: Gauge,
    pushes: Family<TypeLabels, Counter>,
    nacks: Family<TypeLabels, Counter>,
    convergence: Family<TypeLabels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            connected: Gauge::default(),
            pushes: Family::default(),
            nacks: Family::default(),
            convergence: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl Metrics {
    /// Adds the metrics to `registry`.
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "pilot_xds",
            "Number of connected xDS proxy streams",
            self.connected.clone(),
        );
        registry.register(
            "pilot_xds_pushes",
            "xDS responses sent, by type",
            self.pushes.clone(),
        );
        registry.register(
            "pilot_total_xds_rejects",
            "xDS responses rejected (NACKed) by proxies, by type",
            self.nacks.clone(),
        );
        registry.register(
            "pilot_proxy_convergence_time",
            "Seconds from a snapshot change to the proxy's ACK of the push it caused, by type",
            self.convergence.clone(),
        );
    }

    /// A stream opened; the guard counts it until dropped.
    pub(crate) fn connected(&self) -> ConnectedGuard {
        self.connected.inc();
        ConnectedGuard(self.connected.clone())
    }

    /// A response of `type_url` was sent.
    pub(crate) fn pushed(&self, type_url: &str) {
        self.pushes.get_or_create(&TypeLabels::of(type_url)).inc();
    }

    /// A response of `type_url` was NACKed.
    pub(crate) fn nacked(&self, type_url: &str) {
        self.nacks.get_or_create(&TypeLabels::of(type_url)).inc();
    }

    /// A push of `type_url` was ACKed `seconds` after the change that caused it.
    pub(crate) fn converged(&self, type_url: &str, seconds: f64) {
        self.convergence
            .get_or_create(&TypeLabels::of(type_url))
            .observe(seconds);
    }
}

/// Counts one connected stream while alive.
#[derive(Debug)]
pub(crate) struct ConnectedGuard(Gauge);

impl Drop for ConnectedGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
