//! OTLP/HTTP traces (`POST /v1/traces`): the shared [`mast_otlp`] messages (an
//! `ExportTraceServiceRequest` decoded from protobuf, or from JSON by [`super::otlp_json`])
//! converted into the collector's [`Span`]s.

use std::collections::BTreeMap;

use base64::Engine as _;
use mast_otlp::{
    AnyValue, ExportTraceServiceRequest, SPAN_KIND_CLIENT, SPAN_KIND_CONSUMER, SPAN_KIND_INTERNAL,
    SPAN_KIND_PRODUCER, SPAN_KIND_SERVER, STATUS_CODE_ERROR, Span as OtlpSpan, Value,
};

use super::model::{Span, hex};

/// The dashboard's name of a `SpanKind`.
fn kind_name(kind: i32) -> &'static str {
    match kind {
        SPAN_KIND_INTERNAL => "INTERNAL",
        SPAN_KIND_SERVER => "SERVER",
        SPAN_KIND_CLIENT => "CLIENT",
        SPAN_KIND_PRODUCER => "PRODUCER",
        SPAN_KIND_CONSUMER => "CONSUMER",
        _ => "UNSPECIFIED",
    }
}

/// An attribute value as text: strings as they are, numbers and booleans as written, bytes
/// in base64, arrays and key-value lists as JSON.
pub fn value_text(v: &AnyValue) -> String {
    match &v.value {
        None => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(other) => match value_json(other) {
            serde_json::Value::String(s) => s,
            json => json.to_string(),
        },
    }
}

fn value_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::StringValue(s) => J::String(s.clone()),
        Value::BoolValue(b) => J::Bool(*b),
        Value::IntValue(i) => J::from(*i),
        Value::DoubleValue(d) => J::from(*d),
        Value::BytesValue(b) => J::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::ArrayValue(a) => J::Array(
            a.values
                .iter()
                .map(|v| v.value.as_ref().map_or(J::Null, value_json))
                .collect(),
        ),
        Value::KvlistValue(l) => J::Object(
            l.values
                .iter()
                .map(|kv| {
                    let v = kv.value.as_ref().and_then(|v| v.value.as_ref());
                    (kv.key.clone(), v.map_or(J::Null, value_json))
                })
                .collect(),
        ),
    }
}

/// The spans of a request, and how many were rejected with the last reason.
pub fn spans(request: ExportTraceServiceRequest) -> (Vec<Span>, usize, Option<String>) {
    let mut out = Vec::new();
    let mut rejected = 0;
    let mut reason = None;
    for rs in request.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
            .and_then(|a| a.value.as_ref())
            .map(value_text)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into());
        for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
            match convert(span, &service) {
                Ok(s) => out.push(s),
                Err(e) => {
                    rejected += 1;
                    reason = Some(e);
                }
            }
        }
    }
    (out, rejected, reason)
}

fn convert(s: OtlpSpan, service: &str) -> Result<Span, String> {
    let nonzero = |b: &[u8]| b.iter().any(|x| *x != 0);
    if s.trace_id.len() != 16 || !nonzero(&s.trace_id) {
        return Err(format!(
            "traceId {} is not 16 non-zero bytes",
            hex(&s.trace_id)
        ));
    }
    if s.span_id.len() != 8 || !nonzero(&s.span_id) {
        return Err(format!(
            "spanId {} is not 8 non-zero bytes",
            hex(&s.span_id)
        ));
    }
    let parent_id =
        (s.parent_span_id.len() == 8 && nonzero(&s.parent_span_id)).then(|| hex(&s.parent_span_id));
    let mut tags: BTreeMap<String, String> = s
        .attributes
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map(value_text).unwrap_or_default(),
            )
        })
        .collect();
    let error = s
        .status
        .as_ref()
        .is_some_and(|st| st.code == STATUS_CODE_ERROR);
    if let Some(st) = s.status.as_ref().filter(|st| !st.message.is_empty()) {
        tags.insert("otel.status_description".into(), st.message.clone());
    }
    Ok(Span {
        trace_id: hex(&s.trace_id),
        span_id: hex(&s.span_id),
        parent_id,
        name: s.name,
        service: service.to_owned(),
        kind: kind_name(s.kind).to_owned(),
        start_us: s.start_time_unix_nano / 1000,
        duration_us: s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) / 1000,
        tags,
        error,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use mast_otlp::{KeyValue, KeyValueList, Resource, ResourceSpans, ScopeSpans, Status};
    use prost::Message;

    /// A client span from `client.default` and its server child from `nginx-1.default`, as
    /// an exporter sends them (one resource per service).
    pub(crate) fn request() -> ExportTraceServiceRequest {
        let trace: Vec<u8> = (1..=16).collect();
        let span = |id: u8, parent: Option<u8>, kind: i32, start: u64, error: bool| OtlpSpan {
            trace_id: trace.clone(),
            span_id: vec![0, 0, 0, 0, 0, 0, 0, id],
            parent_span_id: parent
                .map(|p| vec![0, 0, 0, 0, 0, 0, 0, p])
                .unwrap_or_default(),
            name: "nginx-svc.default.svc.cluster.local:80/*".into(),
            kind,
            start_time_unix_nano: start,
            end_time_unix_nano: start + 2_000_000,
            attributes: vec![
                KeyValue::new(
                    "http.status_code",
                    Value::StringValue(if error { "503" } else { "200" }.into()),
                ),
                KeyValue::new("retries", Value::IntValue(2)),
                KeyValue::new(
                    "peer",
                    Value::KvlistValue(KeyValueList {
                        values: vec![KeyValue::new("ok", Value::BoolValue(true))],
                    }),
                ),
            ],
            status: error.then(|| Status {
                message: "upstream reset".into(),
                code: STATUS_CODE_ERROR,
            }),
            ..OtlpSpan::default()
        };
        let resource = |name: &str, spans| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue::string("service.name", name)],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![
                resource(
                    "client.default",
                    vec![span(1, None, 3, 1_731_000_000_000_000_000, false)],
                ),
                resource(
                    "nginx-1.default",
                    vec![span(2, Some(1), 2, 1_731_000_000_000_500_000, true)],
                ),
            ],
        }
    }

    #[test]
    fn protobuf_round_trip_gives_client_and_server_spans() {
        let bytes = request().encode_to_vec();
        let decoded = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
        let (spans, rejected, _) = spans(decoded);
        assert_eq!(rejected, 0);
        let (c, s) = (&spans[0], &spans[1]);
        assert_eq!(c.trace_id, "0102030405060708090a0b0c0d0e0f10");
        assert_eq!(
            (c.kind.as_str(), c.service.as_str()),
            ("CLIENT", "client.default")
        );
        assert_eq!(c.span_id, "0000000000000001");
        assert_eq!(c.parent_id, None);
        assert_eq!((c.start_us, c.duration_us), (1_731_000_000_000_000, 2000));
        assert_eq!(c.tags["retries"], "2");
        assert_eq!(c.tags["peer"], r#"{"ok":true}"#);
        assert!(!c.error);
        assert_eq!(
            (s.kind.as_str(), s.service.as_str()),
            ("SERVER", "nginx-1.default")
        );
        assert_eq!(s.parent_id.as_deref(), Some("0000000000000001"));
        assert!(s.error);
        assert_eq!(s.tags["otel.status_description"], "upstream reset");
    }

    #[test]
    fn bad_ids_are_rejected_one_by_one() {
        let mut r = request();
        r.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![0; 16];
        let (spans, rejected, reason) = spans(r);
        assert_eq!((spans.len(), rejected), (1, 1));
        assert!(reason.unwrap().contains("traceId"));
    }
}
