//! The span exporter of one tracer configuration (shared by every connection manager whose
//! tracer is configured the same, as Envoy shares its tracers): finished spans go into a bounded channel
//! (full → dropped and counted; a request never waits), and a background task batches them
//! — a flush when 5 are buffered or every second (Envoy: 5 spans or 5 s) — and POSTs each
//! batch (Zipkin v2 JSON or OTLP/HTTP protobuf) to an endpoint of the collector cluster
//! picked by the cluster's load balancer, as Envoy's async HTTP client does. The task ends
//! when its configuration is replaced (the last sender is dropped), after a final flush.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Uri, header};
use http_body_util::BodyExt as _;
use mast_otlp::{InstrumentationScope, KeyValue};
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

use super::otlp;
use super::provider::{Collector, DEFAULT_BUFFER, OpenTelemetry, Provider};
use super::record::FinishedSpan;
use super::stats::{OtelStats, ZipkinStats};
use crate::cluster::{ClusterManager, LbContext};

/// A batch is sent as soon as this many spans are buffered.
pub const MIN_FLUSH_SPANS: usize = 5;
/// …and at least this often.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Hands finished spans to the export task.
#[derive(Debug)]
pub struct Reporter {
    tx: mpsc::Sender<FinishedSpan>,
    dropped: Counter,
}

/// The live exporters, so connection managers with the same tracer share one (as Envoy
/// shares a tracer between listeners): provider, cluster manager, exporter.
type Registry = Vec<(Provider, usize, Weak<Reporter>)>;

static LIVE: Mutex<Registry> = Mutex::new(Vec::new());

impl Reporter {
    /// The exporter of `provider` through `clusters`: a live one with the same configuration,
    /// else a new one ([`Reporter::start`]).
    pub fn shared(provider: &Provider, clusters: &Arc<ClusterManager>) -> Option<Arc<Self>> {
        let key = Arc::as_ptr(clusters) as usize;
        let mut live = LIVE.lock();
        live.retain(|(_, _, r)| r.strong_count() > 0);
        let found = live
            .iter()
            .filter(|(p, k, _)| *k == key && p == provider)
            .find_map(|(_, _, r)| r.upgrade());
        if found.is_some() {
            return found;
        }
        let reporter = Self::start(provider, Arc::clone(clusters))?;
        live.push((provider.clone(), key, Arc::downgrade(&reporter)));
        Some(reporter)
    }

    /// Starts the export task of `provider` (on the current tokio runtime); `None` when the
    /// tracer has no collector or there is no runtime.
    pub fn start(provider: &Provider, clusters: Arc<ClusterManager>) -> Option<Arc<Self>> {
        let stats = super::stats::global();
        let (collector, format, buffer, dropped) = match provider {
            Provider::Zipkin(z) => (
                z.collector.clone(),
                Format::Zipkin(stats.zipkin.clone()),
                DEFAULT_BUFFER,
                stats.zipkin.spans_dropped.clone(),
            ),
            Provider::OpenTelemetry(o) => (
                o.collector.clone()?,
                Format::Otlp(shared(o), stats.otel.clone()),
                o.buffer,
                stats.otel.spans_dropped.clone(),
            ),
        };
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (tx, rx) = mpsc::channel(buffer);
        let export = Export {
            collector,
            format,
            clusters,
        };
        runtime.spawn(run(rx, export));
        Some(Arc::new(Self { tx, dropped }))
    }

    /// Queues `span` for export; drops (and counts) it when the buffer is full.
    pub fn report(&self, span: FinishedSpan) {
        if self.tx.try_send(span).is_err() {
            self.dropped.inc();
        }
    }
}

/// The resource and scope of an OpenTelemetry tracer's spans.
fn shared(o: &OpenTelemetry) -> otlp::Shared {
    let mut resource = Vec::new();
    if o.service_name_attribute {
        resource.push(KeyValue::string("service.name", o.service_name.as_str()));
    }
    if o.sdk_attributes {
        resource.push(KeyValue::string("telemetry.sdk.language", "rust"));
        resource.push(KeyValue::string("telemetry.sdk.name", "mast-proxy"));
        resource.push(KeyValue::string(
            "telemetry.sdk.version",
            env!("CARGO_PKG_VERSION"),
        ));
    }
    otlp::Shared {
        resource,
        scope: o.scope.then(|| InstrumentationScope {
            name: "mast-proxy".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }),
    }
}

enum Format {
    Zipkin(ZipkinStats),
    Otlp(otlp::Shared, OtelStats),
}

struct Export {
    collector: Collector,
    format: Format,
    clusters: Arc<ClusterManager>,
}

async fn run(mut rx: mpsc::Receiver<FinishedSpan>, export: Export) {
    let mut buf = Vec::with_capacity(MIN_FLUSH_SPANS);
    let start = tokio::time::Instant::now() + FLUSH_INTERVAL;
    let mut tick = tokio::time::interval_at(start, FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            span = rx.recv() => match span {
                Some(s) => {
                    buf.push(s);
                    if buf.len() >= MIN_FLUSH_SPANS {
                        export.flush(&mut buf).await;
                    }
                }
                None => {
                    export.flush(&mut buf).await;
                    return;
                }
            },
            _ = tick.tick() => {
                match &export.format {
                    Format::Zipkin(s) => s.timer_flushed.inc(),
                    Format::Otlp(_, s) => s.timer_flushed.inc(),
                };
                export.flush(&mut buf).await;
            }
        }
    }
}

/// Why an export request did not get an answer.
#[derive(Debug, thiserror::Error)]
enum PostError {
    #[error("collector cluster {0:?} does not exist")]
    NoCluster(String),
    #[error("{0}")]
    Failed(String),
}

impl Export {
    async fn flush(&self, buf: &mut Vec<FinishedSpan>) {
        if buf.is_empty() {
            return;
        }
        let spans = std::mem::replace(buf, Vec::with_capacity(MIN_FLUSH_SPANS));
        let n = spans.len() as u64;
        let (body, content_type) = match &self.format {
            Format::Zipkin(s) => {
                s.spans_sent.inc_by(n);
                (
                    super::zipkin::encode(&spans, super::node()),
                    "application/json",
                )
            }
            Format::Otlp(shared, s) => {
                s.spans_sent.inc_by(n);
                (otlp::encode(&spans, shared), "application/x-protobuf")
            }
        };
        let result = post(&self.clusters, &self.collector, content_type, body).await;
        if let Err(e) = &result {
            tracing::debug!(cluster = %self.collector.cluster, error = %e, "span export failed");
        }
        self.account(result);
    }

    fn account(&self, result: Result<u16, PostError>) {
        match (&self.format, result) {
            (Format::Zipkin(s), Err(PostError::NoCluster(_))) => {
                s.reports_skipped_no_cluster.inc();
            }
            (Format::Zipkin(s), Err(_)) => {
                s.reports_failed.inc();
            }
            (Format::Zipkin(s), Ok(202)) => {
                s.reports_sent.inc();
            }
            (Format::Zipkin(s), Ok(_)) => {
                s.reports_dropped.inc();
            }
            (Format::Otlp(_, s), Err(PostError::NoCluster(_))) => {
                s.http_reports_failed.inc();
            }
            (Format::Otlp(_, s), result) => {
                s.http_reports_sent.inc();
                if result.is_ok_and(|status| status == 200) {
                    s.http_reports_success.inc();
                } else {
                    s.http_reports_failed.inc();
                }
            }
        }
    }
}

/// POSTs `body` to the collector; the response status.
async fn post(
    clusters: &ClusterManager,
    c: &Collector,
    content_type: &'static str,
    body: Vec<u8>,
) -> Result<u16, PostError> {
    let cluster = clusters
        .get(&c.cluster)
        .ok_or_else(|| PostError::NoCluster(c.cluster.clone()))?;
    let _guard = cluster
        .try_request()
        .map_err(|_| PostError::Failed("circuit breaker overflow".into()))?;
    let ctx = LbContext {
        max_attempts: 1,
        ..LbContext::default()
    };
    let endpoint = cluster
        .select(&ctx)
        .await
        .map_err(|e| PostError::Failed(e.to_string()))?;
    let request = build(c, content_type, body, endpoint.address())?;
    let exchange = async {
        let response = endpoint
            .send(request)
            .await
            .map_err(|e| PostError::Failed(e.to_string()))?;
        let status = response.status().as_u16();
        let _ = response.into_body().collect().await;
        Ok(status)
    };
    tokio::time::timeout(c.timeout, exchange)
        .await
        .map_err(|_| PostError::Failed("timed out".into()))?
}

fn build(
    c: &Collector,
    content_type: &'static str,
    body: Vec<u8>,
    addr: std::net::SocketAddr,
) -> Result<Request<crate::body::Body>, PostError> {
    // The Host may not be a valid authority (a cluster name): address the endpoint then.
    let uri = format!("http://{}{}", c.host, c.path)
        .parse::<Uri>()
        .or_else(|_| format!("http://{addr}{}", c.path).parse::<Uri>())
        .map_err(|e| PostError::Failed(format!("bad collector path {:?}: {e}", c.path)))?;
    let mut r = Request::new(crate::body::full(Bytes::from(body)));
    *r.method_mut() = Method::POST;
    *r.uri_mut() = uri;
    let h = r.headers_mut();
    if let Ok(host) = HeaderValue::from_str(&c.host) {
        h.insert(header::HOST, host);
    }
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if content_type == "application/x-protobuf" {
        h.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!(
                "OTel-OTLP-Exporter-mast-proxy/",
                env!("CARGO_PKG_VERSION")
            )),
        );
    }
    for (name, value) in &c.headers {
        h.insert(name.clone(), value.clone());
    }
    Ok(r)
}
