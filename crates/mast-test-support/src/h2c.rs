//! [`H2Client`]: an HTTP/2 client speaking h2c with prior knowledge over one TCP connection,
//! for sending many concurrent requests (streams) through a sidecar's outbound listener with
//! an absolute `:authority`, and gRPC calls on it ([`H2Client::grpc`]: length-prefixed
//! messages out, messages and trailers back, see [`crate::grpc`] for the framing).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::client::{ClientError, DEFAULT_TIMEOUT};
use crate::grpc::{frame_message, split_messages};

/// A whole HTTP/2 answer, trailers included.
#[derive(Debug, Clone)]
pub struct H2Response {
    /// The status code.
    pub status: u16,
    /// The protocol the answer came in (HTTP/2 from this client).
    pub version: Version,
    /// The response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// The trailers, when the answer had any.
    pub trailers: Option<HeaderMap>,
}

impl H2Response {
    /// The first value of header `name` as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The first value of trailer `name` as text.
    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers.as_ref()?.get(name)?.to_str().ok()
    }

    /// The body as text (lossy UTF-8), without surrounding whitespace.
    pub fn trimmed(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_owned()
    }
}

/// A gRPC answer: the HTTP answer plus its messages and `grpc-status` / `grpc-message`.
#[derive(Debug, Clone)]
pub struct GrpcReply {
    /// The HTTP answer (body = the framed messages).
    pub response: H2Response,
    /// The messages, in the order they arrived.
    pub messages: Vec<Bytes>,
}

impl GrpcReply {
    /// `grpc-status`, from the trailers, else from the headers (a trailers-only answer).
    pub fn grpc_status(&self) -> Option<&str> {
        self.grpc_field("grpc-status")
    }

    /// `grpc-message`, from the trailers, else from the headers.
    pub fn grpc_message(&self) -> Option<&str> {
        self.grpc_field("grpc-message")
    }

    fn grpc_field(&self, name: &str) -> Option<&str> {
        self.response
            .trailer(name)
            .or_else(|| self.response.header(name))
    }
}

/// One h2c (prior knowledge) connection; cheap to clone, each clone sends on the same
/// connection. The connection closes when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct H2Client {
    sender: SendRequest<Full<Bytes>>,
    timeout: Duration,
    _driver: std::sync::Arc<Driver>,
}

#[derive(Debug)]
struct Driver(JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl H2Client {
    /// Opens an h2c connection to `addr` (the HTTP/2 preface first, no upgrade).
    pub async fn connect(addr: SocketAddr) -> Result<Self, ClientError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect { addr, source })?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self {
            sender,
            timeout: DEFAULT_TIMEOUT,
            _driver: std::sync::Arc::new(Driver(driver)),
        })
    }

    /// Sets the time each exchange may take (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Sends `request` (absolute URI: `:authority` from it) and reads the whole answer.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<H2Response, ClientError> {
        let mut sender = self.sender.clone();
        let exchange = async move {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let collected = body.collect().await?;
            let trailers = collected.trailers().cloned();
            Ok(H2Response {
                status: parts.status.as_u16(),
                version: parts.version,
                headers: parts.headers,
                body: collected.to_bytes(),
                trailers,
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout(self.timeout)),
        }
    }

    /// GETs `url` (absolute: `http://host/path`).
    pub async fn get(&self, url: &str) -> Result<H2Response, ClientError> {
        let request = build(Method::GET, url, Bytes::new(), &[])?;
        self.send(request).await
    }

    /// Calls gRPC method `url` (`http://host/package.Service/Method`) with `messages`, each
    /// framed (uncompressed), and splits the answer's body into messages.
    pub async fn grpc(&self, url: &str, messages: &[&[u8]]) -> Result<GrpcReply, ClientError> {
        let mut body = Vec::new();
        for m in messages {
            body.extend_from_slice(&frame_message(m));
        }
        let headers = [("content-type", "application/grpc"), ("te", "trailers")];
        let request = build(Method::POST, url, Bytes::from(body), &headers)?;
        let response = self.send(request).await?;
        let messages = split_messages(&response.body).ok_or_else(|| {
            ClientError::BadRequest(format!(
                "the answer's body is not gRPC framing ({} bytes)",
                response.body.len()
            ))
        })?;
        Ok(GrpcReply { response, messages })
    }
}

/// An HTTP/2 request for absolute `url`.
fn build(
    method: Method,
    url: &str,
    body: Bytes,
    headers: &[(&'static str, &'static str)],
) -> Result<Request<Full<Bytes>>, ClientError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| ClientError::BadRequest(format!("{url:?}: {e}")))?;
    if uri.authority().is_none() {
        return Err(ClientError::BadRequest(format!(
            "{url:?} is not an absolute URL"
        )));
    }
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_2;
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    Ok(request)
}
