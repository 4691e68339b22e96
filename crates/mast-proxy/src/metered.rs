//! Response bodies that count the data bytes sent and act once when the body ends or is
//! dropped (the client went away): [`Metered`], generic over its [`OnEnd`] hook, serves the
//! span of a sampled request (`trace::body::Pending`), the access log line
//! (`hcm::count::ResponseLog`) and Istio's request metrics (`istio_stats::http`). Generic
//! rather than a boxed callback: no allocation beyond the boxing every body gets, no dynamic
//! call added.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::body::{self, Body, BoxError};

/// How a [`Metered`] body ended.
#[derive(Clone, Copy)]
pub enum End<'a> {
    /// The inner body ended: its last poll gave no frame.
    Complete,
    /// A trailers frame went out (only for hooks with [`OnEnd::AT_TRAILERS`]).
    Trailers(&'a HeaderMap),
    /// The body was dropped before it ended; the inner body tells whether it had ended.
    Dropped(&'a Body),
}

/// What a [`Metered`] body does, once, when it ends.
pub trait OnEnd: Send + Unpin + 'static {
    /// Whether a trailers frame ends the body (a gRPC status in trailers); otherwise the body
    /// ends at the poll that gives no frame.
    const AT_TRAILERS: bool = false;

    /// The body ended after `sent` data bytes.
    fn end(self, sent: u64, end: End<'_>);
}

/// A response body that counts the data bytes sent and calls its hook when it ends.
pub struct Metered<H: OnEnd> {
    inner: Body,
    sent: u64,
    hook: Option<H>,
}

impl<H: OnEnd> Metered<H> {
    /// `response`, its body wrapped to call `hook` when it ends.
    pub fn wrap(response: Response<Body>, hook: H) -> Response<Body> {
        response.map(|inner| {
            body::boxed(Self {
                inner,
                sent: 0,
                hook: Some(hook),
            })
        })
    }
}

impl<H: OnEnd> Drop for Metered<H> {
    fn drop(&mut self) {
        if let Some(hook) = self.hook.take() {
            hook.end(self.sent, End::Dropped(&self.inner));
        }
    }
}

impl<H: OnEnd> HttpBody for Metered<H> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let end = match &polled {
            Poll::Ready(Some(Ok(frame))) => match frame.data_ref() {
                Some(data) => {
                    this.sent += data.len() as u64;
                    None
                }
                None if H::AT_TRAILERS => frame.trailers_ref().map(End::Trailers),
                None => None,
            },
            Poll::Ready(None) => Some(End::Complete),
            _ => None,
        };
        if let Some(end) = end
            && let Some(hook) = this.hook.take()
        {
            hook.end(this.sent, end);
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

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;

    use http_body_util::{BodyExt as _, StreamBody};
    use parking_lot::Mutex;

    use super::*;

    /// What a hook saw: the bytes sent and how the body ended.
    type Seen = Arc<Mutex<Vec<(u64, &'static str)>>>;

    struct Hook<const TRAILERS: bool>(Seen);

    impl<const TRAILERS: bool> OnEnd for Hook<TRAILERS> {
        const AT_TRAILERS: bool = TRAILERS;

        fn end(self, sent: u64, end: End<'_>) {
            let how = match end {
                End::Complete => "complete",
                End::Trailers(t) if t.contains_key("grpc-status") => "trailers",
                End::Trailers(_) => "other trailers",
                End::Dropped(inner) if inner.is_end_stream() => "dropped after the end",
                End::Dropped(_) => "dropped",
            };
            self.0.lock().push((sent, how));
        }
    }

    /// A body of "hello", " world" and, when `trailers`, a `grpc-status: 0` trailer.
    fn source(trailers: bool) -> Response<Body> {
        let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
            Ok(Frame::data(Bytes::from_static(b"hello"))),
            Ok(Frame::data(Bytes::from_static(b" world"))),
        ];
        if trailers {
            let mut t = HeaderMap::new();
            t.insert("grpc-status", http::HeaderValue::from_static("0"));
            frames.push(Ok(Frame::trailers(t)));
        }
        Response::new(body::boxed(StreamBody::new(futures::stream::iter(frames))))
    }

    async fn frames(response: Response<Body>, take: usize) -> Response<Body> {
        let (parts, mut body) = response.into_parts();
        for _ in 0..take {
            body.frame().await;
        }
        Response::from_parts(parts, body)
    }

    #[tokio::test]
    async fn counts_data_and_fires_once_at_the_end() {
        let seen = Seen::default();
        let r = Metered::wrap(source(true), Hook::<false>(seen.clone()));
        let r = frames(r, 4).await;
        assert_eq!(*seen.lock(), [(11, "complete")]);
        drop(r);
        assert_eq!(
            seen.lock().len(),
            1,
            "dropping after the end fires nothing more"
        );
    }

    #[tokio::test]
    async fn trailers_end_the_body_for_hooks_that_ask() {
        let seen = Seen::default();
        let r = Metered::wrap(source(true), Hook::<true>(seen.clone()));
        let r = frames(r, 3).await;
        assert_eq!(*seen.lock(), [(11, "trailers")]);
        drop(r);
        assert_eq!(seen.lock().len(), 1);
    }

    #[tokio::test]
    async fn a_body_dropped_early_fires_with_what_was_sent() {
        let seen = Seen::default();
        let r = Metered::wrap(source(false), Hook::<true>(seen.clone()));
        drop(frames(r, 1).await);
        assert_eq!(*seen.lock(), [(5, "dropped")]);
    }
}
