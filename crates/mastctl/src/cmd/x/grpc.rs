//! gRPC without protoc: the echo service's messages (hand-written prost structs), gRPC's
//! length-prefixed message framing, status codes, and a response body made of ready frames
//! so an answer can end with `grpc-status` trailers. Shared by `x echo` and `x load`.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut as _, Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};

/// The path of the echo method: service `mast.echo.v1.Echo`, method `Echo`.
pub const ECHO_PATH: &str = "/mast.echo.v1.Echo/Echo";

/// `mast.echo.v1.EchoRequest`: what the client says.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoRequest {
    /// Text to echo back.
    #[prost(string, tag = "1")]
    pub message: String,
}

/// `mast.echo.v1.EchoResponse`: who answered and what it was asked.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoResponse {
    /// The server's `--message`.
    #[prost(string, tag = "1")]
    pub message: String,
    /// The server's `--version`.
    #[prost(string, tag = "2")]
    pub version: String,
    /// The server's host name.
    #[prost(string, tag = "3")]
    pub hostname: String,
    /// The request's `message`, echoed.
    #[prost(string, tag = "4")]
    pub echo: String,
    /// The workload identity (`workload`, `namespace`, `serviceAccount`) where known.
    #[prost(btree_map = "string, string", tag = "5")]
    pub workload: BTreeMap<String, String>,
    /// The request metadata (headers), multi-valued ones joined with `, `.
    #[prost(btree_map = "string, string", tag = "6")]
    pub metadata: BTreeMap<String, String>,
}

/// gRPC status codes used here (the numbers of `google.rpc.Code`).
pub mod code {
    /// Success.
    pub const OK: u32 = 0;
    /// Unknown error.
    pub const UNKNOWN: u32 = 2;
    /// The request was malformed.
    pub const INVALID_ARGUMENT: u32 = 3;
    /// No such method.
    pub const UNIMPLEMENTED: u32 = 12;
    /// Try again later.
    pub const UNAVAILABLE: u32 = 14;
}

/// The gRPC status for an HTTP status, as gRPC's HTTP-to-gRPC mapping says.
pub fn code_for_http(status: u16) -> u32 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => code::UNIMPLEMENTED,
        429 | 502..=504 => code::UNAVAILABLE,
        _ => code::UNKNOWN,
    }
}

/// Canonical name of a gRPC status code.
pub fn code_name(code: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("?")
}

/// Encodes one message as a gRPC frame: flag 0 (uncompressed), 4-byte length, the message.
pub fn encode(msg: &impl prost::Message) -> Bytes {
    let len = msg.encoded_len();
    let mut buf = BytesMut::with_capacity(5 + len);
    buf.put_u8(0);
    buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    // Encoding into a buffer of the right capacity cannot fail.
    let _ = msg.encode(&mut buf);
    buf.freeze()
}

/// Decodes the first gRPC frame of a body; `Err` says what is wrong with it.
pub fn decode<M: prost::Message + Default>(body: &[u8]) -> Result<M, String> {
    let (&flag, rest) = body.split_first().ok_or("empty body: no gRPC frame")?;
    if flag != 0 {
        return Err("compressed messages are not supported".into());
    }
    let len_bytes: [u8; 4] = rest
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or("truncated gRPC frame header")?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    let msg = rest
        .get(4..4 + len)
        .ok_or_else(|| format!("gRPC frame says {len} bytes, body has {}", rest.len() - 4))?;
    M::decode(msg).map_err(|e| format!("bad message: {e}"))
}

/// A response body of frames known in advance: data, then trailers. The echo server's
/// answers (plain, JSON and gRPC) all use it.
#[derive(Debug, Default)]
pub struct Frames {
    frames: VecDeque<Frame<Bytes>>,
}

impl Frames {
    /// A body of `data` alone.
    pub fn data(data: impl Into<Bytes>) -> Self {
        Self {
            frames: VecDeque::from([Frame::data(data.into())]),
        }
    }

    /// Adds a trailers frame after the data.
    pub fn with_trailers(mut self, trailers: http::HeaderMap) -> Self {
        self.frames.push_back(Frame::trailers(trailers));
        self
    }

    /// Bytes of data in the body.
    pub fn data_len(&self) -> usize {
        self.frames
            .iter()
            .filter_map(|f| f.data_ref().map(Bytes::len))
            .sum()
    }
}

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().frames.pop_front().map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        if self.frames.iter().any(|f| f.is_trailers()) {
            SizeHint::default()
        } else {
            SizeHint::with_exact(self.data_len() as u64)
        }
    }
}
