//! OTLP/HTTP protobuf export (`POST /v1/traces`, `application/x-protobuf`): finished spans
//! as an `ExportTraceServiceRequest` of the shared [`mast_otlp`] messages (which collectors
//! and tests decode with).

use mast_otlp::{
    ExportTraceServiceRequest, InstrumentationScope, KeyValue, Resource, ResourceSpans,
    SPAN_KIND_CLIENT, SPAN_KIND_SERVER, STATUS_CODE_ERROR, ScopeSpans, Span, Status,
};

use super::record::{FinishedSpan, Kind};

/// The resource and scope every span of one tracer shares.
#[derive(Debug, Clone, Default)]
pub struct Shared {
    /// Resource attributes.
    pub resource: Vec<KeyValue>,
    /// The instrumentation scope, when set.
    pub scope: Option<InstrumentationScope>,
}

fn span(s: &FinishedSpan) -> Span {
    // A later duplicate tag wins, as Envoy's `setTag` overwrites.
    let mut attributes: Vec<KeyValue> = Vec::with_capacity(s.tags.len());
    for (k, v) in &s.tags {
        match attributes.iter_mut().find(|a| a.key == *k) {
            Some(a) => *a = KeyValue::string(k.as_ref(), v.as_str()),
            None => attributes.push(KeyValue::string(k.as_ref(), v.as_str())),
        }
    }
    let start = s.start_us.saturating_mul(1000);
    Span {
        trace_id: s.trace_id.bytes().to_vec(),
        span_id: s.id.to_be_bytes().to_vec(),
        trace_state: s.tracestate.clone().unwrap_or_default(),
        parent_span_id: s
            .parent_id
            .map(|p| p.to_be_bytes().to_vec())
            .unwrap_or_default(),
        name: s.name.clone(),
        kind: match s.kind {
            Kind::Server => SPAN_KIND_SERVER,
            Kind::Client => SPAN_KIND_CLIENT,
        },
        start_time_unix_nano: start,
        end_time_unix_nano: start.saturating_add(s.duration_us.saturating_mul(1000)),
        attributes,
        status: s.is_error().then(|| Status {
            message: String::new(),
            code: STATUS_CODE_ERROR,
        }),
        flags: 1,
    }
}

/// The request for `spans`.
pub fn request(spans: &[FinishedSpan], shared: &Shared) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: shared.resource.clone(),
                dropped_attributes_count: 0,
            }),
            scope_spans: vec![ScopeSpans {
                scope: shared.scope.clone(),
                spans: spans.iter().map(span).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// The request body for `spans`.
pub fn encode(spans: &[FinishedSpan], shared: &Shared) -> Vec<u8> {
    prost::Message::encode_to_vec(&request(spans, shared))
}
