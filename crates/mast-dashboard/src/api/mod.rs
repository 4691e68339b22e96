//! The dashboard's JSON API and live event stream (`/api/*`).

use crate::Dashboard;

/// The API routes.
pub fn routes() -> axum::Router<Dashboard> {
    axum::Router::new()
}
