//! Zipkin v2 JSON (`POST /api/v2/spans`: a JSON array of spans, what Envoy's Zipkin tracer
//! posts and Jaeger and Zipkin accept): parsing into [`Span`]s.
//!
//! Lenient where real senders differ: `timestamp`/`duration` as numbers or strings, tag
//! values of any JSON scalar; strict where a span would be meaningless: ids must be hex
//! (normalised as Zipkin does) and a bad one rejects the whole post, as Zipkin does.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::model::{Span, SpanError, normalize_span_id, normalize_trace_id};

/// Why a post was refused.
#[derive(Debug, thiserror::Error)]
pub enum ZipkinError {
    /// Not a JSON array of Zipkin v2 spans.
    #[error("not a Zipkin v2 JSON span list: {0}")]
    Json(#[from] serde_json::Error),
    /// A span with an unusable id.
    #[error("span {index}: {source}")]
    Span {
        /// Its position in the array.
        index: usize,
        /// What is wrong.
        source: SpanError,
    },
}

/// One span as Zipkin v2 JSON writes it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ZipkinSpan {
    trace_id: String,
    id: String,
    #[serde(default)]
    parent_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    timestamp: Option<Number>,
    #[serde(default)]
    duration: Option<Number>,
    #[serde(default)]
    local_endpoint: Option<Endpoint>,
    #[serde(default)]
    tags: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint {
    #[serde(default)]
    service_name: Option<String>,
}

/// An unsigned integer written as a number or a string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Number {
    Int(u64),
    Float(f64),
    Text(String),
}

impl Number {
    fn value(&self) -> u64 {
        match self {
            Self::Int(v) => *v,
            // Saturating conversion: negative and NaN give 0.
            Self::Float(v) => *v as u64,
            Self::Text(s) => s.trim().parse().unwrap_or(0),
        }
    }
}

/// Parses a Zipkin v2 JSON span list.
pub fn parse(body: &[u8]) -> Result<Vec<Span>, ZipkinError> {
    let raw: Vec<ZipkinSpan> = serde_json::from_slice(body)?;
    raw.into_iter()
        .enumerate()
        .map(|(index, s)| convert(s).map_err(|source| ZipkinError::Span { index, source }))
        .collect()
}

fn convert(s: ZipkinSpan) -> Result<Span, SpanError> {
    let parent_id = match s.parent_id.as_deref() {
        None | Some("") => None,
        Some(p) if p.bytes().all(|b| b == b'0') => None,
        Some(p) => Some(normalize_span_id(p, "parentId")?),
    };
    let tags: BTreeMap<String, String> = s
        .tags
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (k, v)
        })
        .collect();
    Ok(Span {
        trace_id: normalize_trace_id(&s.trace_id)?,
        span_id: normalize_span_id(&s.id, "id")?,
        parent_id,
        name: s.name.unwrap_or_default(),
        service: s
            .local_endpoint
            .and_then(|e| e.service_name)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "unknown".into()),
        kind: s
            .kind
            .map(|k| k.to_ascii_uppercase())
            .unwrap_or_else(|| "INTERNAL".into()),
        start_us: s.timestamp.as_ref().map_or(0, Number::value),
        duration_us: s.duration.as_ref().map_or(0, Number::value),
        error: tags.contains_key("error"),
        tags,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A client and a server span as Envoy 1.40's Zipkin tracer posts them (HTTP_JSON,
    /// 128-bit trace id, `shared_span_context: false`): the shape of Envoy's
    /// `span_buffer_test.cc`, with the tags Envoy's HTTP tracer sets.
    pub(crate) const ENVOY_SPANS: &str = r#"[
      {"traceId":"463ac35c9f6413ad48485a3953bb6124","id":"a2fb4a1d1a96d312",
       "kind":"CLIENT","name":"nginx-svc.default.svc.cluster.local:80/*",
       "timestamp":1731000000000000,"duration":2150,
       "localEndpoint":{"serviceName":"client.default","ipv4":"127.0.0.1","port":0},
       "tags":{"component":"proxy","node_id":"sidecar~127.0.0.1~client.default~default.svc.cluster.local",
               "guid:x-request-id":"3e1a7c4e-6a3b-4d1e-9c2a-1f0e2d3c4b5a","http.method":"GET",
               "http.url":"http://nginx-svc/","http.protocol":"HTTP/1.1","http.status_code":"200",
               "upstream_cluster":"outbound|80||nginx-svc.default.svc.cluster.local",
               "response_flags":"-","istio.canonical_service":"client"}},
      {"traceId":"463ac35c9f6413ad48485a3953bb6124","id":"5b4185666d50f68b",
       "parentId":"a2fb4a1d1a96d312","kind":"SERVER","name":"inbound|8080||",
       "timestamp":1731000000000600,"duration":1200,
       "localEndpoint":{"serviceName":"nginx-1.default","ipv4":"127.0.0.1","port":0},
       "tags":{"component":"proxy","http.status_code":"503","error":"true"}}
    ]"#;

    #[test]
    fn parses_envoys_spans() {
        let spans = parse(ENVOY_SPANS.as_bytes()).unwrap();
        assert_eq!(spans.len(), 2);
        let (c, s) = (&spans[0], &spans[1]);
        assert_eq!(c.trace_id, "463ac35c9f6413ad48485a3953bb6124");
        assert_eq!(
            (c.kind.as_str(), c.service.as_str()),
            ("CLIENT", "client.default")
        );
        assert_eq!(c.parent_id, None);
        assert_eq!((c.start_us, c.duration_us), (1_731_000_000_000_000, 2150));
        assert_eq!(c.tags["http.status_code"], "200");
        assert!(!c.error);
        assert_eq!(s.parent_id.as_deref(), Some("a2fb4a1d1a96d312"));
        assert_eq!(
            (s.kind.as_str(), s.service.as_str()),
            ("SERVER", "nginx-1.default")
        );
        assert!(s.error, "Envoy tags failed requests with error");
    }

    #[test]
    fn lenient_numbers_and_tags() {
        let body = r#"[{"traceId":"ABC","id":"1","timestamp":"1500","duration":20.0,
            "tags":{"retries":2,"cached":false}}]"#;
        let s = &parse(body.as_bytes()).unwrap()[0];
        assert_eq!(s.trace_id, "0000000000000abc");
        assert_eq!(s.span_id, "0000000000000001");
        assert_eq!((s.start_us, s.duration_us), (1500, 20));
        assert_eq!(s.tags["retries"], "2");
        assert_eq!(s.tags["cached"], "false");
        assert_eq!(
            (s.service.as_str(), s.kind.as_str()),
            ("unknown", "INTERNAL")
        );
    }

    #[test]
    fn bad_input_is_refused_with_the_reason() {
        let e = parse(b"{\"traceId\":1}").unwrap_err();
        assert!(e.to_string().contains("invalid type"), "{e}");
        let e = parse(br#"[{"traceId":"zz","id":"1"}]"#).unwrap_err();
        assert!(e.to_string().contains("span 0: traceId \"zz\""), "{e}");
        let e = parse(br#"[{"id":"1"}]"#).unwrap_err();
        assert!(e.to_string().contains("missing field `traceId`"), "{e}");
    }
}
