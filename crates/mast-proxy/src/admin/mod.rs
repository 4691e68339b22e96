//! The admin server (127.0.0.1:15000) and the health server (15021), on hyper 1.
//!
//! Admin: `GET /ready` (200 `LIVE`, else 503 `PRE_INITIALIZING` / `INITIALIZING` /
//! `DRAINING`), `GET /config_dump` (`?include_eds`), `GET /clusters` (`?format=json`),
//! `GET /server_info`, `GET /stats/prometheus`, `GET /stats` (`?filter=`),
//! `POST /quitquitquit`, `POST /drain_listeners`. Health: `GET /healthz/ready` (200 when ready
//! and not draining). Both stop accepting when the shutdown signal fires.

mod dump;
mod redact;
mod stats;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use prometheus_client::registry::Registry;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::body::{self, Body};
use crate::bootstrap::Bootstrap;
use crate::signals::Signals;
use crate::xds::XdsClient;

/// Supplies Envoy's `/clusters?format=json` document with live host health (outlier
/// detection); without one, it is built from the xDS cache (EDS health only).
pub type ClustersProvider = Arc<dyn Fn() -> Value + Send + Sync>;

/// What the admin and health servers read.
#[derive(Clone)]
pub struct AdminState {
    /// The xDS client (its cache and node).
    pub xds: Arc<XdsClient>,
    /// Readiness, draining, shutdown.
    pub signals: Signals,
    /// The metrics.
    pub registry: Arc<Registry>,
    /// The resolved flags (admin address, workers, drain).
    pub bootstrap: Arc<Bootstrap>,
    /// Live `/clusters?format=json`, when the cluster manager provides it.
    pub clusters: Option<ClustersProvider>,
    started: Instant,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("xds", &self.xds)
            .field("bootstrap", &self.bootstrap)
            .finish_non_exhaustive()
    }
}

impl AdminState {
    /// A state; `/clusters` is built from the xDS cache until [`Self::with_clusters`].
    pub fn new(
        xds: Arc<XdsClient>,
        signals: Signals,
        registry: Arc<Registry>,
        bootstrap: Arc<Bootstrap>,
    ) -> Self {
        Self {
            xds,
            signals,
            registry,
            bootstrap,
            clusters: None,
            started: Instant::now(),
        }
    }

    /// Uses `provider` for `/clusters`.
    pub fn with_clusters(mut self, provider: ClustersProvider) -> Self {
        self.clusters = Some(provider);
        self
    }
}

/// Envoy's server state: `LIVE`, `DRAINING`, `PRE_INITIALIZING` (initial fetch not done),
/// `INITIALIZING` (fetched, listeners not yet ready).
fn server_state(state: &AdminState) -> &'static str {
    if state.signals.is_draining() {
        "DRAINING"
    } else if state.signals.is_ready() {
        "LIVE"
    } else if state.xds.initial_fetch_done() {
        "INITIALIZING"
    } else {
        "PRE_INITIALIZING"
    }
}

/// Binds `addr` and serves the admin API until shutdown.
pub async fn serve_admin(addr: SocketAddr, state: AdminState) -> std::io::Result<()> {
    serve_admin_on(crate::listener::reserved::bind(addr).await?, state).await
}

/// Serves the admin API on a bound listener until shutdown.
pub async fn serve_admin_on(listener: TcpListener, state: AdminState) -> std::io::Result<()> {
    serve(listener, state, admin).await
}

/// Serves Istio's metrics port (15090): `GET /stats/prometheus` (the admin's text) only,
/// until shutdown.
pub async fn serve_prometheus_on(listener: TcpListener, state: AdminState) -> std::io::Result<()> {
    serve(listener, state, prometheus_only).await
}

fn prometheus_only(state: &AdminState, req: &Request<Incoming>) -> Response<Body> {
    match req.uri().path() {
        "/stats/prometheus" => prometheus(state),
        _ => text(
            StatusCode::NOT_FOUND,
            "unknown path; try /stats/prometheus\n",
        ),
    }
}

fn prometheus(state: &AdminState) -> Response<Body> {
    respond(
        StatusCode::OK,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        stats::prometheus(&state.registry, &state.xds.cache()),
    )
}

/// Binds `addr` and serves `/healthz/ready` until shutdown.
pub async fn serve_health(addr: SocketAddr, state: AdminState) -> std::io::Result<()> {
    serve_health_on(crate::listener::reserved::bind(addr).await?, state).await
}

/// Serves `/healthz/ready` on a bound listener until shutdown.
pub async fn serve_health_on(listener: TcpListener, state: AdminState) -> std::io::Result<()> {
    serve(listener, state, health).await
}

async fn serve(
    listener: TcpListener,
    state: AdminState,
    route: fn(&AdminState, &Request<Incoming>) -> Response<Body>,
) -> std::io::Result<()> {
    let mut shutdown = state.signals.shutdown();
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = signalled(&mut shutdown) => return Ok(()),
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let response = route(&state, &req);
                async move { Ok::<_, Infallible>(response) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "admin connection ended");
            }
        });
    }
}

/// Resolves once the watched flag is `true` (or its sender is gone).
async fn signalled(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    respond(status, "text/plain; charset=UTF-8", body.into())
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(body::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

fn json(value: &Value) -> Response<Body> {
    let body = serde_json::to_string_pretty(value).unwrap_or_default();
    respond(StatusCode::OK, "application/json", body + "\n")
}

/// The query parameter `name` (`Some("")` when present without a value).
fn param<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

fn admin(state: &AdminState, req: &Request<Incoming>) -> Response<Body> {
    let post = req.method() == Method::POST;
    match req.uri().path() {
        "/ready" => {
            let s = server_state(state);
            let code = if s == "LIVE" {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            text(code, format!("{s}\n"))
        }
        "/config_dump" => match dump::config_dump(state, param(req, "include_eds").is_some()) {
            Ok(value) => json(&value),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        },
        "/clusters" if param(req, "format") == Some("json") => json(&dump::clusters_json(state)),
        "/clusters" => text(StatusCode::OK, dump::clusters_plain(state)),
        "/server_info" => json(&dump::server_info(state)),
        "/stats/prometheus" => prometheus(state),
        "/stats" => plain_stats(state, req),
        "/quitquitquit" | "/drain_listeners" | "/healthcheck/fail" if !post => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "This endpoint requires POST\n",
        ),
        "/quitquitquit" => {
            tracing::info!("admin /quitquitquit: shutting down");
            state.signals.shut_down();
            text(StatusCode::OK, "OK\n")
        }
        "/drain_listeners" | "/healthcheck/fail" => {
            tracing::info!(path = req.uri().path(), "admin: draining");
            state.signals.start_draining();
            text(StatusCode::OK, "OK\n")
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "unknown path; try /ready, /config_dump, /clusters, /server_info, /stats, \
             /stats/prometheus, POST /quitquitquit, POST /drain_listeners\n",
        ),
    }
}

fn plain_stats(state: &AdminState, req: &Request<Incoming>) -> Response<Body> {
    let filter = match param(req, "filter").map(percent_decode) {
        Some(f) => match regex::Regex::new(&f) {
            Ok(re) => Some(re),
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("invalid regex: {e}\n")),
        },
        None => None,
    };
    let cache = state.xds.cache();
    text(
        StatusCode::OK,
        stats::plain(&state.registry, &cache, filter.as_ref()),
    )
}

/// `%XX` and `+` decoding of a query value.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn health(state: &AdminState, req: &Request<Incoming>) -> Response<Body> {
    match req.uri().path() {
        "/healthz/ready" if state.signals.is_ready() && !state.signals.is_draining() => {
            text(StatusCode::OK, "")
        }
        "/healthz/ready" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", server_state(state)),
        ),
        _ => text(StatusCode::NOT_FOUND, ""),
    }
}
