//! [`EchoServer`]: an HTTP upstream for tests. It speaks HTTP/1.1 and h2c (prior knowledge)
//! on one port, answers every request with the configured status and the body
//! `"<name>\n"`, and echoes what it received in response headers:
//! - `x-echo-<header>` for every request header (so a test sees headers the proxy added),
//! - `x-echo-path` (path and query as received), `x-echo-method`, `x-echo-authority`
//!   (`:authority`, else `Host`), `x-echo-protocol` (`HTTP/1.1` or `HTTP/2.0`),
//! - `x-echo-server`: the server's name.
//!
//! A [`Behaviour`] makes it fail its first N requests with a status (retry tests), delay
//! every response (timeout and connection-pool tests) or answer with another status; it
//! can be changed while the server runs. The server counts requests and keeps the last
//! [`KEPT_REQUESTS`] of them ([`RecordedRequest`]) for assertions (mirror tests).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::background;

/// How many received requests a server keeps for [`EchoServer::requests`].
pub const KEPT_REQUESTS: usize = 256;

/// How an [`EchoServer`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behaviour {
    /// The status of a normal answer (default 200).
    pub status: u16,
    /// How many requests, counted from when this behaviour was set, get `fail_status`.
    pub fail_first: u64,
    /// The status of those failed answers (default 503).
    pub fail_status: u16,
    /// How long to wait before answering each request (default none).
    pub delay: Duration,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            status: 200,
            fail_first: 0,
            fail_status: 503,
            delay: Duration::ZERO,
        }
    }
}

impl Behaviour {
    /// Answers every request with `status`.
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Fails the first `count` requests with `status`, then answers normally.
    pub fn fail_first(mut self, count: u64, status: u16) -> Self {
        self.fail_first = count;
        self.fail_status = status;
        self
    }

    /// Waits `delay` before each answer.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The method (`GET`, …).
    pub method: String,
    /// Path and query as received.
    pub path: String,
    /// `:authority`, else the `Host` header, else empty.
    pub authority: String,
    /// HTTP/1.1 or HTTP/2.
    pub version: Version,
    /// The request headers.
    pub headers: HeaderMap,
    /// The whole request body.
    pub body: Bytes,
    /// When the request arrived.
    pub at: Instant,
}

impl RecordedRequest {
    /// The first value of header `name` as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

struct Plan {
    behaviour: Behaviour,
    answered: u64,
}

struct Shared {
    name: String,
    plan: Mutex<Plan>,
    count: AtomicU64,
    connections: AtomicU64,
    recent: Mutex<VecDeque<RecordedRequest>>,
}

impl Shared {
    /// The status and delay for the next request, counting it against `fail_first`.
    fn next_answer(&self) -> (u16, Duration) {
        let mut plan = self.plan.lock();
        let n = plan.answered;
        plan.answered += 1;
        let b = &plan.behaviour;
        let status = if n < b.fail_first {
            b.fail_status
        } else {
            b.status
        };
        (status, b.delay)
    }

    fn record(&self, request: RecordedRequest) {
        self.count.fetch_add(1, Ordering::SeqCst);
        let mut recent = self.recent.lock();
        if recent.len() == KEPT_REQUESTS {
            recent.pop_front();
        }
        recent.push_back(request);
    }
}

/// An HTTP/1.1 + h2c echo upstream on 127.0.0.1; stops when dropped.
pub struct EchoServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for EchoServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoServer")
            .field("name", &self.shared.name)
            .field("addr", &self.addr)
            .finish()
    }
}

impl EchoServer {
    /// Starts a server named `name` on a free port, answering 200.
    pub fn start(name: &str) -> io::Result<Self> {
        Self::start_with(name, Behaviour::default())
    }

    /// Starts a server named `name` on a free port with `behaviour`.
    pub fn start_with(name: &str, behaviour: Behaviour) -> io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            plan: Mutex::new(Plan {
                behaviour,
                answered: 0,
            }),
            count: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::new()),
        });
        let task = background::handle()?.spawn(serve(listener, shared.clone()));
        Ok(Self { addr, shared, task })
    }

    /// The server's name (its answers' body, without the newline).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Replaces the behaviour; `fail_first` counts again from the next request.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.shared.plan.lock() = Plan {
            behaviour,
            answered: 0,
        };
    }

    /// How many requests it has received (since start or [`EchoServer::reset`]).
    pub fn request_count(&self) -> u64 {
        self.shared.count.load(Ordering::SeqCst)
    }

    /// How many TCP connections it has accepted (since start or [`EchoServer::reset`]).
    pub fn connection_count(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// The last requests received, oldest first (at most [`KEPT_REQUESTS`]).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.recent.lock().iter().cloned().collect()
    }

    /// The most recent request.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.shared.recent.lock().back().cloned()
    }

    /// Forgets the requests and connections counted so far.
    pub fn reset(&self) {
        self.shared.count.store(0, Ordering::SeqCst);
        self.shared.connections.store(0, Ordering::SeqCst);
        self.shared.recent.lock().clear();
    }
}

impl Drop for EchoServer {
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

async fn answer(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            parts
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into()),
        authority,
        version: parts.version,
        headers: parts.headers,
        body,
        at: Instant::now(),
    };
    let (status, delay) = shared.next_answer();
    let response = echo_response(&shared.name, status, &recorded);
    shared.record(recorded);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    Ok(response)
}

fn echo_response(name: &str, status: u16, req: &RecordedRequest) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{name}\n"))));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    for (key, value) in &req.headers {
        if let Ok(echoed) = HeaderName::from_bytes(format!("x-echo-{key}").as_bytes()) {
            headers.append(echoed, value.clone());
        }
    }
    let protocol = format!("{:?}", req.version);
    let fixed = [
        ("x-echo-path", req.path.as_str()),
        ("x-echo-method", req.method.as_str()),
        ("x-echo-authority", req.authority.as_str()),
        ("x-echo-protocol", protocol.as_str()),
        ("x-echo-server", name),
        ("content-type", "text/plain"),
    ];
    for (key, value) in fixed {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(key), value);
        }
    }
    response
}
