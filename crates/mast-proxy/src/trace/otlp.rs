//! OTLP/HTTP protobuf (`POST /v1/traces`, `application/x-protobuf`): the few
//! `opentelemetry.proto` messages an `ExportTraceServiceRequest` of spans needs, written with
//! prost by hand (field numbers as `opentelemetry/proto/{collector/trace,trace,common,
//! resource}/v1`), since the `opentelemetry-proto` crate always brings the whole
//! OpenTelemetry SDK. Collectors (and tests) decode them with the same types.

use super::record::{FinishedSpan, Kind};

/// `opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTraceServiceRequest {
    /// The spans, grouped by resource.
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// `opentelemetry.proto.trace.v1.ResourceSpans`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceSpans {
    /// The resource (service) the spans come from.
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    /// The spans, grouped by instrumentation scope.
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
    /// Schema URL.
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

/// `opentelemetry.proto.resource.v1.Resource`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    /// Attributes (`service.name`, …).
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
    /// Attributes dropped.
    #[prost(uint32, tag = "2")]
    pub dropped_attributes_count: u32,
}

/// `opentelemetry.proto.trace.v1.ScopeSpans`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeSpans {
    /// The instrumentation scope.
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    /// The spans.
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<Span>,
    /// Schema URL.
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

/// `opentelemetry.proto.common.v1.InstrumentationScope`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstrumentationScope {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Version.
    #[prost(string, tag = "2")]
    pub version: String,
}

/// `opentelemetry.proto.trace.v1.Span` (events and links left out).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Span {
    /// 16 bytes.
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    /// 8 bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    /// W3C `tracestate`.
    #[prost(string, tag = "3")]
    pub trace_state: String,
    /// 8 bytes, empty for a root span.
    #[prost(bytes = "vec", tag = "4")]
    pub parent_span_id: Vec<u8>,
    /// Operation name.
    #[prost(string, tag = "5")]
    pub name: String,
    /// `SpanKind`: 2 server, 3 client.
    #[prost(int32, tag = "6")]
    pub kind: i32,
    /// Start, ns since the epoch.
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    /// End, ns since the epoch.
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    /// Attributes (the span's tags).
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    /// Status.
    #[prost(message, optional, tag = "15")]
    pub status: Option<Status>,
    /// W3C trace flags (bit 0: sampled).
    #[prost(fixed32, tag = "16")]
    pub flags: u32,
}

/// `SpanKind` SERVER.
pub const SPAN_KIND_SERVER: i32 = 2;
/// `SpanKind` CLIENT.
pub const SPAN_KIND_CLIENT: i32 = 3;
/// `Status.StatusCode` ERROR.
pub const STATUS_CODE_ERROR: i32 = 2;

/// `opentelemetry.proto.trace.v1.Status`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    /// Message.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Code: 0 unset, 1 ok, 2 error.
    #[prost(int32, tag = "3")]
    pub code: i32,
}

/// `opentelemetry.proto.common.v1.KeyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    /// Key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Value.
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

/// `opentelemetry.proto.common.v1.AnyValue` (scalars only).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    /// The value.
    #[prost(oneof = "Value", tags = "1, 2, 3, 4")]
    pub value: Option<Value>,
}

/// `AnyValue.value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    /// A string.
    #[prost(string, tag = "1")]
    StringValue(String),
    /// A boolean.
    #[prost(bool, tag = "2")]
    BoolValue(bool),
    /// An integer.
    #[prost(int64, tag = "3")]
    IntValue(i64),
    /// A double.
    #[prost(double, tag = "4")]
    DoubleValue(f64),
}

/// A string attribute.
pub fn attribute(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
    }
}

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
            Some(a) => *a = attribute(k.as_ref(), v.as_str()),
            None => attributes.push(attribute(k.as_ref(), v.as_str())),
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
