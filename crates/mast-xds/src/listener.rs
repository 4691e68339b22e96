//! LDS: the `Listener`s a proxy needs.

use envoy_types::pb::envoy::config::listener::v3::Listener;
use mast_model::{MeshSnapshot, ProxyNode};

/// Every `Listener` for `proxy`, sorted by name.
pub fn listeners(_snapshot: &MeshSnapshot, _proxy: &ProxyNode) -> Vec<Listener> {
    Vec::new()
}
