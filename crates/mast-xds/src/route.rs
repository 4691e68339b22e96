//! RDS: the `RouteConfiguration`s a proxy needs.

use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use mast_model::{MeshSnapshot, ProxyNode};

/// Every `RouteConfiguration` for `proxy`, sorted by name.
pub fn routes(_snapshot: &MeshSnapshot, _proxy: &ProxyNode) -> Vec<RouteConfiguration> {
    Vec::new()
}
