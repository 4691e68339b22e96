//! EDS: the `ClusterLoadAssignment`s a proxy needs.

use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use mast_model::{MeshSnapshot, ProxyNode};

/// Every `ClusterLoadAssignment` for `proxy`, sorted by name.
pub fn endpoints(_snapshot: &MeshSnapshot, _proxy: &ProxyNode) -> Vec<ClusterLoadAssignment> {
    Vec::new()
}
