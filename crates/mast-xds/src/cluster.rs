//! CDS: the `Cluster`s a proxy needs.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use mast_model::{MeshSnapshot, ProxyNode};

/// Every `Cluster` for `proxy`, sorted by name.
pub fn clusters(_snapshot: &MeshSnapshot, _proxy: &ProxyNode) -> Vec<Cluster> {
    Vec::new()
}
