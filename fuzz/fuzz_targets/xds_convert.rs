//! Fuzz target: arbitrary bytes decoded as each xDS type mast-proxy consumes (Listener,
//! RouteConfiguration, Cluster, ClusterLoadAssignment) and run through the proxy's
//! `from_proto` conversions. A bad resource must become a `ConfigError` (a NACK), never a
//! panic.
#![no_main]

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use libfuzzer_sys::fuzz_target;
use mast_proxy::cluster::{Assignment, ClusterConfig};
use mast_proxy::listener::ListenerConfig;
use mast_proxy::route::RouteTable;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(l) = Listener::decode(data) {
        let _ = ListenerConfig::from_proto(&l);
    }
    if let Ok(r) = RouteConfiguration::decode(data) {
        let _ = RouteTable::from_proto(&r);
    }
    if let Ok(c) = Cluster::decode(data) {
        let _ = ClusterConfig::from_proto(&c);
    }
    if let Ok(a) = ClusterLoadAssignment::decode(data) {
        let _ = Assignment::from_proto(&a);
    }
});
