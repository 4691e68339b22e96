//! [`KeepAliveClient`]: an HTTP/1.1 client that sends its requests one after another on one
//! kept-alive connection to an HTTP proxy (absolute-form), as a pooled client behind
//! `HTTP_PROXY` does. When the proxy closed the connection between requests it opens a new
//! one (counted: [`KeepAliveClient::connections`]), as such a client would; a request that
//! fails on a connection is reported, never retried.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::client::{ClientError, DEFAULT_TIMEOUT, HttpResponse};

/// One kept-alive connection to a proxy (see the module docs).
#[derive(Debug)]
pub struct KeepAliveClient {
    proxy: SocketAddr,
    timeout: Duration,
    open: Option<(SendRequest<Empty<Bytes>>, JoinHandle<()>)>,
    connections: u64,
}

impl KeepAliveClient {
    /// A client for the HTTP proxy at `proxy`; connects on the first request.
    pub fn new(proxy: SocketAddr) -> Self {
        Self {
            proxy,
            timeout: DEFAULT_TIMEOUT,
            open: None,
            connections: 0,
        }
    }

    /// Sets the time each request may take (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many connections it opened.
    pub fn connections(&self) -> u64 {
        self.connections
    }

    /// GETs `url` (absolute) on the kept-alive connection.
    pub async fn get(&mut self, url: &str) -> Result<HttpResponse, ClientError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| ClientError::BadRequest(format!("{url:?}: {e}")))?;
        let host = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .ok_or_else(|| ClientError::BadRequest(format!("{url:?} is not absolute")))?;
        let mut request = Request::new(Empty::new());
        *request.uri_mut() = uri;
        let host =
            HeaderValue::from_str(&host).map_err(|e| ClientError::BadRequest(e.to_string()))?;
        request.headers_mut().insert(http::header::HOST, host);
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.exchange(request)).await {
            Ok(result) => result,
            Err(_) => {
                self.drop_connection();
                Err(ClientError::Timeout(timeout))
            }
        }
    }

    async fn exchange(
        &mut self,
        request: Request<Empty<Bytes>>,
    ) -> Result<HttpResponse, ClientError> {
        let reusable = self
            .open
            .as_ref()
            .is_some_and(|(sender, _)| !sender.is_closed());
        if !reusable {
            self.connect().await?;
        }
        let Some((sender, _)) = self.open.as_mut() else {
            return Err(ClientError::BadRequest("no connection".into()));
        };
        let result = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok(HttpResponse {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        }
        .await;
        if result.is_err() {
            self.drop_connection();
        }
        result
    }

    async fn connect(&mut self) -> Result<(), ClientError> {
        self.drop_connection();
        let addr = self.proxy;
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect { addr, source })?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        self.connections += 1;
        self.open = Some((sender, driver));
        Ok(())
    }

    fn drop_connection(&mut self) {
        if let Some((_, driver)) = self.open.take() {
            driver.abort();
        }
    }
}

impl Drop for KeepAliveClient {
    fn drop(&mut self) {
        self.drop_connection();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::EchoServer;

    #[tokio::test]
    async fn reuses_its_connection() {
        let echo = EchoServer::start("ka").unwrap();
        let mut client = KeepAliveClient::new(echo.addr());
        let url = format!("http://127.0.0.1:{}/x", echo.port());
        for _ in 0..3 {
            let r = client.get(&url).await.unwrap();
            assert_eq!((r.status, r.trimmed()), (200, "ka".to_owned()));
        }
        assert_eq!((client.connections(), echo.connection_count()), (1, 1));
    }
}
