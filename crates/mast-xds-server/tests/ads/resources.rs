//! Envoy resource builders for the tests: an EDS cluster, its endpoints, an HTTP listener
//! with RDS, a route table, and a route table Envoy rejects.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType, EdsClusterConfig};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, AggregatedConfigSource, ApiVersion, ConfigSource, SocketAddress};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType as FilterConfig;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType as HttpFilterConfig;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{HttpConnectionManager, HttpFilter, Rds};
use envoy_types::pb::google::protobuf::Duration as PbDuration;
use envoy_types::util::pack_any;
use mast_xds::NamedResource;

fn named<T: prost::Name + prost::Message>(name: &str, msg: T) -> NamedResource {
    NamedResource {
        name: name.to_owned(),
        resource: pack_any(msg),
    }
}

fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..ConfigSource::default()
    }
}

fn socket(port: u16) -> Address {
    Address {
        address: Some(AddressKind::SocketAddress(SocketAddress {
            address: "127.0.0.1".into(),
            port_specifier: Some(PortSpecifier::PortValue(u32::from(port))),
            ..SocketAddress::default()
        })),
    }
}

/// An EDS cluster fed over ADS, with `timeout_ms` as its connect timeout (a knob to change
/// its content).
pub fn cluster(name: &str, timeout_ms: u64) -> NamedResource {
    let ms = i32::try_from(timeout_ms % 1000).unwrap();
    named(
        name,
        Cluster {
            name: name.into(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
            eds_cluster_config: Some(EdsClusterConfig {
                eds_config: Some(ads()),
                service_name: String::new(),
            }),
            connect_timeout: Some(PbDuration {
                seconds: 1,
                nanos: ms * 1_000_000,
            }),
            ..Cluster::default()
        },
    )
}

/// The endpoints of `cluster`: one, at 127.0.0.1:`port`.
pub fn endpoints(cluster: &str, port: u16) -> NamedResource {
    let endpoint = LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(socket(port)),
            ..Endpoint::default()
        })),
        ..LbEndpoint::default()
    };
    named(
        cluster,
        ClusterLoadAssignment {
            cluster_name: cluster.into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![endpoint],
                ..LocalityLbEndpoints::default()
            }],
            ..ClusterLoadAssignment::default()
        },
    )
}

/// An HTTP listener on 127.0.0.1:`port` whose routes come from RDS `route`.
pub fn listener(name: &str, port: u16, route: &str) -> NamedResource {
    let hcm = HttpConnectionManager {
        stat_prefix: name.into(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: route.into(),
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(HttpFilterConfig::TypedConfig(pack_any(Router::default()))),
            ..HttpFilter::default()
        }],
        ..HttpConnectionManager::default()
    };
    let filter = Filter {
        name: "envoy.filters.network.http_connection_manager".into(),
        config_type: Some(FilterConfig::TypedConfig(pack_any(hcm))),
    };
    named(
        name,
        Listener {
            name: name.into(),
            address: Some(socket(port)),
            filter_chains: vec![FilterChain {
                filters: vec![filter],
                ..FilterChain::default()
            }],
            ..Listener::default()
        },
    )
}

fn route_with(name: &str, specifier: ClusterSpecifier) -> NamedResource {
    let route = Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(PathSpecifier::Prefix("/".into())),
            ..RouteMatch::default()
        }),
        action: Some(Action::Route(RouteAction {
            cluster_specifier: Some(specifier),
            ..RouteAction::default()
        })),
        ..Route::default()
    };
    let vhost = VirtualHost {
        name: "all".into(),
        domains: vec!["*".into()],
        routes: vec![route],
        ..VirtualHost::default()
    };
    named(
        name,
        RouteConfiguration {
            name: name.into(),
            virtual_hosts: vec![vhost],
            ..RouteConfiguration::default()
        },
    )
}

/// A route table sending everything to `cluster`.
pub fn route(name: &str, cluster: &str) -> NamedResource {
    route_with(name, ClusterSpecifier::Cluster(cluster.into()))
}

/// A route table Envoy rejects: weighted clusters with no cluster.
pub fn bad_route(name: &str) -> NamedResource {
    route_with(
        name,
        ClusterSpecifier::WeightedClusters(WeightedCluster::default()),
    )
}
