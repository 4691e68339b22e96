//! The building blocks every listener shares: socket addresses, the `tcp_proxy` network filter
//! (one cluster or weighted clusters), the `HttpConnectionManager` with its HTTP filters
//! (fault, CORS, the dynamic forward proxy on the explicit HTTP proxy, router), the listener
//! filters (`original_dst`, `tls_inspector`), the `x-forwarded-client-cert` settings and the
//! inline route configuration of inbound HTTP chains. Every HTTP connection manager and
//! `tcp_proxy` is built with the proxy's [`Telemetry`] (access log, tracing).

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::socket_address::{PortSpecifier, Protocol as SocketProtocol};
use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, ConfigSource, Http1ProtocolOptions, Http2ProtocolOptions,
    SocketAddress,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, ListenerFilter, filter, listener_filter};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::{ClusterSpecifier, MaxStreamDuration};
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
use envoy_types::pb::envoy::extensions::filters::http::dynamic_forward_proxy::v3::FilterConfig as DfpFilterConfig;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::{
    CodecType, ForwardClientCertDetails, PathWithEscapedSlashesAction, RouteSpecifier,
    SetCurrentClientCertDetails, UpgradeConfig,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, RequestIdExtension, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::weighted_cluster::ClusterWeight;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::{
    ClusterSpecifier as TcpClusterSpecifier, WeightedCluster,
};
use envoy_types::pb::envoy::extensions::request_id::uuid::v3::UuidRequestIdConfig;
use envoy_types::pb::google::protobuf::{BoolValue, Duration};
use envoy_types::util::pack_any;

pub use super::telemetry::Telemetry;

/// `envoy.filters.network.http_connection_manager`.
pub const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";
/// `envoy.filters.network.tcp_proxy`.
pub const TCP_PROXY_FILTER: &str = "envoy.filters.network.tcp_proxy";
/// `envoy.filters.http.router`.
pub const ROUTER_FILTER: &str = "envoy.filters.http.router";
/// `envoy.filters.http.fault`.
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";
/// `envoy.filters.http.cors`.
pub const CORS_FILTER: &str = "envoy.filters.http.cors";
/// `envoy.filters.http.dynamic_forward_proxy` (ports capture's explicit HTTP proxy only).
pub const DFP_FILTER: &str = crate::forward_proxy::DFP_FILTER;
/// `envoy.filters.listener.original_dst`.
pub const ORIGINAL_DST_FILTER: &str = "envoy.filters.listener.original_dst";
/// `envoy.filters.listener.tls_inspector`.
pub const TLS_INSPECTOR_FILTER: &str = "envoy.filters.listener.tls_inspector";

/// The wildcard IPv4 address listeners bind (or pretend to bind) to.
pub const WILDCARD: &str = "0.0.0.0";
/// Loopback, where ports-mode listeners bind.
pub const LOCALHOST: &str = "127.0.0.1";

/// A TCP socket address.
pub fn socket_address(ip: &str, port: u16) -> Address {
    Address {
        address: Some(AddressKind::SocketAddress(SocketAddress {
            protocol: SocketProtocol::Tcp as i32,
            address: ip.to_owned(),
            port_specifier: Some(PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}

/// A zero duration (Envoy: "disabled" for timeouts).
pub fn zero_duration() -> Duration {
    Duration {
        seconds: 0,
        nanos: 0,
    }
}

/// `Some(BoolValue { value })`.
pub fn bool_value(value: bool) -> Option<BoolValue> {
    Some(BoolValue { value })
}

/// A listener filter with its typed config.
fn listener_filter<T: prost::Name + prost::Message>(name: &str, config: T) -> ListenerFilter {
    ListenerFilter {
        name: name.to_owned(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(config))),
        ..Default::default()
    }
}

/// `envoy.filters.listener.original_dst` (restores the destination iptables rewrote).
pub fn original_dst() -> ListenerFilter {
    listener_filter(ORIGINAL_DST_FILTER, OriginalDst {})
}

/// `envoy.filters.listener.tls_inspector` (reads SNI for `server_names` matches).
pub fn tls_inspector() -> ListenerFilter {
    listener_filter(TLS_INSPECTOR_FILTER, TlsInspector::default())
}

/// A network filter with its typed config.
pub fn network_filter<T: prost::Name + prost::Message>(name: &str, config: T) -> Filter {
    Filter {
        name: name.to_owned(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(config))),
    }
}

/// A `tcp_proxy` filter to one cluster, with the access log of `telemetry`.
pub fn tcp_proxy(stat_prefix: &str, cluster: &str, telemetry: &Telemetry) -> Filter {
    let mut config = TcpProxy {
        stat_prefix: stat_prefix.to_owned(),
        cluster_specifier: Some(TcpClusterSpecifier::Cluster(cluster.to_owned())),
        ..Default::default()
    };
    telemetry.apply_tcp(&mut config);
    network_filter(TCP_PROXY_FILTER, config)
}

/// A `tcp_proxy` filter splitting connections over clusters by weight (each weight > 0), with
/// the access log of `telemetry`.
pub fn weighted_tcp_proxy(
    stat_prefix: &str,
    clusters: &[(String, u32)],
    telemetry: &Telemetry,
) -> Filter {
    let clusters = clusters
        .iter()
        .map(|(name, weight)| ClusterWeight {
            name: name.clone(),
            weight: *weight,
            ..Default::default()
        })
        .collect();
    let mut config = TcpProxy {
        stat_prefix: stat_prefix.to_owned(),
        cluster_specifier: Some(TcpClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters,
        })),
        ..Default::default()
    };
    telemetry.apply_tcp(&mut config);
    network_filter(TCP_PROXY_FILTER, config)
}

/// Where an HTTP connection manager takes its routes from.
pub enum RouteSource {
    /// RDS over ADS, by route configuration name.
    Rds(String),
    /// A route configuration carried in the listener.
    Inline(Box<RouteConfiguration>),
}

/// What distinguishes one HTTP connection manager from another.
pub struct HcmSpec {
    /// `stat_prefix`.
    pub stat_prefix: String,
    /// RDS name or inline routes.
    pub routes: RouteSource,
    /// Outbound: the fault and CORS filters precede the router (routes configure them per
    /// route through `typed_per_filter_config`).
    pub outbound: bool,
    /// The port speaks HTTP/2 with prior knowledge (inbound gRPC/HTTP2 ports).
    pub http2: bool,
    /// An explicit HTTP proxy: absolute-form URLs and `CONNECT` (HTTP/1 upgrade and HTTP/2),
    /// with the dynamic forward proxy filter before the router for hosts the mesh does not know.
    pub http_proxy: bool,
}

/// `ConfigSource { ads {}, resource_api_version: V3, initial_fetch_timeout: 0s }`.
fn ads_config_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        initial_fetch_timeout: Some(zero_duration()),
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

fn http_filter<T: prost::Name + prost::Message>(name: &str, config: T) -> HttpFilter {
    HttpFilter {
        name: name.to_owned(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(config))),
        ..Default::default()
    }
}

/// The HTTP filter chain: fault and CORS (outbound only), the dynamic forward proxy (explicit
/// HTTP proxy only: it resolves the host of requests routed to `ForwardProxyCluster` and lets
/// every other request through untouched), then the router, always last.
fn http_filters(outbound: bool, forward_proxy: bool) -> Vec<HttpFilter> {
    let mut filters = Vec::with_capacity(4);
    if outbound {
        filters.push(http_filter(FAULT_FILTER, HttpFault::default()));
        filters.push(http_filter(CORS_FILTER, Cors {}));
    }
    if forward_proxy {
        let config: DfpFilterConfig = crate::forward_proxy::filter_config();
        filters.push(http_filter(DFP_FILTER, config));
    }
    filters.push(http_filter(ROUTER_FILTER, Router::default()));
    filters
}

fn upgrade(kind: &str) -> UpgradeConfig {
    UpgradeConfig {
        upgrade_type: kind.to_owned(),
        ..Default::default()
    }
}

/// Istio's `x-forwarded-client-cert` handling: outbound, `SANITIZE_SET` (a client's header is
/// dropped; nothing is added, the connection to the client being plaintext); inbound,
/// `APPEND_FORWARD` with the peer certificate's subject, URI and DNS SANs.
fn client_cert_details(
    outbound: bool,
) -> (
    ForwardClientCertDetails,
    Option<SetCurrentClientCertDetails>,
) {
    if outbound {
        return (ForwardClientCertDetails::SanitizeSet, None);
    }
    let set = SetCurrentClientCertDetails {
        subject: bool_value(true),
        uri: true,
        dns: true,
        ..Default::default()
    };
    (ForwardClientCertDetails::AppendForward, Some(set))
}

/// The `HttpConnectionManager` Mast emits, as Istio configures a sidecar's, with the access
/// log and tracing of `telemetry`.
pub fn http_connection_manager(spec: HcmSpec, telemetry: &Telemetry) -> HttpConnectionManager {
    let route_specifier = match spec.routes {
        RouteSource::Rds(name) => RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: name,
        }),
        RouteSource::Inline(config) => RouteSpecifier::RouteConfig(*config),
    };
    let mut upgrade_configs = vec![upgrade("websocket")];
    let mut http1 = None;
    let mut http2 = spec.http2.then(Http2ProtocolOptions::default);
    if spec.http_proxy {
        upgrade_configs.push(upgrade("CONNECT"));
        http1 = Some(Http1ProtocolOptions {
            allow_absolute_url: bool_value(true),
            ..Default::default()
        });
        http2 = Some(Http2ProtocolOptions {
            allow_connect: true,
            ..Default::default()
        });
    }
    let (xfcc, set_xfcc) = client_cert_details(spec.outbound);
    let mut hcm = HttpConnectionManager {
        codec_type: CodecType::Auto as i32,
        stat_prefix: spec.stat_prefix,
        http_filters: http_filters(spec.outbound, spec.http_proxy),
        http_protocol_options: http1,
        http2_protocol_options: http2,
        stream_idle_timeout: Some(zero_duration()),
        use_remote_address: bool_value(false),
        generate_request_id: bool_value(true),
        upgrade_configs,
        normalize_path: bool_value(true),
        path_with_escaped_slashes_action: PathWithEscapedSlashesAction::KeepUnchanged as i32,
        request_id_extension: Some(RequestIdExtension {
            typed_config: Some(pack_any(UuidRequestIdConfig::default())),
        }),
        route_specifier: Some(route_specifier),
        forward_client_cert_details: xfcc as i32,
        set_current_client_cert_details: set_xfcc,
        ..Default::default()
    };
    telemetry.apply_hcm(&mut hcm);
    hcm
}

/// The `http_connection_manager` network filter (see [`http_connection_manager`]).
pub fn hcm_filter(spec: HcmSpec, telemetry: &Telemetry) -> Filter {
    network_filter(HCM_FILTER, http_connection_manager(spec, telemetry))
}

/// Istio's HTTP peer metadata exchange headers.
pub const PEER_METADATA_HEADERS: [&str; 2] = ["x-envoy-peer-metadata", "x-envoy-peer-metadata-id"];

/// The inline route configuration of an inbound HTTP chain: `inbound|<port>||` with one
/// virtual host `inbound|http|<port>` for `*`, routing `/` to the cluster with no timeout.
pub fn inbound_route_config(port: u16, cluster: &str) -> RouteConfiguration {
    let action = RouteAction {
        cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.to_owned())),
        timeout: Some(zero_duration()),
        max_stream_duration: Some(MaxStreamDuration {
            max_stream_duration: Some(zero_duration()),
            grpc_timeout_header_max: Some(zero_duration()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let route = Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(PathSpecifier::Prefix("/".into())),
            ..Default::default()
        }),
        action: Some(Action::Route(action)),
        // Istio's peer metadata exchange headers never reach the application (an Envoy
        // sidecar has no exchange filter to consume them; mast-proxy reads them first).
        request_headers_to_remove: PEER_METADATA_HEADERS
            .iter()
            .map(|h| (*h).to_owned())
            .collect(),
        ..Default::default()
    };
    RouteConfiguration {
        name: cluster.to_owned(),
        virtual_hosts: vec![VirtualHost {
            name: format!("inbound|http|{port}"),
            domains: vec!["*".into()],
            routes: vec![route],
            ..Default::default()
        }],
        validate_clusters: bool_value(false),
        ..Default::default()
    }
}
