//! Serves one downstream connection with the HTTP connection manager: HTTP/1.1 (keep-alive,
//! absolute-form, upgrades, `CONNECT`) or HTTP/2 (prior knowledge) as the codec allows, and
//! a graceful close when the proxy drains (HTTP/1 `Connection: close`, HTTP/2 GOAWAY).

use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::config::Codec;
use super::stream::{self, ConnInfo};
use super::{Env, HcmConfig};

/// Serves `io` until the client closes it, or until drained.
pub async fn serve<IO>(
    io: IO,
    env: Arc<Env>,
    hcm: Arc<HcmConfig>,
    conn: ConnInfo,
    mut draining: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let codec = hcm.codec;
    let max_buf = hcm.max_request_headers_bytes.max(8192);
    let headers_timeout = hcm.request_headers_timeout;
    let service = hyper::service::service_fn(move |req| {
        stream::handle(Arc::clone(&env), Arc::clone(&hcm), conn, req)
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .max_buf_size(max_buf)
        .header_read_timeout(headers_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol();
    let builder = match codec {
        Codec::Auto => builder,
        Codec::Http1 => builder.http1_only(),
        Codec::Http2 => builder.http2_only(),
    };
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut drained = *draining.borrow();
    if drained {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, peer = %conn.peer, "downstream connection ended");
                }
                return;
            }
            changed = draining.changed(), if !drained => {
                if changed.is_err() || *draining.borrow() {
                    drained = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
