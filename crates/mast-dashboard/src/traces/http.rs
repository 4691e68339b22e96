//! The collector's HTTP surface: ingestion (`POST /api/v2/spans` Zipkin v2 JSON → 202,
//! `POST /v1/traces` OTLP/HTTP protobuf or JSON → 200) and the query API (`GET /api/traces`,
//! `GET /api/traces/{traceId}`, `GET /api/services/traced`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mast_otlp::{ExportTracePartialSuccess, ExportTraceServiceResponse, RpcStatus};
use prost::Message;
use serde::Deserialize;

use super::otlp;
use super::store::{TraceQuery, TraceStore};
use super::{otlp_json, zipkin};

/// How many traces `GET /api/traces` lists when no `limit` is given.
pub const DEFAULT_LIMIT: usize = 20;

/// The largest body the collector reads (OTLP batches can be large).
pub const MAX_BODY_BYTES: usize = 16 << 20;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// The routes, for any router state the store can be taken from.
pub fn router<S>() -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
    TraceStore: FromRef<S>,
{
    axum::Router::new()
        .route("/api/v2/spans", axum::routing::post(post_zipkin))
        .route("/v1/traces", axum::routing::post(post_otlp))
        .route("/api/traces", axum::routing::get(list_traces))
        .route("/api/traces/{trace_id}", axum::routing::get(get_trace))
        .route("/api/services/traced", axum::routing::get(traced_services))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

async fn post_zipkin(State(store): State<TraceStore>, body: Bytes) -> Response {
    match zipkin::parse(&body) {
        Ok(spans) => {
            let n = spans.len();
            let kept = store.add(spans);
            tracing::debug!(spans = n, kept, "zipkin spans received");
            StatusCode::ACCEPTED.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

async fn post_otlp(State(store): State<TraceStore>, headers: HeaderMap, body: Bytes) -> Response {
    let ct = content_type(&headers);
    let json = match ct.as_str() {
        PROTOBUF => false,
        JSON => true,
        other => {
            let msg = format!("content type {other:?}: OTLP/HTTP takes {PROTOBUF} or {JSON}");
            return (StatusCode::UNSUPPORTED_MEDIA_TYPE, msg).into_response();
        }
    };
    let request = if json {
        otlp_json::parse(&body).map_err(|e| e.to_string())
    } else {
        mast_otlp::ExportTraceServiceRequest::decode(body.as_ref())
            .map_err(|e| format!("not an OTLP ExportTraceServiceRequest: {e}"))
    };
    let request = match request {
        Ok(r) => r,
        Err(message) => return otlp_reply(json, StatusCode::BAD_REQUEST, &rpc_error(message)),
    };
    let (spans, rejected, reason) = otlp::spans(request);
    let kept = store.add(spans);
    tracing::debug!(kept, rejected, "otlp spans received");
    let response = ExportTraceServiceResponse {
        partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: i64::try_from(rejected).unwrap_or(i64::MAX),
            error_message: reason.unwrap_or_default(),
        }),
    };
    otlp_reply(json, StatusCode::OK, &response)
}

fn rpc_error(message: String) -> RpcStatus {
    RpcStatus {
        code: 3, // INVALID_ARGUMENT
        message,
    }
}

/// Something the OTLP endpoint answers with, in either encoding.
trait OtlpBody: Message {
    fn json(&self) -> serde_json::Value;
}

impl OtlpBody for ExportTraceServiceResponse {
    fn json(&self) -> serde_json::Value {
        match &self.partial_success {
            None => serde_json::json!({}),
            Some(p) => serde_json::json!({"partialSuccess": {
                "rejectedSpans": p.rejected_spans.to_string(),
                "errorMessage": p.error_message,
            }}),
        }
    }
}

impl OtlpBody for RpcStatus {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({"code": self.code, "message": self.message})
    }
}

/// The reply in the request's encoding, as OTLP/HTTP requires.
fn otlp_reply(json: bool, status: StatusCode, body: &impl OtlpBody) -> Response {
    let (ct, bytes) = if json {
        (JSON, body.json().to_string().into_bytes())
    } else {
        (PROTOBUF, body.encode_to_vec())
    };
    let mut response = (status, bytes).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    response
}

/// `GET /api/traces` parameters.
#[derive(Debug, Deserialize)]
struct ListParams {
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

async fn list_traces(
    State(store): State<TraceStore>,
    Query(params): Query<ListParams>,
) -> impl IntoResponse {
    let query = TraceQuery {
        service: params.service.filter(|s| !s.is_empty()),
        limit: params.limit.unwrap_or(DEFAULT_LIMIT),
    };
    Json(store.traces(&query))
}

async fn get_trace(State(store): State<TraceStore>, Path(trace_id): Path<String>) -> Response {
    match store.trace(&trace_id) {
        Some(t) => Json(t).into_response(),
        None => (StatusCode::NOT_FOUND, format!("no trace {trace_id}")).into_response(),
    }
}

async fn traced_services(State(store): State<TraceStore>) -> impl IntoResponse {
    Json(store.services())
}
