//! The response body of a sampled request: counts the bytes sent and, when the body ends
//! (or is dropped: the client went away), completes the span — duration, `request_size`,
//! `response_size` — and hands it to the exporter.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::record::FinishedSpan;
use super::reporter::Reporter;
use crate::body::{self, Body, BoxError};

/// A span waiting for its response body to end.
#[derive(Debug)]
pub struct Pending {
    /// The span, tagged with everything but the sizes.
    pub span: FinishedSpan,
    /// When the request started.
    pub started: Instant,
    /// Request body bytes received.
    pub received: Arc<AtomicU64>,
    /// Where the span goes.
    pub reporter: Arc<Reporter>,
}

struct Traced {
    inner: Body,
    sent: u64,
    pending: Option<Pending>,
}

/// `response`, its body wrapped to complete `pending` when it ends.
pub fn wrap(response: Response<Body>, pending: Pending) -> Response<Body> {
    response.map(|inner| {
        body::boxed(Traced {
            inner,
            sent: 0,
            pending: Some(pending),
        })
    })
}

impl Traced {
    fn finish(&mut self) {
        let Some(mut p) = self.pending.take() else {
            return;
        };
        p.span.duration_us = p.started.elapsed().as_micros() as u64;
        let received = p.received.load(Ordering::Relaxed);
        p.span
            .tags
            .push(("request_size".into(), received.to_string()));
        p.span
            .tags
            .push(("response_size".into(), self.sent.to_string()));
        p.reporter.report(p.span);
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        self.finish();
    }
}

impl HttpBody for Traced {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.sent += data.len() as u64;
                }
            }
            Poll::Ready(None) => self.finish(),
            _ => {}
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
