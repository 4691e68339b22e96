//! The load generator: hyper client connections (HTTP/1.1 keep-alive or h2c with prior
//! knowledge) to one address, driven either
//! - **open loop** at a constant rate ([`open_loop`]): a dedicated OS thread (precise sleeps,
//!   not tokio's 1 ms timer wheel) hands each request's *scheduled* send time to the
//!   connection it belongs to (round robin); latency is measured from that scheduled time, so
//!   a slow response delays the requests queued behind it and that delay is counted
//!   (no coordinated omission, as wrk2 and `oha --latency-correction`); or
//! - **closed loop** ([`closed_loop`]): every connection sends its next request as soon as the
//!   previous one completed, for a fixed time (maximum throughput).
//!
//! Connections are plaintext, or TLS ([`Tls`]: SNI, ALPN `http/1.1` or `h2`) with
//! [`closed_loop_tls`] for an HTTPS gateway.
//!
//! A request succeeds when the answer is 200 with the 1 KiB body. Latencies go into an HDR
//! histogram in microseconds. Every wait is bounded: requests time out after
//! [`REQUEST_TIMEOUT`], and a run stops waiting for stragglers [`DRAIN`] after its end.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Empty};
use hyper::Request;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use rustls::pki_types::ServerName;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;

/// How long one request may take before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after the last scheduled send a run waits for the requests still in flight.
pub const DRAIN: Duration = Duration::from_secs(12);
/// The response body size the upstream sends.
const BODY_LEN: usize = 1024;
/// The Host / :authority of every request (unless a mode names another service).
pub const HOST: &str = "bench-svc";
/// The URL requested (unless a mode names another service).
pub const URL: &str = "http://bench-svc/";

/// The protocol between the client and the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// HTTP/1.1 keep-alive, one request at a time per connection.
    H1,
    /// h2c with prior knowledge, streams multiplexed per connection.
    H2,
}

impl Proto {
    /// `HTTP/1.1` or `HTTP/2`.
    pub fn label(self) -> &'static str {
        match self {
            Self::H1 => "HTTP/1.1",
            Self::H2 => "HTTP/2 (h2c)",
        }
    }
}

/// Where requests go and in which form.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    /// The address connected to.
    pub addr: SocketAddr,
    /// HTTP/1.1 requests in absolute form (`GET http://bench-svc/`), as to an HTTP proxy;
    /// otherwise origin form (`GET /` with `Host: bench-svc`). HTTP/2 always carries
    /// `:authority bench-svc`.
    pub absolute: bool,
    /// The service's URL, `http://<host>/` ([`URL`] unless a mode names another service).
    pub url: &'static str,
}

impl Endpoint {
    /// The host of [`Endpoint::url`].
    pub fn host(&self) -> &'static str {
        let rest = self
            .url
            .split_once("://")
            .map_or(self.url, |(_, rest)| rest);
        rest.split('/').next().unwrap_or(HOST)
    }
}

/// TLS from the client to the target: the connector offering ALPN `http/1.1` (for
/// [`Proto::H1`]) and the one offering `h2` (for [`Proto::H2`]; the server must pick `h2`),
/// and the SNI (also the name the server's certificate is verified for).
#[derive(Clone)]
pub struct Tls {
    /// ALPN `http/1.1`.
    pub h1: TlsConnector,
    /// ALPN `h2`.
    pub h2: TlsConnector,
    /// SNI.
    pub name: ServerName<'static>,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Latency of the successful requests, µs.
    pub hist: Histogram<u64>,
    /// Successful requests (200 with the full body).
    pub ok: u64,
    /// Requests answered with another status or body.
    pub bad: u64,
    /// Requests that failed (connection error, timeout).
    pub errors: u64,
    /// Scheduled requests that never completed (still in flight at the drain deadline).
    pub unfinished: u64,
    /// From the first scheduled send to the end of the run.
    pub elapsed: Duration,
    /// The first failure, for the notes.
    pub first_error: Option<String>,
}

impl Outcome {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// All failures (bad answers, errors, unfinished).
    pub fn failures(&self) -> u64 {
        self.bad + self.errors + self.unfinished
    }

    /// Latency at `q` (0..=1), µs.
    pub fn at(&self, q: f64) -> u64 {
        self.hist.value_at_quantile(q)
    }
}

struct Tally {
    hist: Histogram<u64>,
    ok: u64,
    bad: u64,
    errors: u64,
    first_error: Option<String>,
}

type Shared = Arc<Mutex<Tally>>;

fn new_tally() -> anyhow::Result<Shared> {
    Ok(Arc::new(Mutex::new(Tally {
        hist: Histogram::new_with_bounds(1, 120_000_000, 3)?,
        ok: 0,
        bad: 0,
        errors: 0,
        first_error: None,
    })))
}

fn record(tally: &Shared, since: Instant, result: Result<bool, String>) {
    let micros = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
    let mut t = tally.lock();
    match result {
        Ok(true) => {
            t.ok += 1;
            t.hist.saturating_record(micros.max(1));
        }
        Ok(false) => {
            t.bad += 1;
            t.first_error.get_or_insert_with(|| "non-200 answer".into());
        }
        Err(e) => {
            t.errors += 1;
            t.first_error.get_or_insert(e);
        }
    }
}

/// One client connection.
enum Conn {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

impl Conn {
    /// Connects to `ep` (over TLS when `tls` is given) and does the HTTP handshake.
    async fn open(ep: Endpoint, proto: Proto, tls: Option<&Tls>) -> Result<Self, String> {
        let stream = tokio::net::TcpStream::connect(ep.addr)
            .await
            .map_err(|e| format!("connect {}: {e}", ep.addr))?;
        let _ = stream.set_nodelay(true);
        let Some(tls) = tls else {
            return Self::handshake(TokioIo::new(stream), proto).await;
        };
        let connector = match proto {
            Proto::H1 => &tls.h1,
            Proto::H2 => &tls.h2,
        };
        let stream = connector
            .connect(tls.name.clone(), stream)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        if proto == Proto::H2 && stream.get_ref().1.alpn_protocol() != Some(b"h2".as_slice()) {
            return Err("the server did not select ALPN h2".to_owned());
        }
        Self::handshake(TokioIo::new(stream), proto).await
    }

    async fn handshake<I>(io: I, proto: Proto) -> Result<Self, String>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        match proto {
            Proto::H1 => {
                let (tx, conn) = http1::handshake(io)
                    .await
                    .map_err(|e| format!("HTTP/1.1 handshake: {e}"))?;
                tokio::spawn(conn);
                Ok(Self::H1(tx))
            }
            Proto::H2 => {
                let (tx, conn) = http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
                tokio::spawn(conn);
                Ok(Self::H2(tx))
            }
        }
    }

    fn request(&self, ep: Endpoint) -> Request<Empty<Bytes>> {
        let builder = match self {
            Self::H1(_) if ep.absolute => Request::get(ep.url).header("host", ep.host()),
            Self::H1(_) => Request::get("/").header("host", ep.host()),
            Self::H2(_) => Request::get(ep.url),
        };
        builder.body(Empty::new()).unwrap_or_default()
    }

    /// Sends one GET and reads the whole answer: `Ok(true)` for 200 with the 1 KiB body.
    async fn get(&mut self, ep: Endpoint) -> Result<bool, String> {
        let request = self.request(ep);
        let exchange = async {
            let response = match self {
                Self::H1(tx) => {
                    tx.ready().await.map_err(|e| e.to_string())?;
                    tx.send_request(request).await
                }
                Self::H2(tx) => {
                    tx.ready().await.map_err(|e| e.to_string())?;
                    tx.send_request(request).await
                }
            }
            .map_err(|e| e.to_string())?;
            let ok = response.status() == hyper::StatusCode::OK;
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?;
            Ok(ok && body.to_bytes().len() == BODY_LEN)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {REQUEST_TIMEOUT:?}")))
    }
}

/// Opens `count` connections (bounded retries each).
async fn open_all(
    ep: Endpoint,
    proto: Proto,
    tls: Option<&Tls>,
    count: usize,
) -> anyhow::Result<Vec<Conn>> {
    let mut conns = Vec::with_capacity(count);
    for _ in 0..count {
        let mut last = String::new();
        let mut opened = None;
        for _ in 0..20 {
            match Conn::open(ep, proto, tls).await {
                Ok(c) => {
                    opened = Some(c);
                    break;
                }
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        match opened {
            Some(c) => conns.push(c),
            None => anyhow::bail!("cannot connect to {}: {last}", ep.addr),
        }
    }
    Ok(conns)
}

/// Sends `rate` requests per second for `duration` over `connections` connections, open
/// loop; latency counts from each request's scheduled send time.
pub async fn open_loop(
    ep: Endpoint,
    proto: Proto,
    rate: u64,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Outcome> {
    let tally = new_tally()?;
    let conns = open_all(ep, proto, None, connections.max(1)).await?;
    let mut senders = Vec::with_capacity(conns.len());
    let mut workers = JoinSet::new();
    for conn in conns {
        let (tx, rx) = mpsc::unbounded_channel::<Instant>();
        senders.push(tx);
        workers.spawn(worker(conn, rx, ep, proto, Arc::clone(&tally)));
    }
    let total = (rate as f64 * duration.as_secs_f64()).round() as u64;
    let start = Instant::now() + Duration::from_millis(20);
    let interval = 1e9 / rate.max(1) as f64;
    let dispatcher = std::thread::spawn(move || {
        for i in 0..total {
            let at = start + Duration::from_nanos((i as f64 * interval) as u64);
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            let n = senders.len();
            let _ = senders[(i as usize) % n].send(at);
        }
    });
    let _ = tokio::task::spawn_blocking(move || dispatcher.join()).await;
    let drained = tokio::time::timeout(DRAIN, async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        workers.abort_all();
    }
    let elapsed = start.elapsed().min(duration.max(Duration::from_millis(1)));
    Ok(finish(&tally, total, elapsed))
}

/// One connection's share of an open-loop run: HTTP/1.1 requests one after the other (a
/// late answer delays the next, and that counts), HTTP/2 requests as concurrent streams.
async fn worker(
    mut conn: Conn,
    mut rx: mpsc::UnboundedReceiver<Instant>,
    ep: Endpoint,
    proto: Proto,
    tally: Shared,
) {
    let mut streams = JoinSet::new();
    while let Some(at) = rx.recv().await {
        match conn {
            Conn::H1(_) => {
                let result = conn.get(ep).await;
                let failed = result.is_err();
                record(&tally, at, result);
                if failed && let Ok(c) = Conn::open(ep, proto, None).await {
                    conn = c;
                }
            }
            Conn::H2(ref tx) => {
                let mut stream = Conn::H2(tx.clone());
                let tally = Arc::clone(&tally);
                streams.spawn(async move {
                    let result = stream.get(ep).await;
                    record(&tally, at, result);
                });
                while streams.try_join_next().is_some() {}
            }
        }
    }
    while streams.join_next().await.is_some() {}
}

/// Closed loop: each of `connections` sends its next request when the previous completed,
/// for `duration`; latency counts from each send.
pub async fn closed_loop(
    ep: Endpoint,
    proto: Proto,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Outcome> {
    closed_loop_over(ep, proto, None, connections, duration).await
}

/// [`closed_loop`] over TLS connections (HTTPS keep-alive: one handshake per connection,
/// made before the run starts).
pub async fn closed_loop_tls(
    ep: Endpoint,
    proto: Proto,
    tls: &Tls,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Outcome> {
    closed_loop_over(ep, proto, Some(tls), connections, duration).await
}

/// One request on a new connection (over TLS when `tls` is given): `Ok(true)` for 200 with
/// the 1 KiB body.
pub async fn one_request(ep: Endpoint, proto: Proto, tls: Option<&Tls>) -> Result<bool, String> {
    let opened = tokio::time::timeout(REQUEST_TIMEOUT, Conn::open(ep, proto, tls))
        .await
        .unwrap_or_else(|_| Err(format!("no connection within {REQUEST_TIMEOUT:?}")));
    opened?.get(ep).await
}

async fn closed_loop_over(
    ep: Endpoint,
    proto: Proto,
    tls: Option<&Tls>,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Outcome> {
    let tally = new_tally()?;
    let conns = open_all(ep, proto, tls, connections.max(1)).await?;
    let start = Instant::now();
    let end = start + duration;
    let mut workers = JoinSet::new();
    for mut conn in conns {
        let tally = Arc::clone(&tally);
        let tls = tls.cloned();
        workers.spawn(async move {
            while Instant::now() < end {
                let sent = Instant::now();
                let result = conn.get(ep).await;
                let failed = result.is_err();
                record(&tally, sent, result);
                if failed {
                    match Conn::open(ep, proto, tls.as_ref()).await {
                        Ok(c) => conn = c,
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
            }
        });
    }
    let drained = tokio::time::timeout(duration + DRAIN, async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        workers.abort_all();
    }
    let elapsed = start.elapsed();
    Ok(finish(&tally, 0, elapsed))
}

fn finish(tally: &Shared, scheduled: u64, elapsed: Duration) -> Outcome {
    let t = tally.lock();
    let done = t.ok + t.bad + t.errors;
    Outcome {
        hist: t.hist.clone(),
        ok: t.ok,
        bad: t.bad,
        errors: t.errors,
        unfinished: scheduled.saturating_sub(done),
        elapsed,
        first_error: t.first_error.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_loop_against_the_upstream_server_counts_every_request() {
        // The upstream's accept loops, in this process.
        let h1 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let h2 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (a1, a2) = (h1.local_addr().unwrap(), h2.local_addr().unwrap());
        tokio::spawn(crate::upstream::accept(h1, false));
        tokio::spawn(crate::upstream::accept(h2, true));
        for (addr, proto) in [(a1, Proto::H1), (a2, Proto::H2)] {
            let ep = Endpoint {
                addr,
                absolute: false,
                url: URL,
            };
            let out = open_loop(ep, proto, 200, 4, Duration::from_millis(500))
                .await
                .unwrap();
            assert_eq!(out.ok, 100, "{proto:?}: {:?}", out.first_error);
            assert_eq!(out.failures(), 0);
            let out = closed_loop(ep, proto, 4, Duration::from_millis(200))
                .await
                .unwrap();
            assert!(out.ok > 10 && out.failures() == 0, "{proto:?}");
        }
    }
}
