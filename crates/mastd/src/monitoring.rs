//! The monitoring server (istiod's 15014): `/metrics` (Prometheus text), `/version`,
//! `/debug/syncz` (every proxy's sync state, as `mastctl proxy-status` reads it),
//! `/debug/configz` (the config folders and their files, the configuration served and every
//! rejected resource with its reason) and
//! `/debug/config_dump?proxyID=` (what was last generated for a proxy).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use mast_model::MeshSnapshot;
use mast_registry::ConfigStore;
use mast_xds_server::XdsServer;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;

/// What the monitoring handlers read.
#[derive(Clone)]
pub struct Monitor {
    store: ConfigStore,
    snapshots: watch::Receiver<Arc<MeshSnapshot>>,
    xds: XdsServer,
    registry: Arc<Registry>,
    config_gauges: ConfigGauges,
    /// The config folders, in rank order.
    folders: Arc<[PathBuf]>,
    /// The dashboard's URL, when it runs.
    dashboard: Option<String>,
}

/// Gauges about the served configuration, refreshed on every scrape.
#[derive(Clone, Default)]
struct ConfigGauges {
    rejected: Gauge,
    resources: Gauge,
    services: Gauge,
}

impl Monitor {
    /// Registers every metric and returns the monitor.
    pub fn new(
        store: ConfigStore,
        snapshots: watch::Receiver<Arc<MeshSnapshot>>,
        xds: XdsServer,
        ca: Option<&mast_ca::server::CaMetrics>,
    ) -> Self {
        let mut registry = Registry::default();
        xds.register(&mut registry);
        if let Some(ca) = ca {
            ca.register(&mut registry);
        }
        crate::config_events::start(&store, &mut registry);
        let gauges = ConfigGauges::default();
        registry.register(
            "mast_config_rejected",
            "Resources left out because they failed to load or validate",
            gauges.rejected.clone(),
        );
        registry.register(
            "mast_config_resources",
            "Valid resources served",
            gauges.resources.clone(),
        );
        registry.register(
            "mast_services",
            "Services in the mesh snapshot",
            gauges.services.clone(),
        );
        Self {
            store,
            snapshots,
            xds,
            registry: Arc::new(registry),
            config_gauges: gauges,
            folders: Arc::from(Vec::new()),
            dashboard: None,
        }
    }

    /// The watched config folders, listed with their files on `/debug/configz`.
    pub fn with_folders(mut self, folders: Vec<PathBuf>) -> Self {
        self.folders = folders.into();
        self
    }

    /// Records where the dashboard listens (`/debug/endpointz`).
    pub fn with_dashboard(mut self, url: Option<String>) -> Self {
        self.dashboard = url;
        self
    }
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    monitor: Monitor,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/version", get(version))
        .route("/debug/syncz", get(syncz))
        .route("/debug/endpointz", get(endpointz))
        .route("/debug/configz", get(configz))
        .route("/debug/config_dump", get(config_dump))
        .with_state(monitor);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(State(m): State<Monitor>) -> Response {
    let state = m.store.current();
    m.config_gauges
        .rejected
        .set(i64::try_from(state.rejected).unwrap_or(i64::MAX));
    m.config_gauges
        .resources
        .set(i64::try_from(state.resources.len()).unwrap_or(i64::MAX));
    m.config_gauges
        .services
        .set(i64::try_from(m.snapshots.borrow().services().count()).unwrap_or(i64::MAX));
    let mut body = String::new();
    match encode(&mut body, &m.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn version() -> Json<Value> {
    Json(json!({"version": mast_core::VERSION, "component": "mastd"}))
}

/// One proxy's sync state, the shape `mastctl proxy-status` reads.
#[derive(Serialize)]
struct Sync {
    proxy_id: String,
    name: String,
    cluster_id: String,
    proxy_version: String,
    admin_address: String,
    control_plane: String,
    cds: String,
    lds: String,
    eds: String,
    rds: String,
    detail: Value,
}

fn control_plane_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("mastd-{}", host.trim())
}

/// Where mastd's other servers listen (`mastctl up` reads the dashboard's URL here).
async fn endpointz(State(m): State<Monitor>) -> Json<Value> {
    Json(json!({ "dashboard": m.dashboard }))
}

async fn syncz(State(m): State<Monitor>) -> Json<Vec<Sync>> {
    let cp = control_plane_name();
    let state = |s: &mast_xds_server::ProxyStatus, t: &str| s.sync_status(t).to_string();
    let out = m
        .xds
        .status()
        .into_iter()
        .map(|s| Sync {
            proxy_id: s.node_id.clone(),
            name: format!("{}.{}", s.proxy.workload, s.proxy.namespace),
            cluster_id: s.proxy.cluster_id.clone(),
            proxy_version: s.proxy.proxy_version.clone(),
            admin_address: s.proxy.admin_address.clone(),
            control_plane: cp.clone(),
            cds: state(&s, mast_xds::CLUSTER_TYPE),
            lds: state(&s, mast_xds::LISTENER_TYPE),
            eds: state(&s, mast_xds::ENDPOINT_TYPE),
            rds: state(&s, mast_xds::ROUTE_TYPE),
            detail: serde_json::to_value(&s).unwrap_or(Value::Null),
        })
        .collect();
    Json(out)
}

async fn configz(State(m): State<Monitor>) -> Json<Value> {
    let state = m.store.current();
    let resources: Vec<Value> = state
        .resources
        .iter()
        .map(|r| json!({"kind": r.kind, "apiVersion": r.api_version, "namespace": r.namespace(), "name": r.name(), "origin": r.origin.to_string()}))
        .collect();
    let diagnostics: Vec<Value> = state
        .diagnostics
        .iter()
        .map(|d| {
            json!({
                "level": d.level.as_str(),
                "origin": d.origin.as_ref().map(ToString::to_string),
                "resource": d.resource.as_ref().map(ToString::to_string),
                "field": d.field,
                "message": d.message,
                "text": d.to_string(),
            })
        })
        .collect();
    Json(json!({
        "generation": state.generation,
        "snapshotVersion": m.snapshots.borrow().version,
        "rejected": state.rejected,
        "folders": crate::folders::describe(&m.folders, &m.store),
        "byKind": state.by_kind,
        "resources": resources,
        "diagnostics": diagnostics,
    }))
}

async fn config_dump(
    State(m): State<Monitor>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let Some(id) = q.get("proxyID").or_else(|| q.get("proxy_id")) else {
        return (
            StatusCode::BAD_REQUEST,
            "give ?proxyID=<node id or workload.namespace>",
        )
            .into_response();
    };
    let status =
        m.xds.status().into_iter().find(|s| {
            &s.node_id == id || format!("{}.{}", s.proxy.workload, s.proxy.namespace) == *id
        });
    let Some((status, dump)) = status.and_then(|s| m.xds.config_dump(&s.node_id).map(|d| (s, d)))
    else {
        return (StatusCode::NOT_FOUND, format!("no connected proxy {id:?}")).into_response();
    };
    // Envoy's `/config_dump` shape, so `mastctl proxy-config` reads mastd and proxies alike.
    let sections: Vec<mast_xds_json::DumpSection> = dump
        .into_iter()
        .map(|(type_url, resources)| mast_xds_json::DumpSection {
            version_info: status
                .types
                .get(&type_url)
                .and_then(|t| t.sent_version.clone())
                .unwrap_or_default(),
            type_url,
            resources: resources.into_iter().map(|r| r.resource).collect(),
        })
        .collect();
    match mast_xds_json::config_dump(&sections) {
        Ok(v) => Json(v).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render the config dump: {e}"),
        )
            .into_response(),
    }
}
