//! A client for Envoy's admin API on 127.0.0.1 (`/ready`, `/drain_listeners`,
//! `/quitquitquit`, and any other path), one HTTP/1.1 request per connection, bounded
//! by a timeout.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why the admin API gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Connecting failed (Envoy not listening yet, or gone).
    #[error("cannot connect to Envoy's admin at {addr}: {source}")]
    Connect {
        /// The admin address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The exchange failed.
    #[error("admin request failed: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built.
    #[error("bad admin request: {0}")]
    Request(#[from] http::Error),
    /// No answer in time.
    #[error("no answer from Envoy's admin within {0:?}")]
    Timeout(Duration),
}

/// An admin answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminResponse {
    /// The status code.
    pub status: u16,
    /// The body as text.
    pub body: String,
}

/// Envoy's admin API on 127.0.0.1:`port`.
#[derive(Debug, Clone, Copy)]
pub struct AdminClient {
    addr: SocketAddr,
    timeout: Duration,
}

impl AdminClient {
    /// A client for the admin port, with a 2 s timeout per request.
    pub fn new(port: u16) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            timeout: Duration::from_secs(2),
        }
    }

    /// The same client with another timeout.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    /// The admin address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// GET `path` (with its query).
    pub async fn get(&self, path: &str) -> Result<AdminResponse, AdminError> {
        self.request(Method::GET, path).await
    }

    /// POST `path` (with its query), empty body.
    pub async fn post(&self, path: &str) -> Result<AdminResponse, AdminError> {
        self.request(Method::POST, path).await
    }

    /// Envoy's server state from `/ready`: `Ok(true)` when it answers 200 (`LIVE`).
    pub async fn is_ready(&self) -> Result<bool, AdminError> {
        Ok(self.get("/ready").await?.status == 200)
    }

    async fn request(&self, method: Method, path: &str) -> Result<AdminResponse, AdminError> {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, self.addr.to_string())
            .body(Empty::<Bytes>::new())?;
        match tokio::time::timeout(self.timeout, exchange(self.addr, request)).await {
            Ok(result) => result,
            Err(_) => Err(AdminError::Timeout(self.timeout)),
        }
    }
}

async fn exchange(
    addr: SocketAddr,
    request: Request<Empty<Bytes>>,
) -> Result<AdminResponse, AdminError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| AdminError::Connect { addr, source })?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let result = async {
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(AdminResponse {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
    .await;
    driver.abort();
    result
}
