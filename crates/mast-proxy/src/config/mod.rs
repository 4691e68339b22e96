//! The xDS handler: turns each accepted response into domain configuration and swaps it in.
//! Every resource of a response is converted first, off the request path; if any fails, the
//! response is NACKed with every error (resource, field, reason) and nothing changes, so the
//! last good configuration keeps serving. Then clusters/endpoints ([`ClusterManager`]), route
//! tables ([`RouteStore`]) or listeners ([`ListenerManager`]) are updated atomically.

mod routes;

use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as PbCluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use prost::Message;

pub use routes::RouteStore;

use crate::cluster::{Assignment, ClusterConfig};
use crate::error::ConfigError;
use crate::hcm::Env;
use crate::listener::{ListenerConfig, ListenerManager};
use crate::route::RouteTable;
use crate::signals::Signals;
use crate::xds::{Handler, Resource, Update};

/// CDS.
pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// EDS.
pub const ENDPOINTS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
/// LDS.
pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// RDS.
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// The proxy's live configuration.
#[derive(Debug)]
pub struct Proxy {
    /// Clusters, route tables, access log.
    pub env: Arc<Env>,
    /// Bound listeners.
    pub listeners: ListenerManager,
    signals: Signals,
}

impl Proxy {
    /// An empty configuration.
    pub fn new(env: Arc<Env>, signals: Signals) -> Self {
        Self {
            listeners: ListenerManager::new(Arc::clone(&env), signals.clone()),
            env,
            signals,
        }
    }

    /// The signals (readiness) this configuration reports to.
    pub fn signals(&self) -> &Signals {
        &self.signals
    }
}

fn decode<M: Message + Default>(kind: &'static str, r: &Resource) -> Result<M, ConfigError> {
    M::decode(r.value.value.as_slice())
        .map_err(|e| ConfigError::new(kind, &r.name, "", format!("cannot decode: {e}")))
}

/// Converts every resource, collecting all errors.
fn convert_all<T>(
    update: &Update,
    convert: impl Fn(&Resource) -> Result<T, ConfigError>,
) -> Result<Vec<T>, String> {
    let mut ok = Vec::with_capacity(update.resources.len());
    let mut errors = Vec::new();
    for r in &update.resources {
        match convert(r) {
            Ok(t) => ok.push(t),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(ok)
    } else {
        Err(errors.join("; "))
    }
}

impl Handler for Proxy {
    fn apply(&self, type_url: &str, update: &Update) -> Result<(), String> {
        match type_url {
            CLUSTER => {
                let configs = convert_all(update, |r| {
                    ClusterConfig::from_proto(&decode::<PbCluster>("Cluster", r)?)
                })?;
                self.env.clusters.apply_clusters(configs, &update.removed);
            }
            ENDPOINTS => {
                let assignments = convert_all(update, |r| {
                    Assignment::from_proto(&decode::<ClusterLoadAssignment>(
                        "ClusterLoadAssignment",
                        r,
                    )?)
                })?;
                self.env
                    .clusters
                    .apply_assignments(assignments, &update.removed);
            }
            LISTENER => {
                let listeners = convert_all(update, |r| {
                    ListenerConfig::from_proto(&decode::<Listener>("Listener", r)?)
                })?;
                self.listeners.apply(listeners, &update.removed)?;
            }
            ROUTE => {
                let tables = convert_all(update, |r| {
                    RouteTable::from_proto(&decode::<RouteConfiguration>("RouteConfiguration", r)?)
                })?;
                self.env.routes.apply(tables, &update.removed);
            }
            other => return Err(format!("type {other:?} is not supported")),
        }
        Ok(())
    }
}
