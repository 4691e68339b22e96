//! The `grpc` probe: `grpc.health.v1.Health/Check` on the application (plaintext h2, as
//! the kubelet), SERVING → 200, anything else (another status, an error, Unimplemented)
//! → 500. The two messages are declared here rather than generated: they are tiny.

use std::net::SocketAddr;
use std::time::Duration;

use tonic::GrpcMethod;
use tonic::codegen::http::uri::PathAndQuery;

use crate::config::GrpcAction;
use crate::{APP_HOST, Answer};

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckRequest {
    /// The service asked about.
    #[prost(string, tag = "1")]
    pub service: String,
}

/// `grpc.health.v1.HealthCheckResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckResponse {
    /// `ServingStatus`: 0 UNKNOWN, 1 SERVING, 2 NOT_SERVING, 3 SERVICE_UNKNOWN.
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// `ServingStatus.SERVING`.
pub const SERVING: i32 = 1;
/// The method's path.
pub const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// Runs the probe (the caller bounds its time; `timeout` bounds the connection).
pub async fn probe(action: &GrpcAction, timeout: Duration) -> Answer {
    let addr = SocketAddr::new(APP_HOST, action.port);
    match check(addr, &action.service, timeout).await {
        Ok(SERVING) => Answer::new(200, bytes::Bytes::new()),
        Ok(status) => Answer::failed(format!(
            "{addr}: grpc.health.v1.Health/Check answered status {status}, not SERVING"
        )),
        Err(e) => Answer::failed(format!("{addr}: grpc.health.v1.Health/Check: {e}")),
    }
}

async fn check(addr: SocketAddr, service: &str, timeout: Duration) -> Result<i32, String> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect()
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| e.to_string())?;
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: service.to_owned(),
    });
    request
        .extensions_mut()
        .insert(GrpcMethod::new("grpc.health.v1.Health", "Check"));
    let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
    let response = grpc
        .unary(request, PathAndQuery::from_static(CHECK_PATH), codec)
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
    Ok(response.into_inner().status)
}
