//! The ADS gRPC service, mounted by hand rather than through envoy-types' generated server so
//! that state-of-the-world responses are encoded straight from the shared generated parts:
//! a response to a thousand proxies is a list of references into one copy of the resources,
//! written into each stream's HTTP/2 buffer as it is sent, never cloned per proxy. The wire
//! format is unchanged (`envoy.service.discovery.v3.DiscoveryResponse`); delta responses use
//! the ordinary prost codec.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryResponse,
};
use prost::bytes::BufMut;
use prost::{EncodeError, Message};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::{Grpc, NamedService, StreamingService};
use tonic::{Request, Response, Status, Streaming};

use crate::service::AdsService;
use crate::view::Selection;
use crate::wire::{Requests, Responses};

const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// A state-of-the-world response: the message without its resources, and the resources as
/// references into shared parts (encoded as field 2, `resources`, in order).
#[derive(Debug)]
pub(crate) struct SotwResponse {
    /// Everything but `resources`.
    pub head: DiscoveryResponse,
    /// The resources.
    pub body: Vec<Selection>,
}

impl SotwResponse {
    /// The length of the encoded message.
    pub(crate) fn encoded_len(&self) -> usize {
        self.head.encoded_len()
            + self
                .body
                .iter()
                .flat_map(Selection::resources)
                .map(|r| r.field_len(2))
                .sum::<usize>()
    }

    /// The message as an ordinary `DiscoveryResponse` (copies the resources; for tests and
    /// diagnostics).
    #[cfg(test)]
    pub(crate) fn to_message(&self) -> DiscoveryResponse {
        let mut m = self.head.clone();
        m.resources = self
            .body
            .iter()
            .flat_map(Selection::resources)
            .map(|r| r.to_any())
            .collect();
        m
    }
}

/// The tower service for `AggregatedDiscoveryService`, from [`crate::XdsServer::into_service`].
#[derive(Clone)]
pub struct AdsServer {
    inner: Arc<AdsService>,
    max_decoding: usize,
}

impl std::fmt::Debug for AdsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdsServer").finish_non_exhaustive()
    }
}

impl AdsServer {
    pub(crate) fn new(inner: AdsService, max_decoding: usize) -> Self {
        Self {
            inner: Arc::new(inner),
            max_decoding,
        }
    }
}

impl NamedService for AdsServer {
    const NAME: &'static str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
}

impl Service<http::Request<tonic::body::Body>> for AdsServer {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let inner = self.inner.clone();
        let max = Some(self.max_decoding);
        match req.uri().path() {
            SOTW_PATH => {
                let requests = Requests::new(req.into_body(), self.max_decoding);
                Box::pin(async move {
                    Ok(match inner.sotw(requests) {
                        Ok(rx) => {
                            let mut response =
                                http::Response::new(tonic::body::Body::new(Responses::new(rx)));
                            response.headers_mut().insert(
                                http::header::CONTENT_TYPE,
                                http::HeaderValue::from_static("application/grpc"),
                            );
                            response
                        }
                        Err(status) => status.into_http(),
                    })
                })
            }
            DELTA_PATH => Box::pin(async move {
                let mut grpc = Grpc::new(DeltaCodec).apply_max_message_size_config(max, None);
                Ok(grpc.streaming(Delta(inner), req).await)
            }),
            _ => Box::pin(async move { Ok(Status::unimplemented("").into_http()) }),
        }
    }
}

/// `DeltaAggregatedResources`.
struct Delta(Arc<AdsService>);

impl StreamingService<DeltaDiscoveryRequest> for Delta {
    type Response = DeltaDiscoveryResponse;
    type ResponseStream = crate::service::ResponseStream<DeltaDiscoveryResponse>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<Streaming<DeltaDiscoveryRequest>>) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move { inner.delta(request) })
    }
}

/// Writes `item` as an encoded `DiscoveryResponse`.
pub(crate) fn write_response(
    item: &SotwResponse,
    dst: &mut impl BufMut,
) -> Result<(), EncodeError> {
    item.head.encode(dst)?;
    for r in item.body.iter().flat_map(Selection::resources) {
        r.encode_field(2, dst);
    }
    Ok(())
}

/// Encodes `DeltaDiscoveryResponse`s, decodes `DeltaDiscoveryRequest`s (plain prost).
#[derive(Debug, Clone, Copy, Default)]
struct DeltaCodec;

impl Codec for DeltaCodec {
    type Encode = DeltaDiscoveryResponse;
    type Decode = DeltaDiscoveryRequest;
    type Encoder = ProstEncoder;
    type Decoder = ProstDecoder<DeltaDiscoveryRequest>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder(PhantomData)
    }
}

/// Encodes a delta response.
#[derive(Debug, Clone, Copy)]
struct ProstEncoder;

impl Encoder for ProstEncoder {
    type Item = DeltaDiscoveryResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding a response: {e}")))
    }
}

/// Decodes a prost message.
#[derive(Debug)]
struct ProstDecoder<T>(PhantomData<T>);

impl<T: Message + Default> Decoder for ProstDecoder<T> {
    type Item = T;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<T>, Status> {
        T::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(format!("decoding a request: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::Part;
    use envoy_types::pb::google::protobuf::Any;
    use mast_xds::NamedResource;

    #[test]
    fn encoding_from_parts_equals_the_plain_message() {
        let res = |n: &str, v: u8| NamedResource {
            name: n.into(),
            resource: Any {
                type_url: "type.googleapis.com/x".into(),
                value: vec![v; 3],
            },
        };
        let part = Arc::new(Part::new(vec![res("a", 1), res("b", 2), res("c", 3)]));
        let response = SotwResponse {
            head: DiscoveryResponse {
                version_info: "7".into(),
                type_url: "type.googleapis.com/x".into(),
                nonce: "n1".into(),
                ..DiscoveryResponse::default()
            },
            body: vec![
                Selection::some(part.clone(), vec![2, 0]),
                Selection::all(part),
            ],
        };
        let plain = response.to_message();
        assert_eq!(plain.resources.len(), 5);
        let mut buf = Vec::new();
        write_response(&response, &mut buf).unwrap();
        let decoded = DiscoveryResponse::decode(buf.as_slice()).unwrap();
        assert_eq!(decoded, plain);
        assert_eq!(decoded.resources[0].value, vec![3; 3]);
    }
}
