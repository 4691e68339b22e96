//! Serves one downstream connection with the HTTP connection manager: HTTP/1.1 (keep-alive,
//! absolute-form, upgrades, `CONNECT`) or HTTP/2 (prior knowledge) as the codec allows, and
//! a graceful close when the proxy drains (HTTP/1 `Connection: close`, HTTP/2 GOAWAY).
//!
//! The connection's limits (`docs/proxy-hardening.md`) apply here: the head size and
//! header count (431), the smuggling framings hyper tolerates and Envoy rejects (400/501,
//! never forwarded), HTTP/2 floods, and the request-headers and idle timeouts — the last
//! three through the [`Guarded`] I/O wrapper.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Version, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::config::Codec;
use super::stream::{self, ConnInfo};
use super::{Env, HcmConfig};
use crate::body::{self, Body};
use crate::limits::h1::HeadScanner;
use crate::limits::h2::FloodGuard;
use crate::limits::io::Timeouts;
use crate::limits::{ConnShared, DEFAULT_HEADERS_TIMEOUT, Guarded, Inspect};

/// hyper's smallest allowed HTTP/1 read buffer.
const MIN_BUF: usize = 8192;
/// The per-field overhead HTTP/2 adds to a header list's size (RFC 9113 §6.5.2).
const H2_FIELD_OVERHEAD: usize = 32;

/// What makes a connection drain.
#[derive(Debug)]
pub struct Drains {
    /// The proxy drains (SIGTERM, `/drain_listeners`).
    pub proxy: watch::Receiver<bool>,
    /// The listener configuration the connection was accepted under was replaced or removed.
    pub listener: Option<watch::Receiver<bool>>,
}

/// Serves `io` until the client closes it, or until the proxy drains.
pub async fn serve<IO>(
    io: IO,
    env: Arc<Env>,
    hcm: Arc<HcmConfig>,
    conn: ConnInfo,
    draining: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let drains = Drains {
        proxy: draining,
        listener: None,
    };
    serve_with(io, env, hcm, conn, drains).await;
}

/// Serves `io` until the client closes it, or until drained (HTTP/1: `Connection: close`
/// after the response in progress, idle connections closed; HTTP/2: GOAWAY).
pub async fn serve_with<IO>(
    io: IO,
    env: Arc<Env>,
    hcm: Arc<HcmConfig>,
    conn: ConnInfo,
    drains: Drains,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Drains {
        proxy: mut draining,
        listener,
    } = drains;
    let mut replaced = listener;
    let codec = hcm.codec;
    let max_buf = hcm.max_request_headers_bytes.max(MIN_BUF);
    let shared = Arc::new(ConnShared::default());
    let inspect = match codec {
        Codec::Auto => Inspect::Detect(0),
        Codec::Http1 => Inspect::H1(HeadScanner::new(max_buf)),
        Codec::Http2 => Inspect::H2(Box::new(FloodGuard::new(true))),
    };
    let timeouts = Timeouts {
        headers: hcm
            .request_headers_timeout
            .or(Some(DEFAULT_HEADERS_TIMEOUT)),
        idle: hcm.idle_timeout,
    };
    let io = Guarded::new(io, Arc::clone(&shared), inspect, max_buf, timeouts);
    let builder = builder(&hcm);
    let peer = conn.peer;
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (env, hcm, shared) = (Arc::clone(&env), Arc::clone(&hcm), Arc::clone(&shared));
        let conn = conn.clone();
        async move {
            if let Some(response) = precheck(&req, &hcm, &shared) {
                return Ok::<_, std::convert::Infallible>(response);
            }
            handle(env, hcm, conn, req, shared).await
        }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut drained = *draining.borrow() || replaced.as_ref().is_some_and(|r| *r.borrow());
    if drained {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, %peer, "downstream connection ended");
                }
                return;
            }
            changed = draining.changed(), if !drained => {
                if changed.is_err() || *draining.borrow() {
                    drained = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
            changed = listener_replaced(&mut replaced), if !drained && replaced.is_some() => {
                if changed {
                    drained = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Waits for the listener's `replaced` flag: `true` once it is set; `false` (and stops
/// watching) when the configuration went away without being replaced.
async fn listener_replaced(replaced: &mut Option<watch::Receiver<bool>>) -> bool {
    let Some(rx) = replaced else {
        return false;
    };
    match rx.changed().await {
        Ok(()) => *rx.borrow(),
        Err(_) => {
            *replaced = None;
            false
        }
    }
}

fn builder(hcm: &HcmConfig) -> auto::Builder<TokioExecutor> {
    let max_buf = hcm.max_request_headers_bytes.max(MIN_BUF);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .max_buf_size(max_buf)
        .max_headers(hcm.max_headers_count)
        // The headers timeout runs in `Guarded` from a head's first byte, as Envoy's; hyper's
        // would also close idle keep-alive connections.
        .header_read_timeout(None);
    let list = hcm.max_request_headers_bytes + H2_FIELD_OVERHEAD * hcm.max_headers_count;
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(list).unwrap_or(u32::MAX))
        .enable_connect_protocol();
    match hcm.codec {
        Codec::Auto => builder,
        Codec::Http1 => builder.http1_only(),
        Codec::Http2 => builder.http2_only(),
    }
}

async fn handle(
    env: Arc<Env>,
    hcm: Arc<HcmConfig>,
    conn: ConnInfo,
    req: Request<Incoming>,
    shared: Arc<ConnShared>,
) -> Result<Response<Body>, std::convert::Infallible> {
    // Upgrades and CONNECT stay "in flight" for the connection's life: the idle timeout
    // does not cut a quiet tunnel (Envoy: the stream is still active).
    let tunnel =
        req.method() == http::Method::CONNECT || req.headers().contains_key(header::UPGRADE);
    shared.begin();
    let response = stream::handle(env, hcm, conn, req).await;
    if !tunnel {
        shared.end();
    }
    response
}

/// A local reply for a request the limits refuse, before any routing.
fn precheck(
    req: &Request<Incoming>,
    hcm: &HcmConfig,
    shared: &ConnShared,
) -> Option<Response<Body>> {
    if req.version() == Version::HTTP_2 {
        let (count, size) = h2_header_load(req);
        let too_large = count > hcm.max_headers_count || size > hcm.max_request_headers_bytes;
        return too_large.then(|| {
            refuse(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Request Header Fields Too Large",
                false,
            )
        });
    }
    let status = shared.rejected(shared.next_request())?;
    Some(match status {
        501 => refuse(StatusCode::NOT_IMPLEMENTED, "Not Implemented", true),
        431 => refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Request Header Fields Too Large",
            true,
        ),
        _ => refuse(StatusCode::BAD_REQUEST, "Bad Request", true),
    })
}

/// An HTTP/2 request's header count and size as Envoy counts them: pseudo-headers included,
/// names and values.
fn h2_header_load(req: &Request<Incoming>) -> (usize, usize) {
    let uri = req.uri();
    let mut count = 1 + req.headers().len();
    let mut size = ":method".len() + req.method().as_str().len();
    if let Some(s) = uri.scheme_str() {
        count += 1;
        size += ":scheme".len() + s.len();
    }
    if let Some(a) = uri.authority() {
        count += 1;
        size += ":authority".len() + a.as_str().len();
    }
    if req.method() != http::Method::CONNECT {
        count += 1;
        size += ":path".len() + uri.path_and_query().map_or(1, |p| p.as_str().len());
    }
    size += req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum::<usize>();
    (count, size)
}

fn refuse(status: StatusCode, text: &'static str, close: bool) -> Response<Body> {
    let mut response = Response::new(body::full(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
    if close {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
