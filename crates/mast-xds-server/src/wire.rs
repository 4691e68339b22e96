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
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
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

/// A message [`Requests`] can decode.
pub(crate) trait WireMessage: Sized {
    /// Decodes one message.
    fn decode_wire(bytes: &[u8]) -> Result<Self, String>;
}

impl<M: WireMessage> Requests<M> {
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
        let message = M::decode_wire(&self.buf[PREFIX..PREFIX + len])
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

impl<M: WireMessage> Stream for Requests<M> {
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

/// A state-of-the-world request with its `resource_names` kept encoded: Envoy repeats the
/// whole list (thousands of EDS cluster names) in every ACK, and an unchanged list is
/// recognised by its hash without allocating a string.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SotwRequest {
    /// Every field but `resource_names`.
    pub req: DiscoveryRequest,
    /// `resource_names`.
    pub names: Names,
}

/// An encoded list of resource names.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Names {
    /// The names as length-prefixed strings, in order.
    raw: Vec<u8>,
    /// Order-sensitive hash of the list.
    pub hash: u64,
    /// How many names.
    pub len: usize,
    /// Whether one of them is `*`.
    pub has_star: bool,
}

impl Names {
    /// A list of names (for tests).
    #[cfg(test)]
    pub(crate) fn of(names: &[&str]) -> Self {
        let mut out = Names::default();
        let mut h = WordHash::default();
        for n in names {
            out.push(n.as_bytes(), &mut h);
        }
        out.hash = h.finish();
        out
    }

    fn push(&mut self, name: &[u8], h: &mut WordHash) {
        prost::encoding::encode_varint(name.len() as u64, &mut self.raw);
        self.raw.extend_from_slice(name);
        h.write(name);
        self.len += 1;
        self.has_star |= name == b"*";
    }

    /// The names.
    pub(crate) fn iter(&self) -> impl Iterator<Item = String> + '_ {
        let mut buf = self.raw.as_slice();
        std::iter::from_fn(move || {
            let len = usize::try_from(prost::encoding::decode_varint(&mut buf).ok()?).ok()?;
            let (name, rest) = buf.split_at_checked(len)?;
            buf = rest;
            Some(String::from_utf8_lossy(name).into_owned())
        })
    }
}

/// A fast non-cryptographic hash over 8-byte words (FxHash's mixing), with each input's
/// length mixed in so that list boundaries count.
#[derive(Debug, Default)]
struct WordHash(u64);

impl WordHash {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    fn mix(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(Self::K);
    }

    fn write(&mut self, bytes: &[u8]) {
        self.mix(bytes.len() as u64);
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut a = [0u8; 8];
            a.copy_from_slice(w);
            self.mix(u64::from_le_bytes(a));
        }
        let mut tail = [0u8; 8];
        tail[..words.remainder().len()].copy_from_slice(words.remainder());
        self.mix(u64::from_le_bytes(tail));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// `resource_names` is field 3 of `DiscoveryRequest`.
const RESOURCE_NAMES: u32 = 3;

impl WireMessage for SotwRequest {
    fn decode_wire(mut bytes: &[u8]) -> Result<Self, String> {
        use prost::encoding::{WireType, decode_key, decode_varint};
        let mut names = Names::default();
        let mut hash = WordHash::default();
        let mut rest = Vec::new();
        while !bytes.is_empty() {
            let start = bytes;
            let (tag, wire_type) = decode_key(&mut bytes).map_err(|e| e.to_string())?;
            let len = match wire_type {
                WireType::LengthDelimited => {
                    usize::try_from(decode_varint(&mut bytes).map_err(|e| e.to_string())?)
                        .map_err(|_| "length overflow".to_owned())?
                }
                WireType::Varint => {
                    decode_varint(&mut bytes).map_err(|e| e.to_string())?;
                    0
                }
                WireType::SixtyFourBit => 8,
                WireType::ThirtyTwoBit => 4,
                _ => return Err("unsupported wire type".to_owned()),
            };
            let (value, after) = bytes
                .split_at_checked(len)
                .ok_or_else(|| "truncated field".to_owned())?;
            if tag == RESOURCE_NAMES && wire_type == WireType::LengthDelimited {
                names.push(value, &mut hash);
            } else {
                let field_len = start.len() - after.len();
                rest.extend_from_slice(&start[..field_len]);
            }
            bytes = after;
        }
        names.hash = hash.finish();
        Ok(Self {
            req: DiscoveryRequest::decode(rest.as_slice()).map_err(|e| e.to_string())?,
            names,
        })
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
    use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
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
        let mut requests = Requests::<SotwRequest>::new(tonic::body::Body::new(body), 1 << 20);
        let got = requests.next().await.unwrap().unwrap();
        let names: Vec<String> = got.names.iter().collect();
        assert_eq!(names, a.resource_names);
        assert_eq!(got.names.len, 500);
        assert_eq!(
            got.req,
            DiscoveryRequest {
                resource_names: vec![],
                ..a.clone()
            }
        );
        let got_b = requests.next().await.unwrap().unwrap();
        assert_eq!(got_b.req, b);
        assert_eq!(got_b.names.len, 0);
        assert!(requests.next().await.is_none());
        // The hash follows the list: same list, same hash; order and boundaries count.
        let n = |v: &[&str]| Names::of(v).hash;
        assert_eq!(got.names.hash, {
            let v: Vec<&str> = a.resource_names.iter().map(String::as_str).collect();
            n(&v)
        });
        assert_ne!(n(&["a", "b"]), n(&["b", "a"]));
        assert_ne!(n(&["ab", "c"]), n(&["a", "bc"]));
        assert!(Names::of(&["x", "*"]).has_star);
    }

    #[tokio::test]
    async fn oversized_and_compressed_requests_are_refused() {
        let big = framed(&DiscoveryRequest {
            type_url: "x".repeat(100),
            ..DiscoveryRequest::default()
        });
        let body = http_body_util::Full::new(Bytes::from(big));
        let mut requests = Requests::<SotwRequest>::new(tonic::body::Body::new(body), 10);
        let err = requests.next().await.unwrap().unwrap_err();
        assert_eq!(err.code(), tonic::Code::OutOfRange);
        let mut compressed = framed(&DiscoveryRequest::default());
        compressed[0] = 1;
        let body = http_body_util::Full::new(Bytes::from(compressed));
        let mut requests = Requests::<SotwRequest>::new(tonic::body::Body::new(body), 10);
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
