//! What every HTTP connection manager and `tcp_proxy` of one proxy's listeners carries besides
//! its routing: the access log ([`super::access_log`], `SnapshotOptions.access_log`) and, on
//! HTTP connection managers, the tracing ([`super::trace`], `SnapshotOptions.tracing`).
//!
//! It is computed once per generation of a [`Part`] and handed to the builders (sidecars
//! through `Inputs`, gateways as an argument), which set it on the messages as they
//! build them.

use envoy_types::pb::envoy::config::accesslog::v3::AccessLog;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use mast_model::{MeshSnapshot, ProxyNode};

use crate::share::Part;

/// The access log and tracing of one part of a proxy's listeners.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Telemetry {
    /// `access_log` of every HTTP connection manager and `tcp_proxy` (empty: none).
    pub access_log: Vec<AccessLog>,
    /// `tracing` of every HTTP connection manager.
    pub tracing: Option<Tracing>,
}

/// No access log, no tracing.
static NONE: Telemetry = Telemetry {
    access_log: Vec::new(),
    tracing: None,
};

impl Telemetry {
    /// No access log, no tracing (inputs built by hand, tests).
    pub fn none() -> &'static Telemetry {
        &NONE
    }

    /// What the mesh configures for `part` of `proxy`'s listeners.
    pub fn of(snapshot: &MeshSnapshot, proxy: &ProxyNode, part: Part) -> Self {
        let options = &snapshot.options;
        Self {
            access_log: options
                .access_log
                .as_ref()
                .map(super::access_log::file_access_log)
                .into_iter()
                .collect(),
            tracing: options
                .tracing
                .as_ref()
                .and_then(|t| super::trace::for_proxy(t, proxy, part)),
        }
    }

    /// Sets the access log and tracing on `hcm`.
    pub fn apply_hcm(&self, hcm: &mut HttpConnectionManager) {
        hcm.access_log.clone_from(&self.access_log);
        hcm.tracing.clone_from(&self.tracing);
    }

    /// Sets the access log on `tcp_proxy`.
    pub fn apply_tcp(&self, tcp_proxy: &mut TcpProxy) {
        tcp_proxy.access_log.clone_from(&self.access_log);
    }
}
