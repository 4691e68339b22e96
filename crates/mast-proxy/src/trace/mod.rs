//! Tracing in the HTTP connection manager (HCM `tracing`), as Envoy's tracers
//! `envoy.tracers.zipkin` and `envoy.tracers.opentelemetry` do it: the sampling decision
//! (packed into `x-request-id`), continuing the caller's trace from B3 (`x-b3-*`, `b3`) or
//! W3C (`traceparent`, `tracestate`) headers or starting one, one span per request (CLIENT
//! outbound, SERVER inbound) written upstream as the parent, and export of finished spans in
//! batches to a collector cluster as Zipkin v2 JSON or OTLP/HTTP protobuf.
//!
//! - [`config`] / [`provider`]: protos → [`TraceConfig`] (validated once, at conversion);
//! - [`decision`]: the tracing decision; [`context`]: the propagation headers;
//! - [`span`]: the per-request hooks the connection manager and router call ([`upstream`]:
//!   the router's child spans under `spawn_upstream_span`); [`body`]:
//!   completes the span when the response ends;
//! - [`reporter`]: the batching exporter; [`zipkin`] / [`otlp`]: the wire formats;
//!   [`record`]: a finished span; [`stats`]: Envoy's tracing counters.
//!
//! Who the proxy is ([`LocalNode`]: node id, `cluster` as the service name, zone, address) is
//! installed once at start ([`install`]); spans carry empty values until then.

pub mod body;
pub mod config;
pub mod context;
pub mod decision;
pub mod otlp;
pub mod provider;
pub mod record;
pub mod reporter;
pub mod span;
pub mod stats;
pub mod upstream;
pub mod zipkin;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::OnceLock;

pub use config::TraceConfig;
pub use span::{Finish, RequestTrace, finish, inject, set_operation, start};

/// The proxy as its spans describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalNode {
    /// The node id (tag `node_id`).
    pub id: String,
    /// The node `cluster`, `<workload>.<namespace>` (Zipkin `localEndpoint.serviceName`).
    pub cluster: String,
    /// The node's locality zone (tag `zone`).
    pub zone: String,
    /// The workload's address (Zipkin `localEndpoint.ipv4`).
    pub ip: Option<IpAddr>,
}

static NODE: OnceLock<LocalNode> = OnceLock::new();

/// Installs who the proxy is and the tracing counters (once; later calls are ignored).
pub fn install(node: LocalNode, stats: stats::TraceStats) {
    let _ = NODE.set(node);
    stats::install(stats);
}

/// The installed node, or an empty one.
pub fn node() -> &'static LocalNode {
    NODE.get_or_init(LocalNode::default)
}
