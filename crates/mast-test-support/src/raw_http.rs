//! [`RawHttpServer`]: an HTTP/1.1 upstream written on raw TCP, for behaviour a well-behaved
//! server library will not produce. By request path:
//! - `/reset…`: answers `200` with `content-length: 1048576`, sends [`RESET_AFTER`] bytes of
//!   the body, then resets the connection (RST, `SO_LINGER` 0): a crash mid-response;
//! - `/hang…`: never answers; records how long after the request the peer closed the
//!   connection ([`RawHttpServer::cancellations`]): a client cancel seen from upstream;
//! - anything else: `200` with body `"<name>\n"` and `x-upstream-connection: <n>` (which
//!   accepted connection, from 1, answered), keeping the connection alive.
//!
//! With [`RawHttpServer::start_idle_close`] it closes a keep-alive connection that stayed idle
//! (no new request) for the given time, silently: no `Connection: close` was announced,
//! exactly what makes proxies with pooled connections fail requests they send just then.
//! Connections, requests and idle closes are counted.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::background;

/// How many body bytes `/reset` sends before resetting the connection.
pub const RESET_AFTER: usize = 4096;

/// The `content-length` `/reset` announces.
pub const RESET_DECLARED: usize = 1 << 20;

/// How long `/hang` waits for the peer to close before giving up.
const HANG_LIMIT: Duration = Duration::from_secs(60);

/// How long a request head may take once its first byte arrived.
const HEAD_LIMIT: Duration = Duration::from_secs(10);

struct Shared {
    name: String,
    idle_close: Option<Duration>,
    connections: AtomicU64,
    requests: AtomicU64,
    idle_closes: AtomicU64,
    hangs: AtomicU64,
    cancellations: Mutex<Vec<Duration>>,
}

/// A scripted HTTP/1.1 upstream on 127.0.0.1 (see the module docs); stops when dropped.
pub struct RawHttpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for RawHttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawHttpServer")
            .field("name", &self.shared.name)
            .field("addr", &self.addr)
            .finish()
    }
}

impl RawHttpServer {
    /// Starts a server named `name` that keeps idle connections open.
    pub fn start(name: &str) -> io::Result<Self> {
        Self::start_with(name, None)
    }

    /// Starts a server named `name` that closes connections idle for `idle`.
    pub fn start_idle_close(name: &str, idle: Duration) -> io::Result<Self> {
        Self::start_with(name, Some(idle))
    }

    fn start_with(name: &str, idle_close: Option<Duration>) -> io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            idle_close,
            connections: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            idle_closes: AtomicU64::new(0),
            hangs: AtomicU64::new(0),
            cancellations: Mutex::new(Vec::new()),
        });
        let task = background::handle()?.spawn(serve(listener, shared.clone()));
        Ok(Self { addr, shared, task })
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// How many TCP connections it accepted.
    pub fn connection_count(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// How many request heads it read.
    pub fn request_count(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// How many idle connections it closed.
    pub fn idle_closes(&self) -> u64 {
        self.shared.idle_closes.load(Ordering::SeqCst)
    }

    /// How many `/hang` requests it is holding or has held.
    pub fn hangs(&self) -> u64 {
        self.shared.hangs.load(Ordering::SeqCst)
    }

    /// For each `/hang` request whose connection the peer closed: the time from the request
    /// to the close.
    pub fn cancellations(&self) -> Vec<Duration> {
        self.shared.cancellations.lock().clone()
    }
}

impl Drop for RawHttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: std::net::TcpListener, shared: Arc<Shared>) {
    background::accept_each(listener, |stream| {
        let id = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
        connection(stream, shared.clone(), id)
    })
    .await;
}

/// A request head: the path and the body length to skip.
struct Head {
    path: String,
    content_length: usize,
}

/// Why no request head was read.
enum NoHead {
    /// The peer closed (or the connection broke).
    Closed,
    /// Idle for the idle-close time.
    Idle,
}

async fn connection(mut stream: TcpStream, shared: Arc<Shared>, id: u64) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(4096);
    loop {
        let head = match read_head(&mut stream, &mut buf, shared.idle_close).await {
            Ok(head) => head,
            Err(NoHead::Idle) => {
                shared.idle_closes.fetch_add(1, Ordering::SeqCst);
                return; // dropped: FIN, no `Connection: close` announced
            }
            Err(NoHead::Closed) => return,
        };
        shared.requests.fetch_add(1, Ordering::SeqCst);
        if skip_body(&mut stream, &mut buf, head.content_length)
            .await
            .is_err()
        {
            return;
        }
        if head.path.starts_with("/reset") {
            reset_mid_body(stream).await;
            return;
        }
        if head.path.starts_with("/hang") {
            hang(stream, &shared).await;
            return;
        }
        let body = format!("{}\n", shared.name);
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
             x-upstream-connection: {id}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Reads one request head into `buf` (keeping any bytes after it). Waits at most `idle` for
/// its first byte when set.
async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    idle: Option<Duration>,
) -> Result<Head, NoHead> {
    let started = Instant::now();
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            return Ok(parse_head(&text));
        }
        let limit = match (buf.is_empty(), idle) {
            (true, Some(idle)) => idle,
            (true, None) => HANG_LIMIT,
            (false, _) => HEAD_LIMIT,
        };
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(limit, stream.read(&mut chunk)).await {
            Err(_) if buf.is_empty() && idle.is_some() => return Err(NoHead::Idle),
            Err(_) | Ok(Ok(0)) | Ok(Err(_)) => return Err(NoHead::Closed),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
        if started.elapsed() > HANG_LIMIT {
            return Err(NoHead::Closed);
        }
    }
}

fn parse_head(text: &str) -> Head {
    let mut lines = text.lines();
    let target = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/");
    // An absolute-form target (`http://host/path`) keeps only its path.
    let path = match target.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    let content_length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    Head {
        path: path.to_owned(),
        content_length,
    }
}

async fn skip_body(stream: &mut TcpStream, buf: &mut Vec<u8>, len: usize) -> io::Result<()> {
    let from_buf = len.min(buf.len());
    buf.drain(..from_buf);
    let mut left = len - from_buf;
    let mut chunk = [0u8; 8192];
    while left > 0 {
        let want = left.min(chunk.len());
        let n = tokio::time::timeout(HEAD_LIMIT, stream.read(&mut chunk[..want]))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        left -= n;
    }
    Ok(())
}

async fn reset_mid_body(mut stream: TcpStream) {
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n\
         content-length: {RESET_DECLARED}\r\n\r\n"
    );
    let part = vec![b'x'; RESET_AFTER];
    if stream.write_all(head.as_bytes()).await.is_err() || stream.write_all(&part).await.is_err() {
        return;
    }
    let _ = stream.flush().await;
    // Let the proxy forward what it got, then crash: RST instead of FIN.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = stream.set_zero_linger();
}

async fn hang(mut stream: TcpStream, shared: &Shared) {
    shared.hangs.fetch_add(1, Ordering::SeqCst);
    let started = Instant::now();
    let mut chunk = [0u8; 1024];
    while started.elapsed() < HANG_LIMIT {
        match tokio::time::timeout(HANG_LIMIT, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                shared.cancellations.lock().push(started.elapsed());
                return;
            }
            Ok(Ok(_)) => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::HttpRequest;

    #[tokio::test]
    async fn answers_resets_hangs_and_closes_idle() {
        let server = RawHttpServer::start_idle_close("raw", Duration::from_millis(100)).unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], server.port()));
        let ok = HttpRequest::get("/ok").direct(addr).await.unwrap();
        assert_eq!((ok.status, ok.trimmed()), (200, "raw".to_owned()));
        assert_eq!(ok.header("x-upstream-connection"), Some("1"));
        let reset = HttpRequest::get("/reset").direct(addr).await;
        assert!(reset.is_err(), "{reset:?}");
        let hang = HttpRequest::get("/hang")
            .timeout(Duration::from_millis(200))
            .direct(addr)
            .await;
        assert!(hang.is_err());
        let seen = crate::wait_for_async(
            || async { server.cancellations().len() == 1 },
            Duration::from_secs(5),
        )
        .await;
        assert!(seen, "the cancel was seen");
        // The first connection (closed by the client after its answer) is not idle-closed;
        // a connection left open is, after ~100 ms.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(2), idle.read(&mut byte)).await;
        assert!(matches!(read, Ok(Ok(0))), "closed by the server: {read:?}");
        assert!(server.idle_closes() >= 1);
    }
}
