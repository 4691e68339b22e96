//! Envoy resources shaped like the ones Mast generates, shared by the integration tests:
//! a cluster with nested `Any`s (protocol options, TLS transport socket), a listener whose
//! filter chain holds an `HttpConnectionManager` (with a router filter and listener filters),
//! and a route configuration with weighted clusters, header matches and retries.

#![allow(dead_code)] // each test binary uses its own subset

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, OutlierDetection, circuit_breakers, cluster,
};
use envoy_types::pb::envoy::config::core::v3::{Address, HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, Http2ProtocolOptions, SocketAddress,
    TransportSocket, address, config_source, socket_address, transport_socket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, Listener, ListenerFilter, filter, listener_filter,
};
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, RetryPolicy, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
    WeightedCluster, header_matcher, route, route_action, route_match, weighted_cluster,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use envoy_types::pb::google::protobuf::{BoolValue, Duration, UInt32Value};
use envoy_types::util::pack_any;

/// Type URL of `HttpProtocolOptions` as a key of `typed_extension_protocol_options`.
pub const HTTP_OPTIONS_KEY: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

fn socket(ip: &str, port: u32) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_owned(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}

fn endpoint() -> LbEndpoint {
    LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
            address: Some(socket("127.0.0.1", 9)),
            ..Default::default()
        })),
        load_balancing_weight: Some(UInt32Value { value: 3 }),
        ..Default::default()
    }
}

fn http2_options() -> HttpProtocolOptions {
    HttpProtocolOptions {
        upstream_protocol_options: Some(http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
            http_protocol_options::ExplicitHttpConfig {
                protocol_config: Some(
                    http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                        Http2ProtocolOptions {
                            max_concurrent_streams: Some(UInt32Value { value: 100 }),
                            ..Default::default()
                        },
                    ),
                ),
            },
        )),
        ..Default::default()
    }
}

/// A STATIC cluster that Envoy accepts in a bootstrap: LEAST_REQUEST, 1.5 s connect timeout,
/// circuit breakers, outlier detection, HTTP/2 protocol options and an upstream TLS socket.
pub fn static_cluster(name: &str) -> Cluster {
    let (endpoint, http2) = (endpoint(), http2_options());
    Cluster {
        name: name.to_owned(),
        alt_stat_name: format!("{name}-stats"),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32,
        )),
        connect_timeout: Some(Duration {
            seconds: 1,
            nanos: 500_000_000,
        }),
        lb_policy: cluster::LbPolicy::LeastRequest as i32,
        circuit_breakers: Some(CircuitBreakers {
            thresholds: vec![circuit_breakers::Thresholds {
                max_connections: Some(UInt32Value {
                    value: 4_294_967_295,
                }),
                max_retries: Some(UInt32Value { value: 0 }),
                track_remaining: true,
                ..Default::default()
            }],
            ..Default::default()
        }),
        outlier_detection: Some(OutlierDetection {
            consecutive_5xx: Some(UInt32Value { value: 7 }),
            interval: Some(Duration {
                seconds: 10,
                nanos: 0,
            }),
            ..Default::default()
        }),
        typed_extension_protocol_options: HashMap::from([(
            HTTP_OPTIONS_KEY.to_owned(),
            pack_any(http2),
        )]),
        transport_socket: Some(TransportSocket {
            name: "envoy.transport_sockets.tls".to_owned(),
            config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(
                UpstreamTlsContext {
                    sni: "reviews.default.svc.cluster.local".to_owned(),
                    ..Default::default()
                },
            ))),
        }),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name.to_owned(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![endpoint],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An EDS cluster fed over ADS, as Mast's outbound clusters are.
pub fn eds_cluster(name: &str) -> Cluster {
    Cluster {
        name: name.to_owned(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(ConfigSource {
                config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
                    AggregatedConfigSource {},
                )),
                resource_api_version: ApiVersion::V3 as i32,
                ..Default::default()
            }),
            service_name: name.to_owned(),
        }),
        connect_timeout: Some(Duration {
            seconds: 10,
            nanos: 0,
        }),
        ..Default::default()
    }
}

fn jason_route() -> Route {
    Route {
        name: "jason".to_owned(),
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix("/".to_owned())),
            headers: vec![HeaderMatcher {
                name: "end-user".to_owned(),
                header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
                    StringMatcher {
                        match_pattern: Some(string_matcher::MatchPattern::Exact(
                            "jason".to_owned(),
                        )),
                        ignore_case: false,
                    },
                )),
                ..Default::default()
            }],
            ..Default::default()
        }),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                "outbound|9080|v2|reviews".to_owned(),
            )),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn split_route() -> Route {
    let weighted = |name: &str, weight| weighted_cluster::ClusterWeight {
        name: name.to_owned(),
        weight: Some(UInt32Value { value: weight }),
        ..Default::default()
    };
    Route {
        name: "default".to_owned(),
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix("/".to_owned())),
            ..Default::default()
        }),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::WeightedClusters(
                WeightedCluster {
                    clusters: vec![
                        weighted("outbound|9080|v1|reviews", 80),
                        weighted("outbound|9080|v2|reviews", 20),
                    ],
                    ..Default::default()
                },
            )),
            timeout: Some(Duration {
                seconds: 0,
                nanos: 0,
            }),
            retry_policy: Some(RetryPolicy {
                retry_on:
                    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
                        .to_owned(),
                num_retries: Some(UInt32Value { value: 2 }),
                ..Default::default()
            }),
            ..Default::default()
        })),
        request_headers_to_add: vec![HeaderValueOption {
            header: Some(HeaderValue {
                key: "x-mast".to_owned(),
                value: "yes".to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Route `/` to reviews v1/v2 80/20, `end-user: jason` to v2 only, with retries and a timeout.
pub fn route_configuration(name: &str) -> RouteConfiguration {
    RouteConfiguration {
        name: name.to_owned(),
        virtual_hosts: vec![VirtualHost {
            name: "reviews.default.svc.cluster.local:9080".to_owned(),
            domains: vec![
                "reviews.default.svc.cluster.local".to_owned(),
                "reviews".to_owned(),
            ],
            routes: vec![jason_route(), split_route()],
            ..Default::default()
        }],
        validate_clusters: Some(BoolValue { value: false }),
        ..Default::default()
    }
}

/// An HCM with the route table inline (Envoy accepts it without RDS) and the router filter.
pub fn http_connection_manager(routes: RouteConfiguration) -> HttpConnectionManager {
    HttpConnectionManager {
        stat_prefix: "outbound_0.0.0.0_9080".to_owned(),
        codec_type: http_connection_manager::CodecType::Auto as i32,
        route_specifier: Some(http_connection_manager::RouteSpecifier::RouteConfig(routes)),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".to_owned(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
                Router::default(),
            ))),
            ..Default::default()
        }],
        use_remote_address: Some(BoolValue { value: false }),
        ..Default::default()
    }
}

/// A listener on `127.0.0.1:port` with a TLS inspector and an HCM (nested `Any`s two deep).
pub fn listener(name: &str, port: u32) -> Listener {
    let hcm = http_connection_manager(route_configuration("9080"));
    Listener {
        name: name.to_owned(),
        address: Some(socket("127.0.0.1", port)),
        listener_filters: vec![ListenerFilter {
            name: "envoy.filters.listener.tls_inspector".to_owned(),
            config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(
                TlsInspector::default(),
            ))),
            ..Default::default()
        }],
        filter_chains: vec![FilterChain {
            name: "http".to_owned(),
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".to_owned(),
                config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}
