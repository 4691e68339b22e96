//! What `mastctl x echo` answers to one request: the plain message, the JSON description
//! (identity and request), or a gRPC echo — after the configured delay, and with the
//! configured error rate (or the per-request `?delay=` / `?status=` overrides). Logs one
//! line per request to stdout.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;

use super::grpc::{self, Frames};

/// Largest request body read (bigger ones answer 413).
const MAX_BODY: usize = 1 << 20;

/// The echo server's identity and behaviour, fixed at start.
#[derive(Debug, Clone)]
pub struct Echo {
    /// The text a plain GET answers (followed by a newline).
    pub message: String,
    /// The version reported in `x-echo-version` and JSON.
    pub version: String,
    /// This machine's host name.
    pub hostname: String,
    /// The workload identity from `$MAST_WORKLOAD`, `$MAST_NAMESPACE`, `$MAST_SERVICE_ACCOUNT`.
    pub workload: BTreeMap<String, String>,
    /// Added before every answer.
    pub delay: Duration,
    /// Fraction of requests (0..=1) answered with `error_status`.
    pub error_rate: f64,
    /// The status of injected errors.
    pub error_status: StatusCode,
}

/// What to do for one request: how long to wait and which status to answer.
struct Plan {
    delay: Duration,
    status: StatusCode,
    injected: bool,
}

impl Plan {
    fn new(echo: &Echo, query: &BTreeMap<&str, &str>) -> Self {
        let delay = query
            .get("delay")
            .and_then(|d| super::parse_duration(d).ok())
            .unwrap_or(echo.delay)
            .min(Duration::from_secs(300));
        let asked = query
            .get("status")
            .and_then(|s| s.parse::<u16>().ok())
            .and_then(|s| StatusCode::from_u16(s).ok());
        let injected =
            asked.is_none() && echo.error_rate > 0.0 && fastrand::f64() < echo.error_rate;
        let status = match asked {
            Some(s) => s,
            None if injected => echo.error_status,
            None => StatusCode::OK,
        };
        Self {
            delay,
            status,
            injected,
        }
    }
}

/// Answers one request (never fails: every problem is an HTTP or gRPC status).
pub async fn handle(
    echo: Arc<Echo>,
    remote: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Frames>, Infallible> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let query = parse_query(parts.uri.query().unwrap_or(""));
    let plan = Plan::new(&echo, &query);
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes());
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    let mut resp = match body {
        Err(_) if is_grpc(&parts.headers) => grpc_status(grpc::code::INVALID_ARGUMENT, "body"),
        Err(_) => plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large\n".into(),
        ),
        Ok(body) if is_grpc(&parts.headers) => grpc_answer(&echo, &parts, &body, &plan),
        Ok(body) if wants_json(&parts.headers, &query) => {
            json_answer(&echo, &parts, remote, body.len(), &plan)
        }
        Ok(_) => plain(plan.status, plain_text(&echo.message, plan.status)),
    };
    if let Ok(v) = HeaderValue::from_str(&echo.version) {
        resp.headers_mut().insert("x-echo-version", v);
    }
    if plan.injected {
        resp.headers_mut()
            .insert("x-echo-fault", HeaderValue::from_static("injected"));
    }
    log(remote, &parts, &resp, started.elapsed());
    Ok(resp)
}

fn parse_query(query: &str) -> BTreeMap<&str, &str> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect()
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

fn wants_json(headers: &HeaderMap, query: &BTreeMap<&str, &str>) -> bool {
    query.get("format") == Some(&"json")
        || headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("application/json"))
}

fn plain_text(message: &str, status: StatusCode) -> String {
    if status.is_client_error() || status.is_server_error() {
        format!("{message}: error {status}\n")
    } else {
        format!("{message}\n")
    }
}

fn plain(status: StatusCode, text: String) -> Response<Frames> {
    let mut resp = Response::new(Frames::data(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Request headers as a map, multi-valued ones joined with `, `.
fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        out.entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    out
}

fn json_answer(
    echo: &Echo,
    parts: &Parts,
    remote: SocketAddr,
    body_bytes: usize,
    plan: &Plan,
) -> Response<Frames> {
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            let host = parts.headers.get(header::HOST)?;
            host.to_str().ok().map(str::to_owned)
        });
    let doc = serde_json::json!({
        "message": echo.message,
        "version": echo.version,
        "hostname": echo.hostname,
        "workload": echo.workload,
        "status": plan.status.as_u16(),
        "request": {
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query().unwrap_or(""),
            "authority": authority,
            "protocol": format!("{:?}", parts.version),
            "remoteAddr": remote.to_string(),
            "headers": header_map(&parts.headers),
            "bodyBytes": body_bytes,
        },
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    let mut resp = plain(plan.status, text);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn grpc_answer(echo: &Echo, parts: &Parts, body: &Bytes, plan: &Plan) -> Response<Frames> {
    if parts.uri.path() != grpc::ECHO_PATH {
        let msg = format!(
            "unknown method {}; this server has {}",
            parts.uri.path(),
            grpc::ECHO_PATH
        );
        return grpc_status(grpc::code::UNIMPLEMENTED, &msg);
    }
    if !plan.status.is_success() {
        let msg = format!("error {} from {}", plan.status, echo.message);
        return grpc_status(grpc::code_for_http(plan.status.as_u16()), &msg);
    }
    let req: grpc::EchoRequest = match grpc::decode(body) {
        Ok(r) => r,
        Err(e) => return grpc_status(grpc::code::INVALID_ARGUMENT, &e),
    };
    let reply = grpc::EchoResponse {
        message: echo.message.clone(),
        version: echo.version.clone(),
        hostname: echo.hostname.clone(),
        echo: req.message,
        workload: echo.workload.clone(),
        metadata: header_map(&parts.headers),
    };
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(grpc::code::OK));
    let mut resp = Response::new(Frames::data(grpc::encode(&reply)).with_trailers(trailers));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    resp
}

/// A trailers-only gRPC answer: HTTP 200 with `grpc-status` (and `grpc-message`) in the headers.
fn grpc_status(code: u32, message: &str) -> Response<Frames> {
    let mut resp = Response::new(Frames::default());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert("grpc-status", HeaderValue::from(code));
    let printable: String = message
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .collect();
    if let Ok(v) = HeaderValue::from_str(&printable) {
        h.insert("grpc-message", v);
    }
    resp
}

/// One access-log line on stdout: `127.0.0.1:50312 "GET / HTTP/1.1" 200 14B 0.12ms`.
fn log(remote: SocketAddr, parts: &Parts, resp: &Response<Frames>, took: Duration) {
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let grpc = resp
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .map(|s| format!(" grpc-status={s}"))
        .unwrap_or_default();
    let line = format!(
        "{remote} \"{} {target} {:?}\" {}{grpc} {}B {}",
        parts.method,
        parts.version,
        resp.status().as_u16(),
        resp.body().data_len(),
        super::fmt_duration(took),
    );
    // A closed stdout must not stop the server.
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}
