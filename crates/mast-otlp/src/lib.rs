//! OTLP/HTTP trace messages (`POST /v1/traces`, `application/x-protobuf`): the
//! `opentelemetry.proto` messages of an `ExportTraceServiceRequest` of spans, its response,
//! and `google.rpc.Status` (an OTLP/HTTP error body), written by hand with prost. Field
//! numbers and types are those of `opentelemetry/proto/{collector/trace,trace,common,
//! resource}/v1/*.proto`, so the bytes are wire-compatible with `opentelemetry-proto`
//! (span events and links, dropped counts other than the resource's, and entity refs are
//! left out: decoding skips them).
//!
//! This crate owns the messages only. mast-proxy converts its finished spans into them
//! (`mast_proxy::trace::otlp`); the dashboard's collector converts them into its own span
//! model (`mast_dashboard::traces::otlp`). Hand-written rather than the
//! `opentelemetry-proto` crate, which always brings the OpenTelemetry SDK along.

/// `opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTraceServiceRequest {
    /// The spans, grouped by the resource that produced them.
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// `opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTraceServiceResponse {
    /// Set when some spans were rejected.
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<ExportTracePartialSuccess>,
}

/// `opentelemetry.proto.collector.trace.v1.ExportTracePartialSuccess`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTracePartialSuccess {
    /// How many spans were rejected.
    #[prost(int64, tag = "1")]
    pub rejected_spans: i64,
    /// Why.
    #[prost(string, tag = "2")]
    pub error_message: String,
}

/// `opentelemetry.proto.trace.v1.ResourceSpans`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceSpans {
    /// The producer (its attributes hold `service.name`).
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

/// `opentelemetry.proto.common.v1.InstrumentationScope` (attributes left out).
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
    /// The operation.
    #[prost(string, tag = "5")]
    pub name: String,
    /// `SpanKind` (`SPAN_KIND_*`).
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

/// `SpanKind` UNSPECIFIED.
pub const SPAN_KIND_UNSPECIFIED: i32 = 0;
/// `SpanKind` INTERNAL.
pub const SPAN_KIND_INTERNAL: i32 = 1;
/// `SpanKind` SERVER.
pub const SPAN_KIND_SERVER: i32 = 2;
/// `SpanKind` CLIENT.
pub const SPAN_KIND_CLIENT: i32 = 3;
/// `SpanKind` PRODUCER.
pub const SPAN_KIND_PRODUCER: i32 = 4;
/// `SpanKind` CONSUMER.
pub const SPAN_KIND_CONSUMER: i32 = 5;
/// The `SpanKind` names, indexed by value (OTLP JSON may spell enums by name).
pub const SPAN_KIND_NAMES: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];

/// `Status.StatusCode` UNSET.
pub const STATUS_CODE_UNSET: i32 = 0;
/// `Status.StatusCode` OK.
pub const STATUS_CODE_OK: i32 = 1;
/// `Status.StatusCode` ERROR.
pub const STATUS_CODE_ERROR: i32 = 2;
/// The `Status.StatusCode` names, indexed by value.
pub const STATUS_CODE_NAMES: [&str; 3] =
    ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

/// `opentelemetry.proto.trace.v1.Status`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    /// A description of the error.
    #[prost(string, tag = "2")]
    pub message: String,
    /// `StatusCode` (`STATUS_CODE_*`).
    #[prost(int32, tag = "3")]
    pub code: i32,
}

/// `opentelemetry.proto.common.v1.KeyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    /// The key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// The value.
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

impl KeyValue {
    /// An attribute `key` = `value`.
    pub fn new(key: impl Into<String>, value: Value) -> Self {
        Self {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
        }
    }

    /// A string attribute.
    pub fn string(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self::new(key, Value::StringValue(value.into()))
    }
}

/// `opentelemetry.proto.common.v1.AnyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    /// The value.
    #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<Value>,
}

/// The `AnyValue.value` oneof.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    /// `string_value`.
    #[prost(string, tag = "1")]
    StringValue(String),
    /// `bool_value`.
    #[prost(bool, tag = "2")]
    BoolValue(bool),
    /// `int_value`.
    #[prost(int64, tag = "3")]
    IntValue(i64),
    /// `double_value`.
    #[prost(double, tag = "4")]
    DoubleValue(f64),
    /// `array_value`.
    #[prost(message, tag = "5")]
    ArrayValue(ArrayValue),
    /// `kvlist_value`.
    #[prost(message, tag = "6")]
    KvlistValue(KeyValueList),
    /// `bytes_value`.
    #[prost(bytes = "vec", tag = "7")]
    BytesValue(Vec<u8>),
}

/// `opentelemetry.proto.common.v1.ArrayValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ArrayValue {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}

/// `opentelemetry.proto.common.v1.KeyValueList`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValueList {
    /// The entries.
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<KeyValue>,
}

/// `google.rpc.Status`: the body of an OTLP/HTTP error response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    /// A `google.rpc.Code` (3: INVALID_ARGUMENT).
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// The reason.
    #[prost(string, tag = "2")]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn key_value_bytes_are_opentelemetry_protos() {
        // KeyValue{key: "a" (1, LEN), value: AnyValue{string_value: "b" (1, LEN)} (2, LEN)}.
        let bytes = KeyValue::string("a", "b").encode_to_vec();
        assert_eq!(bytes, [0x0a, 1, b'a', 0x12, 3, 0x0a, 1, b'b']);
        let int = KeyValue::new("n", Value::IntValue(42)).encode_to_vec();
        assert_eq!(int, [0x0a, 1, b'n', 0x12, 2, 0x18, 42]);
    }

    #[test]
    fn span_times_are_fixed64_and_flags_fixed32() {
        let span = Span {
            start_time_unix_nano: 1,
            flags: 1,
            ..Span::default()
        };
        let bytes = span.encode_to_vec();
        // Field 7, wire type I64; field 16, wire type I32 (a two-byte key).
        assert_eq!(
            bytes,
            [0x39, 1, 0, 0, 0, 0, 0, 0, 0, 0x85, 0x01, 1, 0, 0, 0]
        );
    }

    #[test]
    fn a_request_round_trips() {
        let span = Span {
            trace_id: (1..=16).collect(),
            span_id: vec![0, 0, 0, 0, 0, 0, 0, 1],
            kind: SPAN_KIND_CLIENT,
            status: Some(Status {
                message: "reset".into(),
                code: STATUS_CODE_ERROR,
            }),
            attributes: vec![KeyValue::new(
                "peer",
                Value::KvlistValue(KeyValueList {
                    values: vec![KeyValue::new("ok", Value::BoolValue(true))],
                }),
            )],
            ..Span::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue::string("service.name", "client.default")],
                    dropped_attributes_count: 0,
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..ScopeSpans::default()
                }],
                schema_url: String::new(),
            }],
        };
        let bytes = request.encode_to_vec();
        let decoded = ExportTraceServiceRequest::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(decoded, request);
        assert_eq!(
            SPAN_KIND_NAMES[SPAN_KIND_CLIENT as usize],
            "SPAN_KIND_CLIENT"
        );
        assert_eq!(
            STATUS_CODE_NAMES[STATUS_CODE_ERROR as usize],
            "STATUS_CODE_ERROR"
        );
    }
}
