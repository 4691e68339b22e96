//! Envoy's RBAC filters (`envoy.filters.http.rbac`, `envoy.filters.network.rbac`): the policy
//! engine (principals and permissions, ALLOW/DENY/LOG actions, shadow rules) and its
//! conversion from the protos. Owned by the authorization work (issue 6).
//!
//! Interface used by the listener and the HTTP connection manager:
//! - [`NetworkRbac::from_any`] converts a network filter's typed config;
//!   [`NetworkRbac::allows_connection`] decides a new connection (denied → closed).
//! - The HTTP filter lives in the HCM filter chain (see `hcm::config`).

use prost_types_any::Any;

use crate::hcm::stream::ConnInfo;

mod prost_types_any {
    pub use envoy_types::pb::google::protobuf::Any;
}

/// `envoy.filters.network.rbac`'s type URL.
pub const NETWORK_RBAC_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC";

/// A converted network RBAC filter.
#[derive(Debug)]
pub struct NetworkRbac {
    _private: (),
}

impl NetworkRbac {
    /// Converts the filter's typed config; the error is `(field, reason)` relative to the
    /// typed config.
    pub fn from_any(_any: &Any) -> Result<Self, (String, String)> {
        Err((
            String::new(),
            "envoy.filters.network.rbac is not supported yet".into(),
        ))
    }

    /// Whether a new connection may proceed.
    pub fn allows_connection(&self, _conn: &ConnInfo) -> bool {
        true
    }
}
