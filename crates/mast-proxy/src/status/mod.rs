//! Istio's status port (pilot-agent's 15020) for mast-proxy: `GET /healthz/ready` (200 once
//! the first configuration is applied and while not draining, else 503 with the server
//! state), `GET /stats/prometheus` (the admin port's, fetched over loopback), and the
//! application probes `GET /app-health/<container>/<readyz|livez|startupz>` run by
//! [`mast_probe`] from `ISTIO_KUBE_APP_PROBERS`. Any other path is 404.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use mast_probe::AppProbers;
use tokio::net::TcpListener;

use crate::signals::Signals;

/// How long `/stats/prometheus` waits for the admin port.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the status port reads.
#[derive(Debug, Clone)]
pub struct StatusState {
    /// Readiness and draining.
    pub signals: Signals,
    /// The admin address (`/stats/prometheus` is read there).
    pub admin: SocketAddr,
    /// The application probes.
    pub probers: Arc<AppProbers>,
}

/// Serves the status port on `listener` until shutdown.
pub async fn serve_status_on(listener: TcpListener, state: StatusState) -> std::io::Result<()> {
    let mut shutdown = state.signals.shutdown();
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "status port: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shut_down(&mut shutdown) => return Ok(()),
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "status connection ended");
            }
        });
    }
}

/// Resolves once shutdown is signalled (or its sender is gone).
async fn shut_down(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|down| *down).await;
}

async fn handle(state: &StatusState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    let path = req.uri().path();
    if let Some(answer) = state.probers.answer(path, req.headers()).await {
        let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut resp = Response::new(Full::new(answer.body));
        *resp.status_mut() = status;
        return resp;
    }
    match path {
        "/healthz/ready" if state.signals.is_ready() && !state.signals.is_draining() => {
            text(StatusCode::OK, Bytes::new())
        }
        "/healthz/ready" if state.signals.is_draining() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "DRAINING\n".into())
        }
        "/healthz/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n".into()),
        "/stats/prometheus" => match scrape(state.admin).await {
            Ok(resp) => resp,
            Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n").into()),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "unknown path; try /healthz/ready, /stats/prometheus or /app-health/<container>/readyz\n"
                .into(),
        ),
    }
}

/// The admin port's `/stats/prometheus`, content type kept.
async fn scrape(admin: SocketAddr) -> Result<Response<Full<Bytes>>, String> {
    let work = async {
        let tcp = tokio::net::TcpStream::connect(admin)
            .await
            .map_err(|e| format!("admin {admin}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::get("/stats/prometheus")
            .header(header::HOST, admin.to_string())
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        let mut out = Response::new(Full::new(body));
        *out.status_mut() = parts.status;
        if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
            out.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
        }
        Ok(out)
    };
    tokio::time::timeout(ADMIN_TIMEOUT, work)
        .await
        .map_err(|_| format!("admin {admin} did not answer"))?
}

fn text(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
