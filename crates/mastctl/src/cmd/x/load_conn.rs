//! `mastctl x load`'s client side: the target (URL, protocol, headers, optional HTTP proxy),
//! one connection (HTTP/1.1, or HTTP/2 with prior knowledge), and one request on it with its
//! [`Outcome`] — an HTTP status, a gRPC status, or the kind of failure.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::grpc;

/// The protocol the load speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1, one request at a time per connection.
    Http1,
    /// HTTP/2 with prior knowledge (h2c), requests multiplexed.
    Http2,
    /// gRPC unary calls of the echo service over h2c.
    Grpc,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Http1 => "HTTP/1.1",
            Protocol::Http2 => "HTTP/2 (h2c)",
            Protocol::Grpc => "gRPC (h2c)",
        })
    }
}

/// Where and how to send requests.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL asked for (absolute, `http`).
    pub uri: Uri,
    /// The address connected to: the proxy's, else the URL's `host:port`.
    pub connect: String,
    /// The proxy, when requests go through one (absolute-form request lines).
    pub proxy: Option<String>,
    /// The protocol.
    pub protocol: Protocol,
    /// Extra request headers (`--header`).
    pub headers: HeaderMap,
    /// Longest time one request (including connecting) may take.
    pub timeout: Duration,
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// An HTTP answer with this status (for gRPC: a non-200 HTTP status).
    Status(u16),
    /// A gRPC answer with this `grpc-status`.
    Grpc(u32),
    /// No usable answer.
    Failed(Failure),
}

/// Why a request got no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Failure {
    /// The TCP connection or the HTTP/2 handshake failed.
    Connect,
    /// No complete answer within `--timeout`.
    Timeout,
    /// The connection broke or the answer was malformed.
    Protocol,
    /// Still queued or in flight when the run ended.
    Unfinished,
}

impl Outcome {
    /// Whether the request succeeded: HTTP status below 400, gRPC status OK.
    pub fn is_ok(self) -> bool {
        match self {
            Outcome::Status(s) => s < 400,
            Outcome::Grpc(c) => c == grpc::code::OK,
            Outcome::Failed(_) => false,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Status(s) => write!(f, "{s}"),
            Outcome::Grpc(c) => write!(f, "{c} {}", grpc::code_name(*c)),
            Outcome::Failed(Failure::Connect) => f.write_str("connect error"),
            Outcome::Failed(Failure::Timeout) => f.write_str("timeout"),
            Outcome::Failed(Failure::Protocol) => f.write_str("broken connection"),
            Outcome::Failed(Failure::Unfinished) => f.write_str("unfinished"),
        }
    }
}

/// One client connection.
pub enum Conn {
    /// HTTP/1.1: one request at a time.
    H1(http1::SendRequest<Full<Bytes>>),
    /// HTTP/2: clones share the connection.
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Conn {
    /// Connects to the target (or its proxy) and does the protocol's handshake.
    pub async fn open(target: &Target) -> Result<Conn, Failure> {
        let stream = TcpStream::connect(&target.connect).await.map_err(|e| {
            tracing::debug!("connect {}: {e}", target.connect);
            Failure::Connect
        })?;
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(stream);
        if target.protocol == Protocol::Http1 {
            let (send, conn) = http1::handshake(io).await.map_err(|_| Failure::Connect)?;
            tokio::spawn(conn);
            Ok(Conn::H1(send))
        } else {
            let (send, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|_| Failure::Connect)?;
            tokio::spawn(conn);
            Ok(Conn::H2(send))
        }
    }

    /// Another handle on an HTTP/2 connection (HTTP/1.1 connections have one user).
    pub fn h2_clone(&self) -> Option<Conn> {
        match self {
            Conn::H1(_) => None,
            Conn::H2(s) => Some(Conn::H2(s.clone())),
        }
    }

    /// Whether the connection can take no more requests.
    pub fn is_closed(&self) -> bool {
        match self {
            Conn::H1(s) => s.is_closed(),
            Conn::H2(s) => s.is_closed(),
        }
    }

    /// Sends one request and reads the whole answer; `None` when the connection turned out
    /// closed before the request went out (safe to retry on a new one, as curl does).
    pub async fn send(&mut self, target: &Target) -> Option<Outcome> {
        let req = match request(target, matches!(self, Conn::H1(_))) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("cannot build the request: {e}");
                return Some(Outcome::Failed(Failure::Protocol));
            }
        };
        let sent = match self {
            Conn::H1(s) => match s.ready().await {
                Ok(()) => s.send_request(req).await,
                Err(_) => return None,
            },
            Conn::H2(s) => s.send_request(req).await,
        };
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_canceled() => return None,
            Err(e) => {
                tracing::debug!("request failed: {e}");
                return Some(Outcome::Failed(Failure::Protocol));
            }
        };
        let (parts, body) = resp.into_parts();
        let Ok(collected) = body.collect().await else {
            return Some(Outcome::Failed(Failure::Protocol));
        };
        if target.protocol != Protocol::Grpc || parts.status != http::StatusCode::OK {
            return Some(Outcome::Status(parts.status.as_u16()));
        }
        let code = collected
            .trailers()
            .and_then(|t| t.get("grpc-status"))
            .or_else(|| parts.headers.get("grpc-status"))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        Some(code.map_or(Outcome::Failed(Failure::Protocol), Outcome::Grpc))
    }
}

/// The request for `target`: origin-form for HTTP/1.1 straight to the server, absolute-form
/// through a proxy (as curl does with `HTTP_PROXY`) and for HTTP/2 (`:authority`).
fn request(target: &Target, h1: bool) -> Result<Request<Full<Bytes>>, http::Error> {
    let authority = target.uri.authority().map_or("", |a| a.as_str());
    let uri = if target.protocol == Protocol::Grpc && target.uri.path() == "/" {
        format!("http://{authority}{}", grpc::ECHO_PATH)
    } else if h1 && target.proxy.is_none() {
        target
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned()
    } else {
        target.uri.to_string()
    };
    let grpc = target.protocol == Protocol::Grpc;
    let mut builder = Request::builder()
        .method(if grpc { Method::POST } else { Method::GET })
        .uri(uri);
    if h1 {
        builder = builder.header(HOST, authority);
    }
    builder = builder.header(
        USER_AGENT,
        HeaderValue::from_static(concat!("mastctl-load/", env!("CARGO_PKG_VERSION"))),
    );
    let body = if grpc {
        builder = builder
            .header(CONTENT_TYPE, "application/grpc")
            .header("te", "trailers");
        grpc::encode(&grpc::EchoRequest {
            message: "mastctl x load".to_owned(),
        })
    } else {
        Bytes::new()
    };
    let mut req = builder.body(Full::new(body))?;
    for (name, value) in &target.headers {
        req.headers_mut().insert(name, value.clone());
    }
    Ok(req)
}
