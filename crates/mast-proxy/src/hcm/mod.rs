//! The HTTP connection manager (`envoy.filters.network.http_connection_manager`): serves
//! HTTP/1.1 and HTTP/2 connections, selects routes (RDS or inline), runs the HTTP filters
//! mastd configures in Envoy's order (fault, CORS, dynamic forward proxy, router), terminates
//! `CONNECT` and forwards upgrades, and writes the access log.

pub mod access_log;
pub mod authz;
pub mod config;
mod count;
pub mod edge;
pub mod flags;
pub mod headers;
pub mod jwt;
pub mod local;
pub mod normalize;
mod router;
pub mod server;
pub mod stream;
mod upgrade;
pub mod xfcc;

use std::sync::Arc;

pub use config::{Codec, HcmConfig, RouteSource};

use crate::cluster::ClusterManager;
use crate::config::RouteStore;

/// What every request can reach: the clusters, the RDS route tables, the access log.
#[derive(Debug)]
pub struct Env {
    /// Clusters and endpoints.
    pub clusters: Arc<ClusterManager>,
    /// Route tables from RDS.
    pub routes: Arc<RouteStore>,
    /// The access log, when on.
    pub access_log: Option<access_log::AccessLog>,
    /// Envoy-named counters.
    pub stats: crate::stats::ProxyStats,
}
