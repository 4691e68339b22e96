//! [`Guarded`]: the I/O wrapper every downstream HTTP connection is served through. It
//! runs the HTTP/1 head scanner or the HTTP/2 flood guard over the bytes as they pass
//! (detected from the client preface under `codec: AUTO`), and owns the connection's
//! timers: the request-headers timeout (HTTP/1: first byte of a head to its end → 408 and
//! close, as Envoy) and the connection idle timeout (no request in flight and no bytes for
//! `idle_timeout` → close; HTTP/2 with GOAWAY). A flood closes the connection with GOAWAY
//! (ENHANCE_YOUR_CALM), written between two of the server's frames.
//!
//! The timers are checked only when the connection is read (hyper always polls the read
//! side while it waits for a request), so an active connection pays one clock read per
//! read or write and no timer re-arming.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::h1::HeadScanner;
use super::h2::{self, FloodGuard};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const REPLY_408: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 22\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nrequest header timeout";

/// State the connection's service shares with its I/O.
#[derive(Debug)]
pub struct ConnShared {
    in_flight: AtomicUsize,
    reject: AtomicU64,
    requests: AtomicU64,
}

impl Default for ConnShared {
    fn default() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            reject: AtomicU64::new(u64::MAX),
            requests: AtomicU64::new(0),
        }
    }
}

impl ConnShared {
    /// A request started (the idle timeout is off until [`ConnShared::end`]).
    pub fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// The index of the next HTTP/1 request on this connection (0-based).
    pub fn next_request(&self) -> u64 {
        self.requests.fetch_add(1, Ordering::Relaxed)
    }

    /// A request's response head is out.
    pub fn end(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// The status to reject the `index`th HTTP/1 request with, if the scanner said so.
    pub fn rejected(&self, index: u64) -> Option<u16> {
        let r = self.reject.load(Ordering::Acquire);
        (r != u64::MAX && r >> 16 == index).then_some((r & 0xffff) as u16)
    }

    fn set_reject(&self, index: u64, status: u16) {
        self.reject
            .store((index << 16) | u64::from(status), Ordering::Release);
    }

    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
    }
}

/// Which inspection a connection gets.
#[derive(Debug)]
pub enum Inspect {
    /// Not known yet: HTTP/2 if the client preface arrives, else HTTP/1.
    Detect(usize),
    /// HTTP/1 heads.
    H1(HeadScanner),
    /// HTTP/2 frames.
    H2(Box<FloodGuard>),
    /// Nothing (opaque after an upgrade).
    Off,
}

#[derive(Debug, Clone, Copy)]
enum Kill {
    GoAway(u32),
    HeaderTimeout,
    Close,
}

/// Timeouts for [`Guarded`].
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// HTTP/1 request head, first byte to end.
    pub headers: Option<Duration>,
    /// No request in flight and no bytes.
    pub idle: Option<Duration>,
}

/// A downstream connection's I/O with the limits applied.
#[derive(Debug)]
pub struct Guarded<IO> {
    io: IO,
    shared: std::sync::Arc<ConnShared>,
    inspect: Inspect,
    max_head: usize,
    timeouts: Timeouts,
    last_activity: Instant,
    head_since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    kill: Option<(Kill, usize)>,
}

impl<IO> Guarded<IO> {
    /// Wraps `io`; `max_head` is the HTTP/1 head limit hyper enforces (bytes).
    pub fn new(
        io: IO,
        shared: std::sync::Arc<ConnShared>,
        inspect: Inspect,
        max_head: usize,
        timeouts: Timeouts,
    ) -> Self {
        Self {
            io,
            shared,
            inspect,
            max_head,
            timeouts,
            last_activity: Instant::now(),
            head_since: None,
            timer: None,
            kill: None,
        }
    }

    /// Whether the connection was closed for a flood or a timeout.
    pub fn killed(&self) -> bool {
        self.kill.is_some()
    }

    fn on_read(&mut self, data: &[u8], now: Instant) {
        self.last_activity = now;
        if let Inspect::Detect(seen) = self.inspect {
            let n = (H2_PREFACE.len() - seen).min(data.len());
            if data[..n] != H2_PREFACE[seen..seen + n] {
                self.inspect = Inspect::H1(HeadScanner::new(self.max_head));
                self.replay_detected(seen);
            } else if seen + n == H2_PREFACE.len() {
                self.inspect = Inspect::H2(Box::new(FloodGuard::new(false)));
                return self.on_read(&data[n..], now);
            } else {
                self.inspect = Inspect::Detect(seen + n);
                return;
            }
        }
        match &mut self.inspect {
            Inspect::H1(scanner) => {
                let fed = scanner.feed(data);
                if let Some((index, status)) = fed.reject {
                    self.shared.set_reject(index, status);
                }
                if fed.opaque {
                    self.shared.begin();
                }
                let in_head = scanner.in_head();
                if scanner.stopped() {
                    self.inspect = Inspect::Off;
                }
                self.head_since = in_head.then(|| self.head_since.unwrap_or(now));
            }
            Inspect::H2(guard) => {
                if let Some(flood) = guard.inbound(data) {
                    tracing::warn!(flood = flood.stat(), "HTTP/2 flood: closing the connection");
                    self.kill = Some((Kill::GoAway(guard.last_stream()), 0));
                }
            }
            Inspect::Detect(_) | Inspect::Off => {}
        }
    }

    fn replay_detected(&mut self, seen: usize) {
        if let Inspect::H1(scanner) = &mut self.inspect {
            scanner.feed(&H2_PREFACE[..seen]);
        }
    }

    fn deadline(&self) -> Option<Instant> {
        let head = self
            .head_since
            .zip(self.timeouts.headers)
            .map(|(t, d)| t + d);
        let idle = self
            .timeouts
            .idle
            .filter(|_| self.shared.idle() && self.head_since.is_none())
            .map(|d| self.last_activity + d);
        match (head, idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Checks the timers; `Some` when one expired.
    fn poll_timers(&mut self, cx: &mut Context<'_>) -> Option<Kill> {
        let deadline = self.deadline()?;
        if Instant::now() < deadline {
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return None;
            }
            if Instant::now() < self.deadline()? {
                return None;
            }
        }
        Some(match (&self.inspect, self.head_since) {
            (_, Some(_)) => Kill::HeaderTimeout,
            (Inspect::H2(g), None) => Kill::GoAway(g.last_stream() | 0x8000_0000),
            _ => Kill::Close,
        })
    }
}

use std::future::Future as _;

impl<IO: AsyncWrite + Unpin> Guarded<IO> {
    /// Writes the kill's bytes (GOAWAY or 408) if the output is between messages, then
    /// shuts the connection down and fails.
    fn poll_kill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some((kill, written)) = self.kill else {
            return Poll::Ready(Ok(()));
        };
        let goaway;
        let bytes: &[u8] = match kill {
            Kill::GoAway(last) => {
                let at_boundary =
                    matches!(&self.inspect, Inspect::H2(g) if g.outbound_at_boundary());
                let code = if last & 0x8000_0000 != 0 { 0 } else { 0xb };
                goaway = h2::goaway(last & 0x7fff_ffff, code);
                if at_boundary { &goaway } else { &[] }
            }
            Kill::HeaderTimeout if self.shared.idle() => REPLY_408,
            Kill::HeaderTimeout | Kill::Close => &[],
        };
        let mut written = written;
        while written < bytes.len() {
            match ready!(Pin::new(&mut self.io).poll_write(cx, &bytes[written..])) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    written += n;
                    self.kill = Some((kill, written));
                }
            }
        }
        let _ = ready!(Pin::new(&mut self.io).poll_flush(cx));
        let _ = ready!(Pin::new(&mut self.io).poll_shutdown(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "connection closed by the proxy's limits",
        )))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.kill.is_some() {
            return this.poll_kill(cx);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let filled = &buf.filled()[before..];
                if !filled.is_empty() {
                    // The bytes are handed on even when they complete a flood: the next
                    // call writes the GOAWAY and fails.
                    this.on_read(filled, Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.poll_timers(cx) {
                Some(kill) => {
                    this.kill = Some((kill, 0));
                    this.poll_kill(cx)
                }
                None => Poll::Pending,
            },
            other => other,
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.kill.is_some() {
            ready!(this.poll_kill(cx))?;
        }
        let n = ready!(Pin::new(&mut this.io).poll_write(cx, data))?;
        this.on_write(&data[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.kill.is_some() {
            ready!(this.poll_kill(cx))?;
        }
        let n = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, bufs))?;
        let mut left = n;
        for b in bufs {
            if left == 0 {
                break;
            }
            let take = left.min(b.len());
            this.on_write(&b[..take]);
            left -= take;
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<IO> Guarded<IO> {
    fn on_write(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.last_activity = Instant::now();
        if let Inspect::H2(guard) = &mut self.inspect {
            guard.outbound(data);
        }
    }
}
