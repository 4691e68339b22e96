//! The span of a sampled request, completed when its response body ends ([`Pending`], a
//! [`Metered`] hook).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use http::Response;

use super::record::FinishedSpan;
use super::reporter::Reporter;
use crate::body::Body;
use crate::metered::{End, Metered, OnEnd};

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

/// Completes the span (duration, `request_size`, `response_size`) and hands it to the
/// exporter.
impl OnEnd for Pending {
    fn end(mut self, sent: u64, _end: End<'_>) {
        self.span.duration_us = self.started.elapsed().as_micros() as u64;
        let received = self.received.load(Ordering::Relaxed);
        let tags = &mut self.span.tags;
        tags.push(("request_size".into(), received.to_string()));
        tags.push(("response_size".into(), sent.to_string()));
        self.reporter.report(self.span);
    }
}

/// `response`, its body wrapped to complete `pending` when it ends.
pub fn wrap(response: Response<Body>, pending: Pending) -> Response<Body> {
    Metered::wrap(response, pending)
}
