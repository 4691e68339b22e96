//! What the collector keeps and serves: a [`Span`] (one proxy's record of one request, from
//! Zipkin or OTLP alike), a trace's [`TraceSummary`] for the list, and its [`TraceDetail`].
//! Ids are lowercase hex: trace ids 16 or 32 digits, span ids 16.

use std::collections::BTreeMap;

use serde::Serialize;

/// One span, whatever format it arrived in. Serialised as the dashboard API's span object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    /// The trace it belongs to (not serialised: the enclosing trace carries it).
    #[serde(skip)]
    pub trace_id: String,
    /// Its id.
    pub span_id: String,
    /// Its parent's id; `None` for a root span.
    pub parent_id: Option<String>,
    /// The operation (Envoy: the route's decorator, e.g. `nginx-svc.default.svc.cluster.local:80/*`).
    pub name: String,
    /// The service that reported it (Zipkin `localEndpoint.serviceName`, OTLP resource
    /// `service.name`); `unknown` when not given.
    pub service: String,
    /// `CLIENT`, `SERVER`, `PRODUCER`, `CONSUMER`, `INTERNAL` or `UNSPECIFIED`.
    pub kind: String,
    /// Start, in microseconds since the Unix epoch.
    pub start_us: u64,
    /// Duration in microseconds.
    pub duration_us: u64,
    /// Tags (Zipkin) or attributes (OTLP), as strings.
    pub tags: BTreeMap<String, String>,
    /// Whether the span recorded an error (Zipkin: an `error` tag; OTLP: status ERROR).
    pub error: bool,
}

impl Span {
    /// When the span ended, in microseconds since the Unix epoch.
    pub fn end_us(&self) -> u64 {
        self.start_us.saturating_add(self.duration_us)
    }
}

/// One trace in the list (`GET /api/traces`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceSummary {
    /// The trace id.
    pub trace_id: String,
    /// The service of the root span (the earliest span whose parent is not in the trace).
    pub root_service: String,
    /// The root span's name.
    pub root_name: String,
    /// The earliest start among the spans, µs since the epoch.
    pub start_us: u64,
    /// From the earliest start to the latest end, µs.
    pub duration_us: u64,
    /// How many spans were received.
    pub span_count: usize,
    /// The services that reported spans, sorted.
    pub services: Vec<String>,
    /// Whether any span recorded an error.
    pub error: bool,
}

/// One trace with its spans (`GET /api/traces/{traceId}`), sorted by start time.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceDetail {
    /// The trace id.
    pub trace_id: String,
    /// The spans, by start time (a parent before its children when they start together).
    pub spans: Vec<Span>,
}

/// Why a span was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpanError {
    /// An id is not hex of an accepted length, or is all zeros.
    #[error("{field} {value:?} is not {expected}")]
    BadId {
        /// Which id.
        field: &'static str,
        /// The value received.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

/// A trace id in canonical form: lowercase hex, left-padded with zeros to 16 or 32 digits
/// (as Zipkin normalises them), not all zeros.
pub fn normalize_trace_id(id: &str) -> Result<String, SpanError> {
    normalize_hex(id, "traceId", &[16, 32], "1 to 32 hex digits, not all zero")
}

/// A span id in canonical form: lowercase hex, left-padded to 16 digits, not all zeros.
pub fn normalize_span_id(id: &str, field: &'static str) -> Result<String, SpanError> {
    normalize_hex(id, field, &[16], "1 to 16 hex digits, not all zero")
}

fn normalize_hex(
    id: &str,
    field: &'static str,
    widths: &[usize],
    expected: &'static str,
) -> Result<String, SpanError> {
    let bad = || SpanError::BadId {
        field,
        value: id.to_owned(),
        expected,
    };
    let width = widths
        .iter()
        .copied()
        .find(|w| id.len() <= *w)
        .ok_or_else(bad)?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) || id.bytes().all(|b| b == b'0')
    {
        return Err(bad());
    }
    Ok(format!("{:0>width$}", id.to_ascii_lowercase()))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_normalised_as_zipkin_does() {
        assert_eq!(
            normalize_trace_id("ABC").unwrap(),
            "0000000000000abc",
            "padded to 64 bits"
        );
        assert_eq!(
            normalize_trace_id("1234567890abcdef1").unwrap(),
            "000000000000000001234567890abcdef1"[2..],
            "padded to 128 bits"
        );
        let full = "463ac35c9f6413ad48485a3953bb6124";
        assert_eq!(normalize_trace_id(full).unwrap(), full);
        for bad in ["", "0000", "xyz", &"a".repeat(33)] {
            assert!(normalize_trace_id(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            normalize_span_id("a2fb4a1d1a96d312", "id").unwrap(),
            "a2fb4a1d1a96d312"
        );
        assert!(
            normalize_span_id(full, "id").is_err(),
            "span ids are 64-bit"
        );
    }

    #[test]
    fn hex_is_lowercase_and_padded() {
        assert_eq!(hex(&[0, 0xab, 0x1f]), "00ab1f");
    }
}
