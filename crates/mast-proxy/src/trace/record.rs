//! A finished span as the exporters encode it: ids, name, kind, timing (microseconds since
//! the epoch) and tags, independent of the wire format.

use std::borrow::Cow;

use super::context::TraceId;

/// The span's side of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Outbound (egress): the proxy calls out for its workload.
    Client,
    /// Inbound (ingress): the proxy receives for its workload.
    Server,
}

impl Kind {
    /// Zipkin's name (`CLIENT`, `SERVER`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Client => "CLIENT",
            Kind::Server => "SERVER",
        }
    }
}

/// A tag: a static or owned key and its value.
pub type Tag = (Cow<'static, str>, String);

/// A finished, sampled span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedSpan {
    /// The trace.
    pub trace_id: TraceId,
    /// This span.
    pub id: u64,
    /// Its parent, if any.
    pub parent_id: Option<u64>,
    /// The operation name.
    pub name: String,
    /// Client or server.
    pub kind: Kind,
    /// Zipkin `shared`: a server span reusing the caller's span id.
    pub shared: bool,
    /// W3C `tracestate` carried along (OpenTelemetry).
    pub tracestate: Option<String>,
    /// Start, µs since the epoch.
    pub start_us: u64,
    /// Duration, µs.
    pub duration_us: u64,
    /// Tags in the order set (a later duplicate wins when encoded).
    pub tags: Vec<Tag>,
}

impl FinishedSpan {
    /// Whether the span carries `error: true`.
    pub fn is_error(&self) -> bool {
        self.tags.iter().any(|(k, v)| k == "error" && v == "true")
    }
}
