//! Trace context propagation headers: reading the caller's context (B3 multi-header
//! `x-b3-traceid` / `x-b3-spanid` / `x-b3-parentspanid` / `x-b3-sampled` / `x-b3-flags`, B3
//! single `b3`, W3C `traceparent` / `tracestate`) and writing the proxy's span as the parent
//! of the upstream request, as Envoy's Zipkin and OpenTelemetry span context extractors do.

use std::fmt::Write as _;

use http::{HeaderMap, HeaderValue};

const B3: &str = "b3";
const B3_TRACE_ID: &str = "x-b3-traceid";
const B3_SPAN_ID: &str = "x-b3-spanid";
const B3_PARENT_ID: &str = "x-b3-parentspanid";
const B3_SAMPLED: &str = "x-b3-sampled";
const B3_FLAGS: &str = "x-b3-flags";
const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// A trace id: 64 bits (`high` 0, not `wide`) or 128 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TraceId {
    /// The high 64 bits (0 for a 64-bit id).
    pub high: u64,
    /// The low 64 bits.
    pub low: u64,
    /// A 128-bit id (written as 32 hex digits).
    pub wide: bool,
}

impl TraceId {
    /// Lowercase hex: 16 digits, or 32 for a 128-bit id.
    pub fn hex(&self) -> String {
        if self.wide {
            format!("{:016x}{:016x}", self.high, self.low)
        } else {
            format!("{:016x}", self.low)
        }
    }

    /// The 16 bytes of the id (OTLP's `trace_id`; a 64-bit id is zero-padded on the left).
    pub fn bytes(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.high.to_be_bytes());
        out[8..].copy_from_slice(&self.low.to_be_bytes());
        out
    }
}

/// The caller's span as its headers describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanContext {
    /// The trace.
    pub trace_id: TraceId,
    /// The caller's span.
    pub span_id: u64,
    /// The caller's parent span, when given (B3).
    pub parent_id: Option<u64>,
    /// The caller's sampling decision, when given.
    pub sampled: Option<bool>,
    /// W3C `tracestate`, kept as is.
    pub tracestate: Option<HeaderValue>,
}

/// What a request's headers say about the trace it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Nothing: the proxy starts a trace.
    None,
    /// A sampling decision without ids (`x-b3-sampled` or `b3: 0` alone).
    Sampled(bool),
    /// A full context to continue.
    Context(SpanContext),
    /// Malformed headers: as Envoy, the request is not traced and its headers pass untouched.
    Invalid,
}

fn get<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// `s` as exactly `len` hex digits (any case).
fn hex_u64(s: &str, len: usize) -> Option<u64> {
    if s.len() != len || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// A 16- or 32-digit B3 trace id.
fn trace_id(s: &str) -> Option<TraceId> {
    match s.len() {
        16 => Some(TraceId {
            high: 0,
            low: hex_u64(s, 16)?,
            wide: false,
        }),
        32 => Some(TraceId {
            high: hex_u64(&s[..16], 16)?,
            low: hex_u64(&s[16..], 16)?,
            wide: true,
        }),
        _ => None,
    }
}

/// A B3 sampling state: `1`/`d` (debug) sampled, `0` not; `true`/`false` as old tracers wrote.
fn b3_sampled(s: &str) -> Option<bool> {
    match s {
        "1" | "d" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// B3, single header first (`b3`), then the multi-header form.
pub fn extract_b3(h: &HeaderMap) -> Incoming {
    if let Some(single) = h.get(B3) {
        return single.to_str().map_or(Incoming::Invalid, b3_single);
    }
    let sampled = match get(h, B3_SAMPLED) {
        Some(s) => Some(s == "1" || s == "true"),
        None => get(h, B3_FLAGS).filter(|f| *f == "1").map(|_| true),
    };
    let (Some(trace), Some(span)) = (get(h, B3_TRACE_ID), get(h, B3_SPAN_ID)) else {
        return sampled.map_or(Incoming::None, Incoming::Sampled);
    };
    b3_context(trace, span, get(h, B3_PARENT_ID), sampled)
}

/// `b3: {traceid}-{spanid}[-{sampling}[-{parentspanid}]]`, or `b3: {sampling}` alone.
fn b3_single(v: &str) -> Incoming {
    if v.len() == 1 {
        return b3_sampled(v).map_or(Incoming::Invalid, Incoming::Sampled);
    }
    let mut parts = v.split('-');
    let (Some(trace), Some(span)) = (parts.next(), parts.next()) else {
        return Incoming::Invalid;
    };
    let (sampled, parent) = (parts.next(), parts.next());
    if parts.next().is_some() {
        return Incoming::Invalid;
    }
    let Some(sampled) = optional(sampled, b3_sampled) else {
        return Incoming::Invalid;
    };
    b3_context(trace, span, parent, sampled)
}

/// An optional field: `Some(None)` when absent, `None` when present but malformed.
fn optional<T>(field: Option<&str>, parse: impl FnOnce(&str) -> Option<T>) -> Option<Option<T>> {
    match field {
        None => Some(None),
        Some(s) => parse(s).map(Some),
    }
}

/// The B3 context of these ids (either form); any malformed id makes it invalid.
fn b3_context(trace: &str, span: &str, parent: Option<&str>, sampled: Option<bool>) -> Incoming {
    let (Some(trace_id), Some(span_id)) = (trace_id(trace), hex_u64(span, 16)) else {
        return Incoming::Invalid;
    };
    let Some(parent_id) = optional(parent, |p| hex_u64(p, 16)) else {
        return Incoming::Invalid;
    };
    Incoming::Context(SpanContext {
        trace_id,
        span_id,
        parent_id,
        sampled,
        tracestate: None,
    })
}

/// W3C `traceparent` (`{version}-{trace-id}-{parent-id}-{flags}`) and `tracestate`.
pub fn extract_w3c(h: &HeaderMap) -> Incoming {
    let Some(value) = h.get(TRACEPARENT) else {
        return Incoming::None;
    };
    let Some(ctx) = value.to_str().ok().and_then(traceparent) else {
        return Incoming::Invalid;
    };
    Incoming::Context(SpanContext {
        tracestate: h.get(TRACESTATE).filter(|v| !v.is_empty()).cloned(),
        ..ctx
    })
}

fn traceparent(v: &str) -> Option<SpanContext> {
    let mut parts = v.split('-');
    let version = parts.next()?;
    let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
    // Version 00 has exactly four fields; later versions may append more.
    let version_ok = match version {
        "00" => parts.next().is_none(),
        "ff" => false,
        other => hex_u64(other, 2).is_some(),
    };
    if !version_ok || trace.len() != 32 {
        return None;
    }
    let trace_id = trace_id(trace)?;
    let span_id = hex_u64(span, 16)?;
    let flags = hex_u64(flags, 2)?;
    if (trace_id.high == 0 && trace_id.low == 0) || span_id == 0 {
        return None;
    }
    Some(SpanContext {
        trace_id,
        span_id,
        parent_id: None,
        sampled: Some(flags & 1 == 1),
        tracestate: None,
    })
}

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Writes the B3 multi-header context of span `span_id` (Envoy's Zipkin tracer always writes
/// this form, whichever it read); a `b3` single header the request carried is rewritten to the
/// same context, so the next hop (which reads `b3` first) does not see the caller's span.
pub fn inject_b3(
    h: &mut HeaderMap,
    trace: TraceId,
    span_id: u64,
    parent: Option<u64>,
    sampled: bool,
) {
    h.insert(B3_TRACE_ID, value(&trace.hex()));
    h.insert(B3_SPAN_ID, value(&format!("{span_id:016x}")));
    if let Some(p) = parent {
        h.insert(B3_PARENT_ID, value(&format!("{p:016x}")));
    }
    h.insert(
        B3_SAMPLED,
        HeaderValue::from_static(if sampled { "1" } else { "0" }),
    );
    if h.contains_key(B3) {
        let mut single = format!("{}-{span_id:016x}-{}", trace.hex(), u8::from(sampled));
        if let Some(p) = parent {
            let _ = write!(single, "-{p:016x}");
        }
        h.insert(B3, value(&single));
    }
}

/// Writes `traceparent` (version 00, 128-bit trace id) and `tracestate` when there is one.
pub fn inject_w3c(
    h: &mut HeaderMap,
    trace: TraceId,
    span_id: u64,
    sampled: bool,
    tracestate: Option<&HeaderValue>,
) {
    let mut tp = String::with_capacity(55);
    let _ = write!(
        tp,
        "00-{:016x}{:016x}-{span_id:016x}-{}",
        trace.high,
        trace.low,
        if sampled { "01" } else { "00" }
    );
    h.insert(TRACEPARENT, value(&tp));
    if let Some(ts) = tracestate {
        h.insert(TRACESTATE, ts.clone());
    }
}
