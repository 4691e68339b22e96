//! Body wrappers that count bytes for the access log: the request body counts what the
//! client sent; the response body (a [`Metered`] body) counts what was sent and writes the
//! access log line when it ends or is dropped (the client went away).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;

use super::access_log::{AccessLog, Entry};
use crate::body::{self, Body};
use crate::metered::{End, Metered, OnEnd};

/// Counts the bytes of a body into a shared counter.
#[derive(Debug)]
pub struct Counted<B> {
    inner: B,
    count: Arc<AtomicU64>,
}

impl Counted<Incoming> {
    /// The request body, boxed, and its counter.
    pub fn request(incoming: Incoming) -> (Body, Arc<AtomicU64>) {
        let count = Arc::new(AtomicU64::new(0));
        let body = body::boxed(Counted {
            inner: incoming,
            count: Arc::clone(&count),
        });
        (body, count)
    }
}

impl Counted<Body> {
    /// The response, its body wrapped to log when it ends (when `log` is set).
    pub fn response(response: Response<Body>, log: Option<ResponseLog>) -> Response<Body> {
        match log {
            None => response,
            Some(log) => Metered::wrap(response, log),
        }
    }
}

impl<B> HttpBody for Counted<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.count.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What the response body needs to write the access log line.
#[derive(Debug)]
pub struct ResponseLog {
    /// Where lines go.
    pub log: AccessLog,
    /// The entry so far.
    pub entry: Entry,
    /// When the request started.
    pub start: Instant,
    /// Request bytes received.
    pub received: Arc<AtomicU64>,
}

/// Writes the access log line when the response body ends; a body dropped before its end
/// marks the request `DC` (downstream connection termination).
impl OnEnd for ResponseLog {
    fn end(mut self, sent: u64, end: End<'_>) {
        if let End::Dropped(inner) = end
            && !inner.is_end_stream()
        {
            self.entry
                .flags
                .insert(super::flags::Flags::DOWNSTREAM_CONNECTION_TERMINATION);
        }
        self.entry.bytes_sent = sent;
        self.entry.bytes_received = self.received.load(Ordering::Relaxed);
        self.entry.duration = self.start.elapsed();
        self.log.log(&self.entry);
    }
}
