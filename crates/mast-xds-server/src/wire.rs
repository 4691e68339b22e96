//! gRPC framing for state-of-the-world streams, done here rather than by tonic's codec
//! machinery so that an idle stream holds no buffer: tonic keeps, per stream, the encode
//! buffer of its largest response and the decode buffer of its largest request (megabytes
//! each at 1,000 services, times 1,000 proxies). Here each response is encoded into one
//! allocation of exactly its size, freed once sent, and a request's bytes are released as
//! soon as it is decoded. Messages are uncompressed, as Envoy sends and expects them.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use futures::Stream;
use http_body::{Body, Frame};
use prost::Message;
use tokio::sync::mpsc;
use tonic::Status;

use crate::grpc::SotwResponse;

/// The 5-byte gRPC message prefix: compressed flag and big-endian length.
const PREFIX: usize = 5;

/// The messages of a request body, decoded one by one as their bytes arrive.
pub(crate) struct Requests<M> {
    body: tonic::body::Body,
    buf: Vec<u8>,
    /// Data chunks not yet copied into `buf`.
    chunks: VecDeque<Bytes>,
    max: usize,
    done: bool,
    _message: PhantomData<fn() -> M>,
}

impl<M> Requests<M> {
    /// Reads `body`, refusing messages larger than `max` bytes.
    pub(crate) fn new(body: tonic::body::Body, max: usize) -> Self {
        Self {
            body,
            buf: Vec::new(),
            chunks: VecDeque::new(),
            max,
            done: false,
            _message: PhantomData,
        }
    }
}

impl<M: Message + Default> Requests<M> {
    /// The next complete message in the buffered bytes, if any.
    fn take(&mut self) -> Result<Option<M>, Status> {
        while let Some(chunk) = self.chunks.pop_front() {
            self.buf.extend_from_slice(&chunk);
        }
        if self.buf.len() < PREFIX {
            return Ok(None);
        }
        if self.buf[0] != 0 {
            return Err(Status::unimplemented(
                "compressed xDS requests are not supported",
            ));
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > self.max {
            return Err(Status::out_of_range(format!(
                "request of {len} bytes exceeds the limit of {} bytes",
                self.max
            )));
        }
        if self.buf.len() < PREFIX + len {
            self.buf.reserve_exact(PREFIX + len - self.buf.len());
            return Ok(None);
        }
        let message = M::decode(&self.buf[PREFIX..PREFIX + len])
            .map_err(|e| Status::invalid_argument(format!("malformed request: {e}")))?;
        if self.buf.len() == PREFIX + len {
            // Nothing pipelined behind it: release the memory.
            self.buf = Vec::new();
        } else {
            self.buf.drain(..PREFIX + len);
        }
        Ok(Some(message))
    }
}

impl<M: Message + Default> Stream for Requests<M> {
    type Item = Result<M, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match this.take() {
                Ok(Some(m)) => return Poll::Ready(Some(Ok(m))),
                Ok(None) => {}
                Err(status) => {
                    this.done = true;
                    this.buf = Vec::new();
                    return Poll::Ready(Some(Err(status)));
                }
            }
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(mut data) = frame.into_data() {
                        let bytes = data.copy_to_bytes(data.remaining());
                        this.chunks.push_back(bytes);
                    }
                }
                Poll::Ready(Some(Err(status))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(status)));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    if !this.buf.is_empty() {
                        return Poll::Ready(Some(Err(Status::invalid_argument(
                            "request stream ended inside a message",
                        ))));
                    }
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A response body fed by a stream task: each response framed into one exact allocation,
/// then the `grpc-status` trailers when the task ends the stream.
pub(crate) struct Responses {
    rx: mpsc::Receiver<Result<SotwResponse, Status>>,
    finished: bool,
}

impl Responses {
    /// The body of the responses sent on `rx`.
    pub(crate) fn new(rx: mpsc::Receiver<Result<SotwResponse, Status>>) -> Self {
        Self {
            rx,
            finished: false,
        }
    }
}

/// `response` with its gRPC prefix, in one allocation of exactly its size.
pub(crate) fn frame(response: &SotwResponse) -> Result<Bytes, Status> {
    let len = response.encoded_len();
    let prefix_len = u32::try_from(len)
        .map_err(|_| Status::resource_exhausted(format!("response of {len} bytes is too large")))?;
    let mut out = Vec::with_capacity(PREFIX + len);
    out.push(0);
    out.extend_from_slice(&prefix_len.to_be_bytes());
    crate::grpc::write_response(response, &mut out)
        .map_err(|e| Status::internal(format!("encoding a response: {e}")))?;
    Ok(Bytes::from(out))
}

fn trailers(status: &Status) -> Frame<Bytes> {
    let mut headers = http::HeaderMap::new();
    if status.add_header(&mut headers).is_err() {
        headers.insert("grpc-status", http::HeaderValue::from_static("13"));
    }
    Frame::trailers(headers)
}

impl Body for Responses {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        match this.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(response))) => match frame(&response) {
                Ok(bytes) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
                Err(status) => {
                    this.finished = true;
                    Poll::Ready(Some(Ok(trailers(&status))))
                }
            },
            Poll::Ready(Some(Err(status))) => {
                this.finished = true;
                Poll::Ready(Some(Ok(trailers(&status))))
            }
            Poll::Ready(None) => {
                this.finished = true;
                Poll::Ready(Some(Ok(trailers(&Status::ok("")))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
    use futures::StreamExt;
    use http_body_util::BodyExt;

    fn framed(m: &DiscoveryRequest) -> Vec<u8> {
        let body = m.encode_to_vec();
        let mut out = vec![0];
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[tokio::test]
    async fn requests_split_and_joined_anyhow_decode() {
        let a = DiscoveryRequest {
            type_url: "a".into(),
            resource_names: (0..500).map(|i| format!("name-{i}")).collect(),
            ..DiscoveryRequest::default()
        };
        let b = DiscoveryRequest {
            type_url: "b".into(),
            ..DiscoveryRequest::default()
        };
        let mut bytes = framed(&a);
        bytes.extend(framed(&b));
        // Odd-sized chunks: a message split across chunks, two messages in one chunk.
        let chunks: Vec<Result<Frame<Bytes>, Status>> = bytes
            .chunks(777)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        let body = http_body_util::StreamBody::new(futures::stream::iter(chunks));
        let mut requests = Requests::<DiscoveryRequest>::new(tonic::body::Body::new(body), 1 << 20);
        assert_eq!(requests.next().await.unwrap().unwrap(), a);
        assert_eq!(requests.next().await.unwrap().unwrap(), b);
        assert!(requests.next().await.is_none());
    }

    #[tokio::test]
    async fn oversized_and_compressed_requests_are_refused() {
        let big = framed(&DiscoveryRequest {
            type_url: "x".repeat(100),
            ..DiscoveryRequest::default()
        });
        let body = http_body_util::Full::new(Bytes::from(big));
        let mut requests = Requests::<DiscoveryRequest>::new(tonic::body::Body::new(body), 10);
        let err = requests.next().await.unwrap().unwrap_err();
        assert_eq!(err.code(), tonic::Code::OutOfRange);
        let mut compressed = framed(&DiscoveryRequest::default());
        compressed[0] = 1;
        let body = http_body_util::Full::new(Bytes::from(compressed));
        let mut requests = Requests::<DiscoveryRequest>::new(tonic::body::Body::new(body), 10);
        let err = requests.next().await.unwrap().unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unimplemented);
    }

    #[tokio::test]
    async fn responses_are_framed_then_trailed() {
        let (tx, rx) = mpsc::channel(4);
        let head = DiscoveryResponse {
            version_info: "3".into(),
            nonce: "n".into(),
            ..DiscoveryResponse::default()
        };
        tx.send(Ok(SotwResponse {
            head: head.clone(),
            body: Vec::new(),
        }))
        .await
        .unwrap();
        drop(tx);
        let mut body = Responses::new(rx);
        let data = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(data[0], 0);
        let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
        assert_eq!(len, data.len() - PREFIX);
        assert_eq!(DiscoveryResponse::decode(&data[PREFIX..]).unwrap(), head);
        let trailers = body
            .frame()
            .await
            .unwrap()
            .unwrap()
            .into_trailers()
            .unwrap();
        assert_eq!(trailers["grpc-status"], "0");
        assert!(body.frame().await.is_none());
    }
}
