//! The span collector: Zipkin v2 JSON and OTLP/HTTP ingestion, the last N traces in memory,
//! and the query API, all on the dashboard's listener (mastd points the proxies' `zipkin`
//! cluster at it when no other collector is configured).
//!
//! - [`model`]: the [`Span`] every format becomes, trace summaries and details;
//! - [`store`]: [`TraceStore`], spans grouped by trace, the oldest trace evicted first;
//! - [`zipkin`], [`otlp`], [`otlp_json`]: the wire formats;
//! - [`http`]: the routes (`POST /api/v2/spans`, `POST /v1/traces`, `GET /api/traces`,
//!   `GET /api/traces/{traceId}`, `GET /api/services/traced`).

pub mod http;
pub mod model;
pub mod otlp;
pub mod otlp_json;
pub mod store;
pub mod zipkin;

#[cfg(test)]
mod tests;

pub use model::{Span, TraceDetail, TraceSummary};
pub use store::{TraceQuery, TraceStore};

use crate::Dashboard;

impl axum::extract::FromRef<Dashboard> for TraceStore {
    fn from_ref(dashboard: &Dashboard) -> Self {
        dashboard.traces().clone()
    }
}

/// The collector and query routes, on the dashboard's state.
pub fn routes() -> axum::Router<Dashboard> {
    http::router()
}

/// The collector and query routes alone, serving `store`: a span collector without the rest
/// of the dashboard (tests, tools).
pub fn collector(store: TraceStore) -> axum::Router {
    http::router().with_state(store)
}
