//! [`CaClient`]: calls `IstioCertificateService/CreateCertificate` on a CA (mastd, or
//! istiod's plaintext 15010) over plaintext gRPC.

use std::time::Duration;

use tonic::codegen::http;
use tonic::transport::Channel;
use tonic::{GrpcMethod, Status};

use crate::pb::{
    CREATE_CERTIFICATE_PATH, IstioCertificateRequest, IstioCertificateResponse, METHOD_NAME,
    SERVICE_NAME,
};

/// How long one CreateCertificate call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a CA address is unusable.
#[derive(Debug, thiserror::Error)]
#[error("CA address {address:?}: {reason}")]
pub struct AddressError {
    /// The address given.
    pub address: String,
    /// What is wrong.
    pub reason: String,
}

/// A CA client on one (lazily connected, reconnecting) HTTP/2 channel.
#[derive(Debug, Clone)]
pub struct CaClient {
    inner: tonic::client::Grpc<Channel>,
}

/// `host:port` → `http://host:port`; URLs are kept.
pub fn ca_uri(address: &str) -> String {
    crate::channel::uri_of(address)
}

impl CaClient {
    /// A client for `address` (`host:port` or `http://host:port`). Connects on first use
    /// and reconnects after failures.
    pub fn new(address: &str) -> Result<Self, AddressError> {
        Self::with_roots(address, None)
    }

    /// A client for `address`; `https://host:port` (istiod's 15012) is TLS verified against
    /// `roots_pem`.
    pub fn with_roots(address: &str, roots_pem: Option<&str>) -> Result<Self, AddressError> {
        let channel =
            crate::channel::channel(address, roots_pem, Some(CALL_TIMEOUT)).map_err(|e| {
                AddressError {
                    address: e.address,
                    reason: e.reason,
                }
            })?;
        Ok(Self {
            inner: tonic::client::Grpc::new(channel),
        })
    }

    /// Asks for a certificate; `token` goes in `authorization: Bearer <token>`.
    pub async fn create_certificate(
        &mut self,
        request: IstioCertificateRequest,
        token: Option<&str>,
    ) -> Result<IstioCertificateResponse, Status> {
        self.inner
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("CA not reachable: {e}")))?;
        let mut req = tonic::Request::new(request);
        if let Some(token) = token {
            let value = format!("Bearer {}", token.trim())
                .parse()
                .map_err(|_| Status::invalid_argument("the token holds invalid characters"))?;
            req.metadata_mut().insert("authorization", value);
        }
        req.extensions_mut()
            .insert(GrpcMethod::new(SERVICE_NAME, METHOD_NAME));
        let path = http::uri::PathAndQuery::from_static(CREATE_CERTIFICATE_PATH);
        let codec = tonic_prost::ProstCodec::default();
        self.inner
            .unary(req, path, codec)
            .await
            .map(tonic::Response::into_inner)
    }
}
