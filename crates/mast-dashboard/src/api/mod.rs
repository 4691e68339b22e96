//! The dashboard's JSON API and live event stream (`/api/*`): `/api/graph`,
//! `/api/services`, `/api/workloads`, `/api/workloads/{namespace}/{name}`, `/api/config` and
//! `/api/events` (server-sent events). Every body is camelCase JSON, as the contract in the
//! dashboard brief (and the page) expects. Handlers read one [`view::View`] and serialise
//! what the pure functions of the submodules compute.

pub mod config;
pub mod events;
pub mod services;
#[cfg(test)]
mod tests;
pub mod view;
pub mod workloads;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::Dashboard;
use view::View;

/// The API routes.
pub fn routes() -> Router<Dashboard> {
    Router::new()
        .route("/api/graph", get(graph))
        .route("/api/services", get(services))
        .route("/api/workloads", get(workloads))
        .route("/api/workloads/{namespace}/{name}", get(workload))
        .route("/api/config", get(config))
        .route("/api/events", get(events::events))
}

async fn graph(State(d): State<Dashboard>) -> Response {
    Json(View::of(&d).graph).into_response()
}

async fn services(State(d): State<Dashboard>) -> Response {
    let messages = config::messages(&d.sources().store.current());
    Json(services::services(&View::of(&d), &messages)).into_response()
}

async fn workloads(State(d): State<Dashboard>) -> Response {
    Json(workloads::workloads(&View::of(&d))).into_response()
}

async fn workload(
    State(d): State<Dashboard>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let view = View::of(&d);
    let dump = |node_id: &str| {
        d.sources().xds.config_dump(node_id).map(|types| {
            types
                .into_iter()
                .map(|(t, list)| (t, list.into_iter().map(|r| r.name).collect()))
                .collect()
        })
    };
    match workloads::detail(&view, &namespace, &name, dump) {
        Some(body) => Json(body).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": format!("no workload {namespace}/{name}")})),
        )
            .into_response(),
    }
}

async fn config(State(d): State<Dashboard>) -> Response {
    Json(config::config(&d.sources().store.current())).into_response()
}
