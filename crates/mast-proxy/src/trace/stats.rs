//! Tracing counters, named as Envoy's: the tracers' `tracing.zipkin.*` and
//! `tracing.opentelemetry.*`, and the connection managers' decisions
//! `http.<stat_prefix>.tracing.{random_sampling,service_forced,client_enabled,not_traceable}`
//! (Prometheus: `envoy_tracing_zipkin_spans_sent_total`,
//! `envoy_http_tracing_random_sampling_total{envoy_http_conn_manager_prefix}`). Spans
//! dropped because the export buffer is full are counted as `spans_dropped` (Envoy drops
//! them silently). Process-wide, installed once at start ([`install`]); before that (unit
//! tests) the counters are detached.

use std::sync::OnceLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::decision::Reason;
use crate::stats::HcmLabel;

/// `tracing.zipkin.*`.
#[derive(Debug, Clone, Default)]
pub struct ZipkinStats {
    /// Spans handed to the collector.
    pub spans_sent: Counter,
    /// Spans dropped because the buffer was full.
    pub spans_dropped: Counter,
    /// Flushes by the timer.
    pub timer_flushed: Counter,
    /// Reports not sent: the collector cluster does not exist.
    pub reports_skipped_no_cluster: Counter,
    /// Reports the collector accepted (202).
    pub reports_sent: Counter,
    /// Reports the collector answered with another status.
    pub reports_dropped: Counter,
    /// Reports that failed (no endpoint, connection failure, timeout).
    pub reports_failed: Counter,
}

/// `tracing.opentelemetry.*`.
#[derive(Debug, Clone, Default)]
pub struct OtelStats {
    /// Spans handed to the collector.
    pub spans_sent: Counter,
    /// Spans dropped because the buffer was full.
    pub spans_dropped: Counter,
    /// Flushes by the timer.
    pub timer_flushed: Counter,
    /// Export requests sent.
    pub http_reports_sent: Counter,
    /// Export requests answered 200.
    pub http_reports_success: Counter,
    /// Export requests that failed or were refused.
    pub http_reports_failed: Counter,
}

/// `http.<stat_prefix>.tracing.*`, per connection manager.
#[derive(Debug, Clone, Default)]
pub struct HcmFamilies {
    /// Traced by `random_sampling`.
    pub random_sampling: Family<HcmLabel, Counter>,
    /// Traced by `x-envoy-force-trace`.
    pub service_forced: Family<HcmLabel, Counter>,
    /// Traced by `x-client-trace-id`.
    pub client_enabled: Family<HcmLabel, Counter>,
    /// Not traced.
    pub not_traceable: Family<HcmLabel, Counter>,
}

/// One connection manager's decision counters, resolved once at conversion.
#[derive(Debug, Clone, Default)]
pub struct HcmCounters {
    random_sampling: Counter,
    service_forced: Counter,
    client_enabled: Counter,
    not_traceable: Counter,
}

impl HcmCounters {
    /// Counts one decision.
    pub fn count(&self, reason: Reason) {
        match reason {
            Reason::Sampling => &self.random_sampling,
            Reason::ServiceForced => &self.service_forced,
            Reason::ClientForced => &self.client_enabled,
            Reason::NotTraceable => &self.not_traceable,
        }
        .inc();
    }
}

/// Every tracing counter.
#[derive(Debug, Clone, Default)]
pub struct TraceStats {
    /// The Zipkin tracer's.
    pub zipkin: ZipkinStats,
    /// The OpenTelemetry tracer's.
    pub otel: OtelStats,
    /// The connection managers'.
    pub hcm: HcmFamilies,
}

impl TraceStats {
    /// New counters, registered in `registry` under Envoy's names.
    pub fn register(registry: &mut Registry) -> Self {
        let s = Self::default();
        let z = &s.zipkin;
        for (name, c) in [
            ("spans_sent", &z.spans_sent),
            ("spans_dropped", &z.spans_dropped),
            ("timer_flushed", &z.timer_flushed),
            ("reports_skipped_no_cluster", &z.reports_skipped_no_cluster),
            ("reports_sent", &z.reports_sent),
            ("reports_dropped", &z.reports_dropped),
            ("reports_failed", &z.reports_failed),
        ] {
            let help = format!("Zipkin tracer: {}", name.replace('_', " "));
            registry.register(format!("envoy_tracing_zipkin_{name}"), help, c.clone());
        }
        let o = &s.otel;
        for (name, c) in [
            ("spans_sent", &o.spans_sent),
            ("spans_dropped", &o.spans_dropped),
            ("timer_flushed", &o.timer_flushed),
            ("http_reports_sent", &o.http_reports_sent),
            ("http_reports_success", &o.http_reports_success),
            ("http_reports_failed", &o.http_reports_failed),
        ] {
            let help = format!("OpenTelemetry tracer: {}", name.replace('_', " "));
            registry.register(
                format!("envoy_tracing_opentelemetry_{name}"),
                help,
                c.clone(),
            );
        }
        let h = &s.hcm;
        for (name, f) in [
            ("random_sampling", &h.random_sampling),
            ("service_forced", &h.service_forced),
            ("client_enabled", &h.client_enabled),
            ("not_traceable", &h.not_traceable),
        ] {
            let help = format!("Tracing decisions: {}", name.replace('_', " "));
            registry.register(format!("envoy_http_tracing_{name}"), help, f.clone());
        }
        s
    }

    /// The decision counters of the connection manager with `stat_prefix`.
    pub fn hcm_counters(&self, stat_prefix: &str) -> HcmCounters {
        let label = HcmLabel {
            envoy_http_conn_manager_prefix: stat_prefix.to_owned(),
        };
        HcmCounters {
            random_sampling: self.hcm.random_sampling.get_or_create(&label).clone(),
            service_forced: self.hcm.service_forced.get_or_create(&label).clone(),
            client_enabled: self.hcm.client_enabled.get_or_create(&label).clone(),
            not_traceable: self.hcm.not_traceable.get_or_create(&label).clone(),
        }
    }
}

static STATS: OnceLock<TraceStats> = OnceLock::new();

/// Installs the process-wide counters (once; later calls are ignored).
pub fn install(stats: TraceStats) {
    let _ = STATS.set(stats);
}

/// The installed counters, or detached ones when none were installed.
pub fn global() -> &'static TraceStats {
    STATS.get_or_init(TraceStats::default)
}
