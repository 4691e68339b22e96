//! The agent's metrics port (Istio's 15020): `GET /stats/prometheus` answers Envoy's admin
//! `/stats/prometheus` merged with the agent's own metrics, and `GET /healthz/ready` answers
//! 200 when Envoy's `/ready` does (LIVE), 503 otherwise.
//!
//! - [`AgentMetrics`]: the agent's own metrics, in a `prometheus-client` registry:
//!   `mast_agent_envoy_restarts_total`, `mast_agent_sds_pushes_total{secret}`,
//!   `mast_agent_cert_expiry_timestamp_seconds`, `mast_agent_scrape_failures_total`;
//! - [`text`]: the Prometheus text format (0.0.4) work: OpenMetrics from the registry turned
//!   into 0.0.4, and several texts merged with one `# TYPE` per family (Prometheus rejects a
//!   scrape that declares a family twice);
//! - [`server`]: the HTTP server.

pub mod server;
pub mod text;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use server::{MetricsServer, serve};

/// Istio's agent port: merged metrics and health.
pub const ISTIO_AGENT_PORT: u16 = 15020;

/// The label of `mast_agent_sds_pushes_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SecretLabels {
    /// `default` or `ROOTCA`.
    secret: String,
}

/// The agent's own metrics. Cheap to clone (every clone updates the same registry).
#[derive(Clone)]
pub struct AgentMetrics {
    registry: Arc<Registry>,
    envoy_restarts: Counter,
    sds_pushes: Family<SecretLabels, Counter>,
    cert_expiry: Gauge,
    scrape_failures: Counter,
}

impl std::fmt::Debug for AgentMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentMetrics")
            .field("envoy_restarts", &self.envoy_restarts.get())
            .field("cert_expiry", &self.cert_expiry.get())
            .finish_non_exhaustive()
    }
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl AgentMetrics {
    /// A registry with every metric at zero.
    pub fn new() -> Self {
        let envoy_restarts = Counter::default();
        let sds_pushes = Family::<SecretLabels, Counter>::default();
        let cert_expiry = Gauge::default();
        let scrape_failures = Counter::default();
        let mut registry = Registry::default();
        registry.register(
            "mast_agent_envoy_restarts",
            "Times the agent restarted Envoy after it died",
            envoy_restarts.clone(),
        );
        registry.register(
            "mast_agent_sds_pushes",
            "Secrets pushed to Envoy over SDS, by secret name",
            sds_pushes.clone(),
        );
        registry.register(
            "mast_agent_cert_expiry_timestamp_seconds",
            "When the workload certificate expires (Unix time; 0 while there is none)",
            cert_expiry.clone(),
        );
        registry.register(
            "mast_agent_scrape_failures",
            "Scrapes of Envoy's /stats/prometheus that failed (the agent's own metrics were served alone)",
            scrape_failures.clone(),
        );
        Self {
            registry: Arc::new(registry),
            envoy_restarts,
            sds_pushes,
            cert_expiry,
            scrape_failures,
        }
    }

    /// Envoy died and is started again.
    pub fn envoy_restarted(&self) {
        self.envoy_restarts.inc();
    }

    /// Secret `name` was sent to Envoy.
    pub fn sds_pushed(&self, name: &str) {
        self.sds_pushes
            .get_or_create(&SecretLabels {
                secret: name.to_owned(),
            })
            .inc();
    }

    /// The workload certificate now in use expires at `not_after`.
    pub fn cert_expires(&self, not_after: SystemTime) {
        let secs = not_after
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.cert_expiry
            .set(i64::try_from(secs).unwrap_or(i64::MAX));
    }

    /// A scrape of Envoy failed.
    pub fn scrape_failed(&self) {
        self.scrape_failures.inc();
    }

    /// The registry in the Prometheus text format 0.0.4.
    pub fn encode(&self) -> String {
        let mut open = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut open, &self.registry) {
            tracing::warn!(error = %e, "cannot encode the agent's metrics");
        }
        text::from_openmetrics(&open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn metrics_encode_as_prometheus_text() {
        let m = AgentMetrics::new();
        m.envoy_restarted();
        m.sds_pushed("default");
        m.sds_pushed("default");
        m.sds_pushed("ROOTCA");
        m.cert_expires(UNIX_EPOCH + Duration::from_secs(1_900_000_000));
        let text = m.encode();
        assert!(
            text.contains("# TYPE mast_agent_envoy_restarts_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("mast_agent_envoy_restarts_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("mast_agent_sds_pushes_total{secret=\"default\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("mast_agent_cert_expiry_timestamp_seconds 1900000000\n"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
    }
}
