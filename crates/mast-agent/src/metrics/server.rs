//! The HTTP/1.1 server of the metrics port: `GET /stats/prometheus` (Envoy's admin stats
//! merged with the agent's, text format 0.0.4), `GET /healthz/ready` (Envoy's `/ready`) and
//! Istio's application probes `GET /app-health/<container>/<readyz|livez|startupz>`
//! ([`mast_probe`], from `ISTIO_KUBE_APP_PROBERS`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use super::{AgentMetrics, text};
use crate::admin::AdminClient;

/// How long a scrape waits for Envoy's admin.
const ENVOY_TIMEOUT: Duration = Duration::from_secs(5);
/// The text format's content type.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the metrics port serves from.
#[derive(Debug, Clone)]
pub struct MetricsServer {
    admin: AdminClient,
    metrics: AgentMetrics,
    probers: Arc<mast_probe::AppProbers>,
}

impl MetricsServer {
    /// Serves Envoy's admin on `admin_port` merged with `metrics`.
    pub fn new(admin_port: u16, metrics: AgentMetrics) -> Self {
        Self {
            admin: AdminClient::new(admin_port).with_timeout(ENVOY_TIMEOUT),
            metrics,
            probers: Arc::default(),
        }
    }

    /// Also answers the application probes in `probers`.
    #[must_use]
    pub fn with_probers(mut self, probers: Arc<mast_probe::AppProbers>) -> Self {
        self.probers = probers;
        self
    }

    /// The merged text: Envoy's stats then the agent's. When Envoy does not answer, the
    /// agent's alone (and `mast_agent_scrape_failures_total` counts it).
    pub async fn merged(&self) -> String {
        let envoy = match self.admin.get("/stats/prometheus").await {
            Ok(r) if r.status == 200 => Some(r.body),
            Ok(r) => {
                warn!(status = r.status, "Envoy's /stats/prometheus failed");
                None
            }
            Err(e) => {
                debug!(error = %e, "cannot scrape Envoy");
                None
            }
        };
        if envoy.is_none() {
            self.metrics.scrape_failed();
        }
        let own = self.metrics.encode();
        match &envoy {
            Some(envoy) => text::merge(&[envoy, &own]),
            None => text::merge(&[&own]),
        }
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
        }
        let path = req.uri().path();
        if let Some(answer) = self.probers.answer(path, req.headers()).await {
            let mut resp = Response::new(Full::new(answer.body));
            *resp.status_mut() =
                StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
            return resp;
        }
        match path {
            "/stats/prometheus" | "/metrics" => {
                let body = self.merged().await;
                let mut resp = plain(StatusCode::OK, body);
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static(TEXT_FORMAT),
                );
                resp
            }
            "/healthz/ready" => match self.admin.is_ready().await {
                Ok(true) => plain(StatusCode::OK, "LIVE\n".into()),
                Ok(false) => plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Envoy is not LIVE\n".into(),
                ),
                Err(e) => plain(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
            },
            _ => plain(
                StatusCode::NOT_FOUND,
                "unknown path; try /stats/prometheus, /healthz/ready or /app-health/<container>/readyz\n"
                    .into(),
            ),
        }
    }
}

fn plain(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Serves `server` on `listener` until the task is dropped (each connection on its own
/// task).
pub async fn serve(listener: TcpListener, server: MetricsServer) -> std::io::Result<()> {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                warn!(error = %e, "metrics port: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let server = server.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(server.handle(req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                debug!(error = %e, "metrics port: connection ended with an error");
            }
        });
    }
}
