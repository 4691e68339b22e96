//! [`GrpcServer`]: a gRPC upstream written on hyper directly (no code generation): HTTP/2
//! (h2c), `content-type: application/grpc`, length-prefixed messages (1 byte "compressed"
//! flag, 4 bytes big-endian length, the message) and `grpc-status` in trailers. Messages are
//! opaque bytes; a proxy never looks inside them. Methods of service [`SERVICE`]:
//! - `Unary`: answers every message it received, unchanged, then `grpc-status: 0`;
//! - `Stream` (server streaming): the request's one message is a count N (decimal text); it
//!   answers N messages `message <i>`, each in its own DATA frame, then `grpc-status: 0`;
//! - `Fail`: no message, trailers `grpc-status: 5` (NOT_FOUND) and `grpc-message:`
//!   [`FAIL_MESSAGE`];
//! - anything else: `grpc-status: 12` (UNIMPLEMENTED).
//!
//! It records what it received ([`GrpcServer::requests`]): path, protocol version and the
//! `content-type` and `te` headers.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response, Version};
use http_body_util::{BodyExt, Channel};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::background;

/// The service's full name: methods are `/<SERVICE>/<Method>`.
pub const SERVICE: &str = "mast.test.Echo";

/// The `grpc-message` of method `Fail`.
pub const FAIL_MESSAGE: &str = "no such thing: item 42";

/// Frames one message: flag 0 (not compressed), 4-byte big-endian length, the bytes.
pub fn frame_message(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    out.put_slice(message);
    out.freeze()
}

/// Splits a whole gRPC body into its messages; `None` when the framing is broken
/// (a truncated prefix or message).
pub fn split_messages(body: &Bytes) -> Option<Vec<Bytes>> {
    let mut messages = Vec::new();
    let mut at = 0usize;
    while at < body.len() {
        let prefix = body.get(at..at + 5)?;
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        let start = at + 5;
        if start + len > body.len() {
            return None;
        }
        messages.push(body.slice(start..start + len));
        at = start + len;
    }
    Some(messages)
}

/// One call as the server received it.
#[derive(Debug, Clone)]
pub struct GrpcCall {
    /// `:path` (`/mast.test.Echo/Unary`).
    pub path: String,
    /// The protocol it arrived in.
    pub version: Version,
    /// `content-type`.
    pub content_type: Option<String>,
    /// `te`.
    pub te: Option<String>,
}

#[derive(Default)]
struct Shared {
    connections: AtomicU64,
    calls: Mutex<Vec<GrpcCall>>,
}

/// A gRPC upstream on 127.0.0.1 (see the module docs); stops when dropped.
pub struct GrpcServer {
    name: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for GrpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcServer")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .finish()
    }
}

impl GrpcServer {
    /// Starts a server named `name` on a free port.
    pub fn start(name: &str) -> io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let task = background::handle()?.spawn(serve(listener, shared.clone()));
        Ok(Self {
            name: name.to_owned(),
            addr,
            shared,
            task,
        })
    }

    /// The server's name (its `version` label in a mesh).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// How many TCP connections it accepted.
    pub fn connection_count(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// The calls received, oldest first.
    pub fn requests(&self) -> Vec<GrpcCall> {
        self.shared.calls.lock().clone()
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: std::net::TcpListener, shared: Arc<Shared>) {
    background::accept_each(listener, |stream| {
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        async move {
            let service = service_fn(move |req| answer(shared.clone(), req));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await;
}

type GrpcBody = Channel<Bytes, Infallible>;

async fn answer(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<GrpcBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let text = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let path = parts.uri.path().to_owned();
    shared.calls.lock().push(GrpcCall {
        path: path.clone(),
        version: parts.version,
        content_type: text("content-type"),
        te: text("te"),
    });
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let messages = split_messages(&body).unwrap_or_default();
    let method = path
        .strip_prefix(&format!("/{SERVICE}/"))
        .unwrap_or_default();
    let (mut sender, channel) = Channel::new(4);
    let mut response = Response::new(channel);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    let method = method.to_owned();
    tokio::spawn(async move {
        let (outgoing, status, message): (Vec<Bytes>, &str, Option<&str>) = match method.as_str() {
            "Unary" => (messages, "0", None),
            "Stream" => {
                let count: usize = messages
                    .first()
                    .and_then(|m| std::str::from_utf8(m).ok())
                    .and_then(|t| t.trim().parse().ok())
                    .unwrap_or(0);
                let out = (0..count.min(100_000))
                    .map(|i| Bytes::from(format!("message {i}")))
                    .collect();
                (out, "0", None)
            }
            "Fail" => (Vec::new(), "5", Some(FAIL_MESSAGE)),
            _ => (Vec::new(), "12", Some("unknown method")),
        };
        for m in outgoing {
            if sender.send_data(frame_message(&m)).await.is_err() {
                return;
            }
        }
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static(status));
        if let Some(message) = message.and_then(|m| HeaderValue::from_str(m).ok()) {
            trailers.insert("grpc-message", message);
        }
        let _ = sender.send_trailers(trailers).await;
    });
    Ok(response)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::h2c::H2Client;

    #[test]
    fn framing_round_trips() {
        let mut body = BytesMut::new();
        body.put_slice(&frame_message(b"one"));
        body.put_slice(&frame_message(b""));
        body.put_slice(&frame_message(b"three"));
        let split = split_messages(&body.freeze()).unwrap();
        assert_eq!(split, vec!["one", "", "three"]);
        assert!(split_messages(&Bytes::from_static(&[0, 0, 0, 0, 9, 1])).is_none());
    }

    #[tokio::test]
    async fn answers_unary_stream_and_fail() {
        let server = GrpcServer::start("g1").unwrap();
        let client = H2Client::connect(server.addr).await.unwrap();
        let base = format!("http://127.0.0.1:{}/{SERVICE}", server.port());
        let unary = client
            .grpc(&format!("{base}/Unary"), &[b"hi"])
            .await
            .unwrap();
        assert_eq!(unary.messages, vec!["hi"]);
        assert_eq!(unary.grpc_status(), Some("0"));
        let stream = client
            .grpc(&format!("{base}/Stream"), &[b"3"])
            .await
            .unwrap();
        assert_eq!(stream.messages, vec!["message 0", "message 1", "message 2"]);
        let fail = client.grpc(&format!("{base}/Fail"), &[]).await.unwrap();
        assert_eq!(
            (fail.grpc_status(), fail.grpc_message()),
            (Some("5"), Some(FAIL_MESSAGE))
        );
        let calls = server.requests();
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[0].te.as_deref(), Some("trailers"));
        assert_eq!(calls[0].version, Version::HTTP_2);
    }
}
