//! Unit tests: options, errors and well-known types.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{TransportSocket, transport_socket};
use envoy_types::pb::google::protobuf::{Any, Duration};
use envoy_types::util::pack_any;
use prost::Name;
use serde_json::json;

use super::*;

#[test]
fn pool_holds_every_type_mast_emits() {
    let pool = descriptor_pool().expect("pool loads");
    for name in [
        "envoy.config.cluster.v3.Cluster",
        "envoy.config.listener.v3.Listener",
        "envoy.config.route.v3.RouteConfiguration",
        "envoy.config.endpoint.v3.ClusterLoadAssignment",
        "envoy.config.bootstrap.v3.Bootstrap",
        "envoy.admin.v3.ConfigDump",
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "envoy.extensions.filters.http.router.v3.Router",
        "envoy.extensions.filters.http.fault.v3.HTTPFault",
        "envoy.extensions.filters.http.cors.v3.Cors",
        "envoy.extensions.filters.http.rbac.v3.RBAC",
        "envoy.extensions.filters.network.rbac.v3.RBAC",
        "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "envoy.extensions.filters.listener.original_dst.v3.OriginalDst",
        "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
        "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector",
        "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "envoy.extensions.transport_sockets.tls.v3.Secret",
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "envoy.service.discovery.v3.DiscoveryResponse",
    ] {
        assert!(pool.get_message_by_name(name).is_some(), "{name} missing");
    }
}

#[test]
fn well_known_type_in_an_any_sits_under_value() {
    let any = pack_any(Duration {
        seconds: 2,
        nanos: 0,
    });
    let json = any_to_json(&any).expect("to json");
    assert_eq!(
        json,
        json!({"@type": "type.googleapis.com/google.protobuf.Duration", "value": "2s"})
    );
    assert_eq!(
        json_to_any(&any.type_url, &json).expect("from any json"),
        any
    );
    assert_eq!(
        json_to_any(&any.type_url, &json!("2s")).expect("from bare json"),
        any
    );
}

#[test]
fn include_defaults_prints_default_fields() {
    let options = JsonOptions {
        include_defaults: true,
        ..JsonOptions::default()
    };
    let json = message_to_json_with(&Cluster::default(), &options).expect("to json");
    assert_eq!(json["name"], "");
    assert_eq!(json["lb_policy"], "ROUND_ROBIN");
    assert_eq!(
        message_to_json(&Cluster::default()).expect("to json"),
        json!({})
    );
}

#[test]
fn type_errors_are_typed() {
    let cluster = json!({"@type": Cluster::type_url(), "name": "a"});
    let err = json_to_any(
        "type.googleapis.com/envoy.config.listener.v3.Listener",
        &cluster,
    );
    assert!(
        matches!(err, Err(JsonError::TypeMismatch { .. })),
        "{err:?}"
    );
    let err = json_to_message::<envoy_types::pb::envoy::config::listener::v3::Listener>(&cluster);
    assert!(
        matches!(err, Err(JsonError::TypeMismatch { .. })),
        "{err:?}"
    );
    let err = json_to_any("type.googleapis.com/example.Unknown", &json!({}));
    assert!(matches!(err, Err(JsonError::UnknownType { .. })), "{err:?}");
    let err = json_to_any("type.googleapis.com/", &json!({}));
    assert!(
        matches!(err, Err(JsonError::InvalidTypeUrl { .. })),
        "{err:?}"
    );
    let err = any_from_json(&json!({"name": "a"}));
    assert!(matches!(err, Err(JsonError::MissingType)), "{err:?}");
    let err = parse_config_dump(&json!({"config": []}));
    assert!(
        matches!(err, Err(JsonError::MalformedDump { .. })),
        "{err:?}"
    );
}

#[test]
fn unknown_fields_are_refused_with_their_name() {
    let err = json_to_any(
        &Cluster::type_url(),
        &json!({"name": "a", "conect_timeout": "1s"}),
    );
    match err {
        Err(JsonError::FromJson { type_name, source }) => {
            assert_eq!(type_name, "google.protobuf.Any");
            assert!(source.to_string().contains("conect_timeout"), "{source}");
        }
        other => panic!("expected FromJson, got {other:?}"),
    }
}

#[test]
fn nested_any_of_unknown_type_is_an_error_not_a_panic() {
    let cluster = Cluster {
        transport_socket: Some(TransportSocket {
            name: "custom".into(),
            config_type: Some(transport_socket::ConfigType::TypedConfig(Any {
                type_url: "type.googleapis.com/example.Custom".into(),
                value: vec![8, 1],
            })),
        }),
        ..Default::default()
    };
    let err = message_to_json(&cluster);
    assert!(matches!(err, Err(JsonError::ToJson { .. })), "{err:?}");
    assert!(format!("{err:?}").contains("example.Custom"), "{err:?}");
}

#[test]
fn any_from_json_reads_the_type_from_the_json() {
    let any = pack_any(Cluster {
        name: "a".into(),
        ..Default::default()
    });
    let json = any_to_json(&any).expect("to json");
    assert_eq!(any_from_json(&json).expect("from json"), any);
}
