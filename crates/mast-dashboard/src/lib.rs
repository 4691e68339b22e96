//! The dashboard (Kiali's role, served by mastd on 20001) and the local span collector.
//!
//! Owns: the dashboard's shared state ([`Dashboard`]), its HTTP router and server. The parts:
//! [`scrape`] reads every connected proxy's metrics (or a real Prometheus) into [`scrape::Telemetry`],
//! [`graph`] turns them into the service graph, [`api`] serves the JSON API and the live
//! event stream, [`traces`] is the span collector (Zipkin v2 JSON and OTLP/HTTP) with its query
//! API, and [`assets`] serves the embedded web page.

pub mod api;
pub mod assets;
pub mod graph;
pub mod scrape;
pub mod traces;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mast_model::MeshSnapshot;
use mast_registry::ConfigStore;
use mast_xds_server::XdsServer;
use tokio::sync::watch;

/// What the dashboard reads from mastd.
#[derive(Clone)]
pub struct Sources {
    /// The configuration store (resources, rejected ones with their diagnostics).
    pub store: ConfigStore,
    /// The mesh snapshots served (services, endpoints).
    pub snapshots: watch::Receiver<Arc<MeshSnapshot>>,
    /// The xDS server: connected proxies, their sync status and last generated config.
    pub xds: XdsServer,
    /// The config folders, in rank order.
    pub folders: Arc<[PathBuf]>,
}

/// How the dashboard gets its numbers.
#[derive(Debug, Clone)]
pub struct Options {
    /// Query this Prometheus (`http://host:port`) instead of scraping the proxies.
    pub prometheus: Option<String>,
    /// How often proxies are scraped (and the graph recomputed).
    pub scrape_interval: Duration,
    /// The window rates and latency percentiles are computed over.
    pub rate_window: Duration,
    /// How many traces the collector keeps (the oldest go first).
    pub trace_capacity: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            prometheus: None,
            scrape_interval: Duration::from_secs(2),
            rate_window: Duration::from_secs(30),
            trace_capacity: 1000,
        }
    }
}

/// The dashboard's shared state; cheap to clone (the router's state).
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

struct Inner {
    sources: Sources,
    options: Options,
    traces: traces::TraceStore,
    telemetry: scrape::Telemetry,
}

impl Dashboard {
    /// Starts the scraper (a background task on the current Tokio runtime) and returns the
    /// dashboard.
    pub fn start(sources: Sources, options: Options) -> Self {
        let traces = traces::TraceStore::new(options.trace_capacity);
        let telemetry = scrape::Telemetry::start(&sources, &options);
        Self {
            inner: Arc::new(Inner {
                sources,
                options,
                traces,
                telemetry,
            }),
        }
    }

    /// What the dashboard reads from mastd.
    pub fn sources(&self) -> &Sources {
        &self.inner.sources
    }

    /// The options it was started with.
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// The span collector's store.
    pub fn traces(&self) -> &traces::TraceStore {
        &self.inner.traces
    }

    /// The scraped metrics.
    pub fn telemetry(&self) -> &scrape::Telemetry {
        &self.inner.telemetry
    }

    /// The whole HTTP surface: the page, the JSON API and event stream, the collector.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .merge(api::routes())
            .merge(traces::routes())
            .merge(assets::routes())
            .with_state(self.clone())
    }
}

/// Serves the dashboard on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    dashboard: Dashboard,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, dashboard.router())
        .with_graceful_shutdown(shutdown)
        .await
}
