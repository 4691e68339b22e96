//! OTLP's JSON encoding (`Content-Type: application/json`): the protobuf JSON mapping with
//! OTLP's exceptions: camelCase keys, trace and span ids as hex strings (not base64), enums as
//! integers (names are accepted too), 64-bit integers as strings or numbers, `bytesValue` in
//! base64. Decoded into the same [`mast_otlp`] messages as the protobuf body (converted by
//! [`super::otlp`]).

use base64::Engine as _;
use mast_otlp::{
    AnyValue, ArrayValue, ExportTraceServiceRequest, KeyValue, KeyValueList, Resource,
    ResourceSpans, SPAN_KIND_NAMES, STATUS_CODE_NAMES, ScopeSpans, Span as OtlpSpan, Status, Value,
};
use serde::Deserialize;

/// Why a JSON body was refused.
#[derive(Debug, thiserror::Error)]
pub enum OtlpJsonError {
    /// Not OTLP JSON.
    #[error("not an OTLP JSON ExportTraceServiceRequest: {0}")]
    Json(#[from] serde_json::Error),
    /// An id that is not hex.
    #[error("{field} {value:?} is not hex")]
    Hex {
        /// Which id.
        field: &'static str,
        /// The value.
        value: String,
    },
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct JRequest {
    resource_spans: Vec<JResourceSpans>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct JResourceSpans {
    resource: Option<JResource>,
    scope_spans: Vec<JScopeSpans>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct JResource {
    attributes: Vec<JKeyValue>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct JScopeSpans {
    spans: Vec<JSpan>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct JSpan {
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    kind: Option<JEnum>,
    start_time_unix_nano: Option<JInt>,
    end_time_unix_nano: Option<JInt>,
    attributes: Vec<JKeyValue>,
    status: Option<JStatus>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct JStatus {
    message: String,
    code: Option<JEnum>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct JKeyValue {
    key: String,
    value: Option<JAnyValue>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct JAnyValue {
    string_value: Option<String>,
    bool_value: Option<bool>,
    int_value: Option<JInt>,
    double_value: Option<f64>,
    array_value: Option<JArray>,
    kvlist_value: Option<JKvList>,
    bytes_value: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JArray {
    values: Vec<JAnyValue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JKvList {
    values: Vec<JKeyValue>,
}

/// A 64-bit integer as a number or a string.
#[derive(Deserialize)]
#[serde(untagged)]
enum JInt {
    Unsigned(u64),
    Signed(i64),
    Text(String),
}

impl JInt {
    fn unsigned(&self) -> u64 {
        match self {
            Self::Unsigned(v) => *v,
            Self::Signed(v) => u64::try_from(*v).unwrap_or(0),
            Self::Text(s) => s.trim().parse().unwrap_or(0),
        }
    }

    fn signed(&self) -> i64 {
        match self {
            Self::Unsigned(v) => i64::try_from(*v).unwrap_or(i64::MAX),
            Self::Signed(v) => *v,
            Self::Text(s) => s.trim().parse().unwrap_or(0),
        }
    }
}

/// An enum as its number or its name.
#[derive(Deserialize)]
#[serde(untagged)]
enum JEnum {
    Number(i32),
    Name(String),
}

impl JEnum {
    fn value(&self, names: &[&str]) -> i32 {
        match self {
            Self::Number(n) => *n,
            Self::Name(s) => names
                .iter()
                .position(|n| n == s)
                .and_then(|i| i32::try_from(i).ok())
                .unwrap_or(0),
        }
    }
}

/// Parses an OTLP JSON `ExportTraceServiceRequest`.
pub fn parse(body: &[u8]) -> Result<ExportTraceServiceRequest, OtlpJsonError> {
    let j: JRequest = serde_json::from_slice(body)?;
    let resource_spans = j
        .resource_spans
        .into_iter()
        .map(|rs| {
            let spans = rs
                .scope_spans
                .into_iter()
                .map(|ss| {
                    let spans = ss.spans.into_iter().map(span).collect::<Result<_, _>>()?;
                    Ok(ScopeSpans {
                        spans,
                        ..ScopeSpans::default()
                    })
                })
                .collect::<Result<_, OtlpJsonError>>()?;
            Ok(ResourceSpans {
                resource: rs.resource.map(|r| Resource {
                    attributes: r.attributes.into_iter().map(key_value).collect(),
                    ..Resource::default()
                }),
                scope_spans: spans,
                ..ResourceSpans::default()
            })
        })
        .collect::<Result<_, OtlpJsonError>>()?;
    Ok(ExportTraceServiceRequest { resource_spans })
}

fn span(s: JSpan) -> Result<OtlpSpan, OtlpJsonError> {
    Ok(OtlpSpan {
        trace_id: unhex(&s.trace_id, "traceId")?,
        span_id: unhex(&s.span_id, "spanId")?,
        parent_span_id: unhex(&s.parent_span_id, "parentSpanId")?,
        name: s.name,
        kind: s.kind.map_or(0, |k| k.value(&SPAN_KIND_NAMES)),
        start_time_unix_nano: s.start_time_unix_nano.map_or(0, |v| v.unsigned()),
        end_time_unix_nano: s.end_time_unix_nano.map_or(0, |v| v.unsigned()),
        attributes: s.attributes.into_iter().map(key_value).collect(),
        status: s.status.map(|st| Status {
            message: st.message,
            code: st.code.map_or(0, |c| c.value(&STATUS_CODE_NAMES)),
        }),
        ..OtlpSpan::default()
    })
}

fn key_value(kv: JKeyValue) -> KeyValue {
    KeyValue {
        key: kv.key,
        value: kv.value.map(any_value),
    }
}

fn any_value(v: JAnyValue) -> AnyValue {
    let value = if let Some(s) = v.string_value {
        Some(Value::StringValue(s))
    } else if let Some(b) = v.bool_value {
        Some(Value::BoolValue(b))
    } else if let Some(i) = v.int_value {
        Some(Value::IntValue(i.signed()))
    } else if let Some(d) = v.double_value {
        Some(Value::DoubleValue(d))
    } else if let Some(a) = v.array_value {
        Some(Value::ArrayValue(ArrayValue {
            values: a.values.into_iter().map(any_value).collect(),
        }))
    } else if let Some(l) = v.kvlist_value {
        Some(Value::KvlistValue(KeyValueList {
            values: l.values.into_iter().map(key_value).collect(),
        }))
    } else {
        v.bytes_value.map(|b| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b.as_bytes())
                .unwrap_or_else(|_| b.into_bytes());
            Value::BytesValue(bytes)
        })
    };
    AnyValue { value }
}

/// Hex text to bytes; empty text gives no bytes.
fn unhex(text: &str, field: &'static str) -> Result<Vec<u8>, OtlpJsonError> {
    let bad = || OtlpJsonError::Hex {
        field,
        value: text.to_owned(),
    };
    if !text.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::otlp::spans;
    use super::*;

    /// OTLP JSON as the OpenTelemetry specification's example (`examples/trace.json`),
    /// with a second, server span in another resource.
    const BODY: &str = r#"{"resourceSpans":[
      {"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"client.default"}}]},
       "scopeSpans":[{"scope":{"name":"envoy","version":"1.40"},
         "spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174",
           "parentSpanId":"","name":"I'm a server span","startTimeUnixNano":"1544712660000000000",
           "endTimeUnixNano":"1544712661000000000","kind":3,
           "attributes":[{"key":"my.span.attr","value":{"stringValue":"some value"}},
                         {"key":"n","value":{"intValue":"42"}},
                         {"key":"b","value":{"bytesValue":"AAE="}},
                         {"key":"a","value":{"arrayValue":{"values":[{"doubleValue":1.5}]}}}]}]}]},
      {"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"nginx-1.default"}}]},
       "scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"0000000000000002",
         "parentSpanId":"eee19b7ec3c1b174","name":"inbound","kind":"SPAN_KIND_SERVER",
         "startTimeUnixNano":1544712660500000000,"endTimeUnixNano":1544712660700000000,
         "status":{"code":"STATUS_CODE_ERROR","message":"boom"}}]}]}
    ]}"#;

    #[test]
    fn parses_otlp_json() {
        let (spans, rejected, _) = spans(parse(BODY.as_bytes()).unwrap());
        assert_eq!(rejected, 0);
        let (c, s) = (&spans[0], &spans[1]);
        assert_eq!(c.trace_id, "5b8efff798038103d269b633813fc60c");
        assert_eq!(c.span_id, "eee19b7ec3c1b174");
        assert_eq!(
            (c.kind.as_str(), c.service.as_str()),
            ("CLIENT", "client.default")
        );
        assert_eq!(
            (c.start_us, c.duration_us),
            (1_544_712_660_000_000, 1_000_000)
        );
        assert_eq!(c.tags["my.span.attr"], "some value");
        assert_eq!(c.tags["n"], "42");
        assert_eq!(c.tags["b"], "AAE=");
        assert_eq!(c.tags["a"], "[1.5]");
        assert_eq!(s.parent_id.as_deref(), Some("eee19b7ec3c1b174"));
        assert_eq!(
            (s.kind.as_str(), s.service.as_str()),
            ("SERVER", "nginx-1.default")
        );
        assert_eq!(s.duration_us, 200_000);
        assert!(s.error && !c.error);
    }

    #[test]
    fn refuses_what_is_not_otlp_json() {
        let e = parse(b"[1,2]").unwrap_err();
        assert!(e.to_string().contains("invalid type"), "{e}");
        let e = parse(br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#)
            .unwrap_err();
        assert!(e.to_string().contains("traceId \"xyz\" is not hex"), "{e}");
    }
}
