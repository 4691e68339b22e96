//! How generated TLS contexts refer to the workload's certificates, as Istio does
//! (`pilot/pkg/model/authentication.go` `ConstructSdsSecretConfig`): `SdsSecretConfig`s named
//! [`DEFAULT_SECRET`] (the workload's certificate chain and key) and [`ROOTCA_SECRET`] (the
//! trusted roots), fetched over gRPC SDS from the static cluster [`SDS_CLUSTER`] that the
//! agent's bootstrap defines. mast-proxy resolves both names in process whatever the source says.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::api_config_source::ApiType;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::grpc_service::{EnvoyGrpc, TargetSpecifier};
use envoy_types::pb::envoy::config::core::v3::{
    Address, ApiConfigSource, ApiVersion, ConfigSource, GrpcService, Http2ProtocolOptions, Pipe,
};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::SdsSecretConfig;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
};
use envoy_types::pb::google::protobuf::Duration;

/// The secret holding the workload's certificate chain and private key.
pub const DEFAULT_SECRET: &str = "default";
/// The secret holding the trusted root certificates (validation context).
pub const ROOTCA_SECRET: &str = "ROOTCA";
/// The static cluster, in the proxy's bootstrap, that serves SDS.
pub const SDS_CLUSTER: &str = "sds-grpc";

/// `SdsSecretConfig { name, sds_config: gRPC SDS over [`SDS_CLUSTER`], V3, node on the first
/// message only, no initial fetch timeout }`.
pub fn secret_config(name: &str) -> SdsSecretConfig {
    let grpc = GrpcService {
        target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
            cluster_name: SDS_CLUSTER.into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let source = ConfigSource {
        config_source_specifier: Some(ConfigSourceSpecifier::ApiConfigSource(ApiConfigSource {
            api_type: ApiType::Grpc as i32,
            transport_api_version: ApiVersion::V3 as i32,
            grpc_services: vec![grpc],
            set_node_on_first_message_only: true,
            ..Default::default()
        })),
        initial_fetch_timeout: Some(Duration {
            seconds: 0,
            nanos: 0,
        }),
        resource_api_version: ApiVersion::V3 as i32,
        ..Default::default()
    };
    SdsSecretConfig {
        name: name.to_owned(),
        sds_config: Some(source),
    }
}

/// The secret config of the workload certificate ([`DEFAULT_SECRET`]).
pub fn default_secret() -> SdsSecretConfig {
    secret_config(DEFAULT_SECRET)
}

/// The secret config of the trusted roots ([`ROOTCA_SECRET`]).
pub fn rootca_secret() -> SdsSecretConfig {
    secret_config(ROOTCA_SECRET)
}

/// The static [`SDS_CLUSTER`] a bootstrap needs: STATIC, HTTP/2, one endpoint at the Unix socket
/// `socket_path` (the agent's `<workdir>/sds.sock`).
pub fn sds_cluster(socket_path: &str) -> Cluster {
    let endpoint = LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(Address {
                address: Some(AddressKind::Pipe(Pipe {
                    path: socket_path.to_owned(),
                    mode: 0,
                })),
            }),
            ..Default::default()
        })),
        ..Default::default()
    };
    let h2 = HttpProtocolOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(
                    Http2ProtocolOptions::default(),
                )),
            },
        )),
        ..Default::default()
    };
    Cluster {
        name: SDS_CLUSTER.into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: SDS_CLUSTER.into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![endpoint],
                ..Default::default()
            }],
            ..Default::default()
        }),
        typed_extension_protocol_options: [(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_owned(),
            envoy_types::util::pack_any(h2),
        )]
        .into_iter()
        .collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_configs_point_at_sds_grpc() {
        let c = default_secret();
        assert_eq!(c.name, "default");
        let source = c.sds_config.unwrap();
        assert_eq!(source.resource_api_version, ApiVersion::V3 as i32);
        assert_eq!(source.initial_fetch_timeout.map(|d| d.seconds), Some(0));
        let Some(ConfigSourceSpecifier::ApiConfigSource(api)) = source.config_source_specifier
        else {
            panic!("not an api config source")
        };
        assert_eq!(api.api_type, ApiType::Grpc as i32);
        assert!(api.set_node_on_first_message_only);
        let Some(TargetSpecifier::EnvoyGrpc(g)) = &api.grpc_services[0].target_specifier else {
            panic!()
        };
        assert_eq!(g.cluster_name, "sds-grpc");
        assert_eq!(rootca_secret().name, "ROOTCA");
        let cluster = sds_cluster("/tmp/agent/sds.sock");
        assert_eq!(cluster.name, "sds-grpc");
        assert_eq!(cluster.typed_extension_protocol_options.len(), 1);
    }
}
