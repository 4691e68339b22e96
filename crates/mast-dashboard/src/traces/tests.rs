//! The collector over HTTP, as a proxy or a browser sees it: ingestion status codes and
//! bodies, and the query API's JSON. Each test serves the collector on 127.0.0.1:0.

use axum::body::Bytes;
use axum::http::{Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mast_otlp::{ExportTraceServiceResponse, RpcStatus};
use prost::Message;
use serde_json::{Value, json};

use super::{TraceStore, collector};

type Body = Full<Bytes>;

/// Serves the collector for `store` on a free port; the server task ends with the runtime.
async fn serve(store: &TraceStore) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = collector(store.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn send(store: &TraceStore, req: Request<Body>) -> (StatusCode, Option<String>, Vec<u8>) {
    let addr = serve(store).await;
    let (mut parts, body) = req.into_parts();
    parts.uri = format!("http://{addr}{}", parts.uri).parse().unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.request(Request::from_parts(parts, body)),
    )
    .await
    .expect("the collector answers within 10 s")
    .unwrap();
    let status = response.status();
    let ct = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, ct, body.to_vec())
}

fn post(path: &str, ct: &str, body: impl Into<Bytes>) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, ct)
        .body(Full::new(body.into()))
        .unwrap()
}

async fn get_json(store: &TraceStore, path: &str) -> (StatusCode, Value) {
    let (status, _, body) = send(store, Request::get(path).body(Body::default()).unwrap()).await;
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, json)
}

#[tokio::test]
async fn zipkin_post_then_query() {
    let store = TraceStore::new(10);
    let body = super::zipkin::tests::ENVOY_SPANS;
    let (status, _, _) = send(&store, post("/api/v2/spans", "application/json", body)).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let (status, list) = get_json(&store, "/api/traces?limit=20").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        list,
        json!([{
            "traceId": "463ac35c9f6413ad48485a3953bb6124",
            "rootService": "client.default",
            "rootName": "nginx-svc.default.svc.cluster.local:80/*",
            "startUs": 1_731_000_000_000_000_u64,
            "durationUs": 2150,
            "spanCount": 2,
            "services": ["client.default", "nginx-1.default"],
            "error": true
        }])
    );

    let (status, trace) = get_json(&store, "/api/traces/463ac35c9f6413ad48485a3953bb6124").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(trace["traceId"], "463ac35c9f6413ad48485a3953bb6124");
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0]["kind"], "CLIENT");
    assert_eq!(spans[0]["parentId"], Value::Null);
    assert_eq!(spans[0]["tags"]["http.status_code"], "200");
    assert_eq!(spans[1]["kind"], "SERVER");
    assert_eq!(spans[1]["parentId"], spans[0]["spanId"]);
    assert_eq!(spans[1]["error"], true);
    let keys: Vec<&str> = spans[1]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "durationUs",
            "error",
            "kind",
            "name",
            "parentId",
            "service",
            "spanId",
            "startUs",
            "tags"
        ]
    );

    let (_, services) = get_json(&store, "/api/services/traced").await;
    assert_eq!(services, json!(["client.default", "nginx-1.default"]));
    let (_, filtered) = get_json(&store, "/api/traces?service=nobody").await;
    assert_eq!(filtered, json!([]));
    let (_, filtered) = get_json(&store, "/api/traces?service=client").await;
    assert_eq!(
        filtered.as_array().unwrap().len(),
        1,
        "by canonical service"
    );
}

#[tokio::test]
async fn zipkin_bad_json_is_400_with_the_reason() {
    let store = TraceStore::new(10);
    let (status, _, body) = send(&store, post("/api/v2/spans", "application/json", "[{")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("EOF while parsing"), "{text}");
    assert!(store.is_empty());
}

#[tokio::test]
async fn otlp_protobuf_and_json() {
    let store = TraceStore::new(10);
    let req = super::otlp::tests::request().encode_to_vec();
    let (status, ct, body) = send(&store, post("/v1/traces", "application/x-protobuf", req)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct.as_deref(), Some("application/x-protobuf"));
    let reply = ExportTraceServiceResponse::decode(body.as_slice()).unwrap();
    assert_eq!(reply, ExportTraceServiceResponse::default());
    assert_eq!(store.len(), 1);
    let (_, trace) = get_json(&store, "/api/traces/0102030405060708090a0b0c0d0e0f10").await;
    assert_eq!(trace["spans"].as_array().unwrap().len(), 2);

    let json_body = json!({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "ratings.default"}}]},
        "scopeSpans": [{"spans": [{"traceId": "0102030405060708090a0b0c0d0e0f10",
            "spanId": "0000000000000003", "parentSpanId": "0000000000000002", "name": "db",
            "kind": 3, "startTimeUnixNano": "1731000000001000000",
            "endTimeUnixNano": "1731000000001500000"}, {"traceId": "00", "spanId": "01"}]}]}]});
    let (status, ct, body) = send(
        &store,
        post(
            "/v1/traces",
            "application/json; charset=utf-8",
            json_body.to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct.as_deref(), Some("application/json"));
    let reply: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(reply["partialSuccess"]["rejectedSpans"], "1");
    let (_, trace) = get_json(&store, "/api/traces/0102030405060708090a0b0c0d0e0f10").await;
    let services: Vec<&str> = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    assert_eq!(
        services,
        ["client.default", "nginx-1.default", "ratings.default"],
        "one trace from two posts in two encodings"
    );
}

#[tokio::test]
async fn otlp_errors() {
    let store = TraceStore::new(10);
    let (status, _, _) = send(&store, post("/v1/traces", "text/plain", "x")).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, ct, body) = send(
        &store,
        post("/v1/traces", "application/x-protobuf", vec![0xff, 0xff]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(ct.as_deref(), Some("application/x-protobuf"));
    let err = RpcStatus::decode(body.as_slice()).unwrap();
    assert_eq!(err.code, 3);
    assert!(
        err.message.contains("ExportTraceServiceRequest"),
        "{}",
        err.message
    );
    let (status, _, body) = send(&store, post("/v1/traces", "application/json", "{")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let err: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(err["code"], 3);
}

#[tokio::test]
async fn unknown_trace_is_404() {
    let store = TraceStore::new(10);
    let (status, _) = get_json(&store, "/api/traces/463ac35c9f6413ad48485a3953bb6124").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get_json(&store, "/api/traces/not-hex").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
