//! Tests of clusters: conversion, load balancing, outlier detection, breakers, and (with real
//! sockets on 127.0.0.1) pools, DNS and the dynamic forward proxy; plus real mastd output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod convert;
mod io;
mod lb;
mod mesh;
mod outlier;
mod pool;
mod servers;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as PbCluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbPolicy,
};
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint as PbEndpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::google::protobuf::{Duration as PbDuration, UInt32Value};

use super::{Assignment, Cluster, ClusterConfig, ClusterManager, LbContext};

/// A socket address proto.
pub(super) fn addr_pb(host: &str, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: host.into(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port.into())),
            ..Default::default()
        })),
    }
}

/// An assignment of (host, port, weight).
pub(super) fn cla(name: &str, eps: &[(&str, u16, u32)]) -> ClusterLoadAssignment {
    let lb_endpoints = eps
        .iter()
        .map(|(h, p, w)| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(PbEndpoint {
                address: Some(addr_pb(h, *p)),
                ..Default::default()
            })),
            load_balancing_weight: Some(UInt32Value { value: *w }),
            health_status: 1,
            ..Default::default()
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: name.into(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A cluster proto of `kind` with `lb`.
pub(super) fn cluster_pb(name: &str, kind: DiscoveryType, lb: LbPolicy) -> PbCluster {
    PbCluster {
        name: name.into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(kind as i32)),
        lb_policy: lb as i32,
        connect_timeout: Some(PbDuration {
            seconds: 1,
            nanos: 0,
        }),
        ..Default::default()
    }
}

/// A STATIC cluster over `eps` (127.0.0.1 ports with weights).
pub(super) fn static_pb(name: &str, lb: LbPolicy, eps: &[(u16, u32)]) -> PbCluster {
    let mut c = cluster_pb(name, DiscoveryType::Static, lb);
    let eps: Vec<(&str, u16, u32)> = eps.iter().map(|(p, w)| ("127.0.0.1", *p, *w)).collect();
    c.load_assignment = Some(cla(name, &eps));
    c
}

/// A manager holding `pb` alone, and that cluster.
pub(super) fn manager_with(pb: &PbCluster) -> (ClusterManager, Arc<Cluster>) {
    let m = ClusterManager::new();
    m.apply_clusters(vec![ClusterConfig::from_proto(pb).expect("converts")], &[]);
    let c = m.get(&pb.name).expect("present");
    (m, c)
}

/// Applies an EDS assignment.
pub(super) fn eds(m: &ClusterManager, a: &ClusterLoadAssignment) {
    m.apply_assignments(vec![Assignment::from_proto(a).expect("converts")], &[]);
}

/// The context for a plain pick.
pub(super) fn ctx() -> LbContext<'static> {
    LbContext::default()
}

/// Counts picks per port over `n` selections.
pub(super) async fn histogram(
    c: &Cluster,
    n: usize,
    ctx: &LbContext<'_>,
) -> std::collections::BTreeMap<u16, usize> {
    let mut h = std::collections::BTreeMap::new();
    for _ in 0..n {
        let e = c.select(ctx).await.expect("an endpoint");
        *h.entry(e.address().port()).or_default() += 1;
    }
    h
}

/// `127.0.0.1:port`.
pub(super) fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}
