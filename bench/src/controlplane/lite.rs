//! What a benchmark client reads out of the resources it receives, kept cheap because a
//! thousand clients decode every push: the names Envoy would subscribe to next (EDS names from
//! clusters, RDS names from listeners) and whether a response carries the change a probe is
//! waiting for.
//!
//! Clusters, endpoints and route tables are decoded through "lite" prost messages that declare
//! only the fields read here (prost skips the others without building them); listeners, a
//! handful per client, are decoded fully with envoy-types.

use bytes::Bytes;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::google::protobuf::Any;
use prost::Message as _;

/// `envoy.config.cluster.v3.Cluster.DiscoveryType.EDS`.
const DISCOVERY_TYPE_EDS: i32 = 3;

/// The fields of a `Cluster` that decide its EDS subscription.
#[derive(Clone, PartialEq, prost::Message)]
struct ClusterLite {
    /// `name`.
    #[prost(string, tag = "1")]
    name: String,
    /// `type` (member of the `cluster_discovery_type` oneof, so always present on the wire).
    #[prost(int32, optional, tag = "2")]
    discovery_type: Option<i32>,
    /// `eds_cluster_config`.
    #[prost(message, optional, tag = "3")]
    eds_cluster_config: Option<EdsClusterConfigLite>,
}

/// `EdsClusterConfig.service_name`.
#[derive(Clone, PartialEq, prost::Message)]
struct EdsClusterConfigLite {
    /// `service_name`: the EDS resource name when set, else the cluster's name.
    #[prost(string, tag = "2")]
    service_name: String,
}

/// `ClusterLoadAssignment.cluster_name`.
#[derive(Clone, PartialEq, prost::Message)]
struct LoadAssignmentLite {
    /// `cluster_name`.
    #[prost(string, tag = "1")]
    cluster_name: String,
}

/// A `RouteConfiguration` with its virtual hosts left encoded.
#[derive(Clone, PartialEq, prost::Message)]
struct RouteConfigLite {
    /// `virtual_hosts`, each still encoded.
    #[prost(bytes = "bytes", repeated, tag = "2")]
    virtual_hosts: Vec<Bytes>,
}

/// `VirtualHost.name` and `domains`.
#[derive(Clone, PartialEq, prost::Message)]
struct VirtualHostLite {
    /// `name`.
    #[prost(string, tag = "1")]
    name: String,
    /// `domains`.
    #[prost(string, repeated, tag = "2")]
    domains: Vec<String>,
}

/// The EDS names Envoy would request for these clusters: every EDS cluster's
/// `service_name`, or its name when that is empty; sorted, without repeats.
pub fn eds_names(clusters: &[Any]) -> Vec<String> {
    let mut names: Vec<String> = clusters
        .iter()
        .filter_map(|any| ClusterLite::decode(any.value.as_slice()).ok())
        .filter(|c| c.discovery_type == Some(DISCOVERY_TYPE_EDS))
        .map(|c| match c.eds_cluster_config {
            Some(eds) if !eds.service_name.is_empty() => eds.service_name,
            _ => c.name,
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The RDS route tables these listeners name (HTTP connection managers with `rds`), sorted,
/// without repeats.
pub fn rds_names(listeners: &[Any]) -> Vec<String> {
    let mut names = Vec::new();
    for any in listeners {
        let Ok(listener) = Listener::decode(any.value.as_slice()) else {
            continue;
        };
        let chains = listener
            .filter_chains
            .iter()
            .chain(listener.default_filter_chain.as_ref());
        names.extend(chains.flat_map(chain_route_names));
    }
    names.sort_unstable();
    names.dedup();
    names
}

fn chain_route_names(chain: &FilterChain) -> Vec<String> {
    chain.filters.iter().filter_map(filter_route_name).collect()
}

fn filter_route_name(f: &Filter) -> Option<String> {
    let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        return None;
    };
    if !any.type_url.ends_with(".HttpConnectionManager") {
        return None;
    }
    let hcm = HttpConnectionManager::decode(any.value.as_slice()).ok()?;
    match hcm.route_specifier? {
        RouteSpecifier::Rds(rds) => Some(rds.route_config_name),
        _ => None,
    }
}

/// Whether the load assignment of `cluster` in these resources mentions `marker`.
pub fn endpoints_mention(resources: &[Any], cluster: &str, marker: &[u8]) -> bool {
    resources.iter().any(|any| {
        LoadAssignmentLite::decode(any.value.as_slice())
            .is_ok_and(|cla| cla.cluster_name == cluster)
            && contains(&any.value, marker)
    })
}

/// Whether a virtual host serving `domain` in these route tables mentions `marker`.
pub fn route_mentions(resources: &[Any], domain: &str, marker: &[u8]) -> bool {
    resources.iter().any(|any| {
        let Ok(table) = RouteConfigLite::decode(any.value.as_slice()) else {
            return false;
        };
        table.virtual_hosts.iter().any(|vh| {
            VirtualHostLite::decode(vh.clone())
                .is_ok_and(|v| v.name.starts_with(domain) || v.domains.iter().any(|d| d == domain))
                && contains(vh, marker)
        })
    })
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, _)) = needle.split_first() else {
        return true;
    };
    haystack
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == first)
        .any(|(i, _)| haystack[i..].starts_with(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};

    fn pack<T: prost::Name>(m: T) -> Any {
        envoy_types::util::pack_any(m)
    }

    #[test]
    fn eds_names_take_eds_clusters_only() {
        let eds = Cluster {
            name: "outbound|80||a".into(),
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(3)),
            ..Cluster::default()
        };
        let named = Cluster {
            name: "b".into(),
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(3)),
            eds_cluster_config: Some(cluster::EdsClusterConfig {
                service_name: "svc-b".into(),
                ..Default::default()
            }),
            ..Cluster::default()
        };
        let static_ = Cluster {
            name: "BlackHoleCluster".into(),
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(0)),
            ..Cluster::default()
        };
        let names = eds_names(&[pack(eds), pack(named), pack(static_)]);
        assert_eq!(names, ["outbound|80||a", "svc-b"]);
    }

    #[test]
    fn probes_find_markers_in_the_named_resource_only() {
        let cla = |name: &str, marker: &str| ClusterLoadAssignment {
            cluster_name: name.into(),
            policy: None,
            endpoints: vec![],
            named_endpoints: [(marker.to_owned(), Default::default())].into(),
        };
        let res = [pack(cla("a", "10.200.0.1")), pack(cla("b", "10.200.0.2"))];
        assert!(endpoints_mention(&res, "a", b"10.200.0.1"));
        assert!(!endpoints_mention(&res, "a", b"10.200.0.2"));
        let table = RouteConfiguration {
            name: "80".into(),
            virtual_hosts: vec![VirtualHost {
                name: "svc.ns.svc.cluster.local:80".into(),
                domains: vec!["svc.ns.svc.cluster.local".into(), "rev-7".into()],
                ..VirtualHost::default()
            }],
            ..RouteConfiguration::default()
        };
        let res = [pack(table)];
        assert!(route_mentions(&res, "svc.ns.svc.cluster.local", b"rev-7"));
        assert!(!route_mentions(
            &res,
            "other.ns.svc.cluster.local",
            b"rev-7"
        ));
        assert!(!route_mentions(&res, "svc.ns.svc.cluster.local", b"rev-8"));
    }
}
