//! A small HTTP/1.1 client for tests: one request per connection, bounded by a timeout.
//! [`HttpRequest::via_proxy`] sends an absolute-form request (`GET http://host/path`) to an
//! HTTP proxy such as a sidecar's ports-mode outbound listener, the way a program with
//! `HTTP_PROXY` set would; [`HttpRequest::direct`] sends an origin-form request
//! (`GET /path`, `Host` from the URL) straight to an address.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long a request may take, connection included, unless set with
/// [`HttpRequest::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL, method or a header could not be used.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The TCP connection failed (refused, reset, …).
    #[error("connect to {addr}: {source}")]
    Connect {
        /// Where we tried to connect.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The connection broke before a whole answer arrived.
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// No whole answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// An answer.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl HttpResponse {
    /// The first value of header `name` as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body without surrounding whitespace: an [`crate::EchoServer`]'s name.
    pub fn trimmed(&self) -> String {
        self.text().trim().to_owned()
    }
}

/// A request to send; build it, then call [`HttpRequest::via_proxy`] or
/// [`HttpRequest::direct`].
#[derive(Debug, Clone)]
pub struct HttpRequest {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Bytes,
    timeout: Duration,
}

impl HttpRequest {
    /// A request with `method` for `url` (`http://host[:port]/path?query`, or just a path
    /// for [`HttpRequest::direct`]).
    pub fn new(method: &str, url: &str) -> Self {
        Self {
            method: method.to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: Bytes::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A GET request.
    pub fn get(url: &str) -> Self {
        Self::new("GET", url)
    }

    /// Adds a header (a `host` header replaces the one taken from the URL).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds several headers.
    pub fn headers(mut self, headers: &[(&str, &str)]) -> Self {
        self.headers.extend(
            headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the time allowed for the whole exchange.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends the request in absolute form to the HTTP proxy at `proxy`; the URL must be
    /// absolute (`http://host/...`).
    pub async fn via_proxy(self, proxy: SocketAddr) -> Result<HttpResponse, ClientError> {
        let uri: Uri = self.url.parse().map_err(|e| bad(&self.url, e))?;
        let Some(authority) = uri.authority().map(|a| a.as_str().to_owned()) else {
            return Err(ClientError::BadRequest(format!(
                "{:?} is not an absolute URL",
                self.url
            )));
        };
        self.send(proxy, uri, &authority).await
    }

    /// Sends the request in origin form to `addr`, with `Host` from the URL (or `addr`
    /// when the URL is only a path).
    pub async fn direct(self, addr: SocketAddr) -> Result<HttpResponse, ClientError> {
        let uri: Uri = self.url.parse().map_err(|e| bad(&self.url, e))?;
        let authority = uri
            .authority()
            .map_or_else(|| addr.to_string(), |a| a.as_str().to_owned());
        let origin: Uri = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|e| bad(&self.url, e))?;
        self.send(addr, origin, &authority).await
    }

    async fn send(
        self,
        addr: SocketAddr,
        uri: Uri,
        authority: &str,
    ) -> Result<HttpResponse, ClientError> {
        let timeout = self.timeout;
        let request = self.build(uri, authority)?;
        match tokio::time::timeout(timeout, exchange(addr, request)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout(timeout)),
        }
    }

    fn build(self, uri: Uri, authority: &str) -> Result<Request<Full<Bytes>>, ClientError> {
        let method =
            Method::from_bytes(self.method.as_bytes()).map_err(|e| bad(&self.method, e))?;
        let mut request = Request::new(Full::new(self.body));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert(
            http::header::HOST,
            HeaderValue::from_str(authority).map_err(|e| bad(authority, e))?,
        );
        let mut host_set = false;
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| bad(name, e))?;
            let value = HeaderValue::from_str(value).map_err(|e| bad(value, e))?;
            if name == http::header::HOST && !host_set {
                headers.insert(name, value);
                host_set = true;
            } else {
                headers.append(name, value);
            }
        }
        Ok(request)
    }
}

fn bad(what: &str, error: impl std::fmt::Display) -> ClientError {
    ClientError::BadRequest(format!("{what:?}: {error}"))
}

async fn exchange(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
) -> Result<HttpResponse, ClientError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| ClientError::Connect { addr, source })?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let result = async {
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
    driver.abort();
    result
}

/// GET `url` (absolute) through the HTTP proxy at `proxy`, with extra `headers`.
pub async fn http_get(
    proxy: SocketAddr,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<HttpResponse, ClientError> {
    HttpRequest::get(url)
        .headers(headers)
        .via_proxy(proxy)
        .await
}

/// GET `url` (absolute, or a path) straight from `addr`, with extra `headers`.
pub async fn http_get_direct(
    addr: SocketAddr,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<HttpResponse, ClientError> {
    HttpRequest::get(url).headers(headers).direct(addr).await
}
