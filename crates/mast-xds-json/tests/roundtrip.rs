//! Round trips through JSON of the resources Mast generates (a cluster, a listener holding an
//! HttpConnectionManager, a route configuration) and the `/config_dump` shape.

mod common;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use mast_xds_json::{
    DumpSection, JsonOptions, any_to_json, any_to_json_with, config_dump, json_to_any,
    json_to_message, message_to_json, message_to_json_with, parse_config_dump,
};
use prost::{Message, Name};
use serde_json::json;

fn decode<M: Message + Default>(any: &Any) -> M {
    M::decode(any.value.as_slice()).expect("decodes")
}

fn hcm_of(listener: &Listener) -> HttpConnectionManager {
    match &listener.filter_chains[0].filters[0].config_type {
        Some(filter::ConfigType::TypedConfig(any)) => {
            assert_eq!(any.type_url, HttpConnectionManager::type_url());
            decode(any)
        }
        other => panic!("filter has no typed_config: {other:?}"),
    }
}

#[test]
fn cluster_prints_like_envoy_and_reads_back() {
    let cluster = common::static_cluster("outbound|9080|v1|reviews.default.svc.cluster.local");
    let json = any_to_json(&pack_any(cluster.clone())).expect("to json");

    assert_eq!(json["@type"], Cluster::type_url());
    assert_eq!(
        json["name"],
        "outbound|9080|v1|reviews.default.svc.cluster.local"
    );
    assert_eq!(json["type"], "STATIC");
    assert_eq!(json["lb_policy"], "LEAST_REQUEST");
    assert_eq!(json["connect_timeout"], "1.500s");
    assert_eq!(
        json["circuit_breakers"]["thresholds"][0]["max_connections"],
        4_294_967_295_u32
    );
    assert_eq!(json["circuit_breakers"]["thresholds"][0]["max_retries"], 0);
    assert_eq!(json["outlier_detection"]["consecutive_5xx"], 7);
    let options = &json["typed_extension_protocol_options"][common::HTTP_OPTIONS_KEY];
    assert_eq!(options["@type"], HttpProtocolOptions::type_url());
    assert_eq!(
        options["explicit_http_config"]["http2_protocol_options"]["max_concurrent_streams"],
        100
    );
    assert_eq!(
        json["transport_socket"]["typed_config"]["sni"],
        "reviews.default.svc.cluster.local"
    );
    assert!(
        json.get("dns_lookup_family").is_none(),
        "default values are left out: {json}"
    );

    let back = json_to_any(&Cluster::type_url(), &json).expect("from json");
    assert_eq!(back.type_url, Cluster::type_url());
    assert_eq!(any_to_json(&back).expect("to json again"), json);
    let mut back: Cluster = decode(&back);
    let mut expected = cluster;
    // Nested Anys hold bytes whose field order depends on the encoder: compare them decoded.
    let options_back: HttpProtocolOptions =
        decode(&back.typed_extension_protocol_options[common::HTTP_OPTIONS_KEY]);
    let options_expected: HttpProtocolOptions =
        decode(&expected.typed_extension_protocol_options[common::HTTP_OPTIONS_KEY]);
    assert_eq!(options_back, options_expected);
    back.typed_extension_protocol_options.clear();
    expected.typed_extension_protocol_options.clear();
    assert_eq!(back, expected);
}

#[test]
fn listener_with_nested_http_connection_manager_round_trips() {
    let listener = common::listener("0.0.0.0_9080", 9080);
    let json = any_to_json(&pack_any(listener.clone())).expect("to json");

    assert_eq!(json["@type"], Listener::type_url());
    assert_eq!(json["address"]["socket_address"]["port_value"], 9080);
    assert_eq!(
        json["listener_filters"][0]["typed_config"]["@type"],
        "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
    );
    let hcm = &json["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(hcm["@type"], HttpConnectionManager::type_url());
    assert_eq!(hcm["stat_prefix"], "outbound_0.0.0.0_9080");
    assert_eq!(
        hcm["http_filters"][0]["typed_config"],
        json!({"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"})
    );
    let split = &hcm["route_config"]["virtual_hosts"][0]["routes"][1]["route"];
    assert_eq!(
        split["weighted_clusters"]["clusters"][0],
        json!({"name": "outbound|9080|v1|reviews", "weight": 80})
    );
    assert_eq!(split["timeout"], "0s");

    let back = json_to_any(&Listener::type_url(), &json).expect("from json");
    assert_eq!(any_to_json(&back).expect("to json again"), json);
    let back: Listener = decode(&back);
    assert_eq!(hcm_of(&back), hcm_of(&listener));
    assert_eq!(back.name, listener.name);
    assert_eq!(back.address, listener.address);
}

#[test]
fn route_configuration_round_trips_in_both_spellings() {
    let routes = common::route_configuration("9080");
    let snake = message_to_json(&routes).expect("to json");
    assert!(snake.get("@type").is_none(), "a bare message has no @type");
    assert_eq!(snake["validate_clusters"], false);
    assert_eq!(
        snake["virtual_hosts"][0]["routes"][0]["match"]["headers"][0],
        json!({"name": "end-user", "string_match": {"exact": "jason"}})
    );
    assert_eq!(
        json_to_message::<RouteConfiguration>(&snake).expect("from snake"),
        routes
    );

    let camel = message_to_json_with(&routes, &JsonOptions::camel_case()).expect("to camel");
    assert_eq!(
        camel["virtualHosts"][0]["routes"][1]["route"]["retryPolicy"]["numRetries"],
        2
    );
    assert_eq!(
        json_to_message::<RouteConfiguration>(&camel).expect("from camel"),
        routes
    );

    let any = pack_any(routes.clone());
    let camel_any = any_to_json_with(&any, &JsonOptions::camel_case()).expect("any to camel");
    assert_eq!(camel_any["@type"], RouteConfiguration::type_url());
    assert_eq!(
        decode::<RouteConfiguration>(&json_to_any(&any.type_url, &camel_any).expect("back")),
        routes
    );
}

fn sections() -> Vec<DumpSection> {
    let endpoints = common::static_cluster("c")
        .load_assignment
        .expect("has endpoints");
    // Deliberately out of Envoy's order: the dump sorts them.
    vec![
        DumpSection {
            type_url: RouteConfiguration::type_url(),
            version_info: "v3".into(),
            resources: vec![pack_any(common::route_configuration("9080"))],
        },
        DumpSection {
            type_url: Listener::type_url(),
            version_info: "v2".into(),
            resources: vec![pack_any(common::listener("0.0.0.0_9080", 9080))],
        },
        DumpSection {
            type_url: ClusterLoadAssignment::type_url(),
            version_info: "v1".into(),
            resources: vec![pack_any(endpoints)],
        },
        DumpSection {
            type_url: Cluster::type_url(),
            version_info: "v1".into(),
            resources: vec![
                pack_any(common::eds_cluster("outbound|9080||reviews")),
                pack_any(common::eds_cluster("b")),
            ],
        },
    ]
}

#[test]
fn config_dump_has_envoys_shape() {
    let dump = config_dump(&sections()).expect("dump");
    let configs = dump["configs"].as_array().expect("configs");
    let types: Vec<_> = configs
        .iter()
        .map(|c| c["@type"].as_str().expect("@type"))
        .collect();
    assert_eq!(
        types,
        [
            "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
            "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
            "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
            "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
        ]
    );
    let clusters = &configs[0];
    assert_eq!(clusters["version_info"], "v1");
    assert_eq!(clusters["dynamic_active_clusters"][0]["version_info"], "v1");
    assert_eq!(
        clusters["dynamic_active_clusters"][0]["cluster"]["@type"],
        Cluster::type_url()
    );
    assert_eq!(
        clusters["dynamic_active_clusters"][0]["cluster"]["name"],
        "outbound|9080||reviews"
    );
    assert_eq!(
        clusters["dynamic_active_clusters"][1]["cluster"]["eds_cluster_config"]["eds_config"]["ads"],
        json!({})
    );
    let endpoints = &configs[1]["dynamic_endpoint_configs"][0];
    assert_eq!(endpoints["endpoint_config"]["cluster_name"], "c");
    let listener = &configs[2]["dynamic_listeners"][0];
    assert_eq!(configs[2]["version_info"], "v2");
    assert_eq!(listener["name"], "0.0.0.0_9080");
    assert_eq!(listener["active_state"]["version_info"], "v2");
    assert_eq!(
        listener["active_state"]["listener"]["filter_chains"][0]["filters"][0]["typed_config"]["@type"],
        HttpConnectionManager::type_url()
    );
    let routes = &configs[3]["dynamic_route_configs"][0];
    assert_eq!(routes["version_info"], "v3");
    assert_eq!(routes["route_config"]["name"], "9080");
}

#[test]
fn config_dump_reads_back_into_the_same_sections() {
    let given = sections();
    let parsed = parse_config_dump(&config_dump(&given).expect("dump")).expect("parse");
    let urls: Vec<_> = parsed.iter().map(|s| s.type_url.clone()).collect();
    assert_eq!(
        urls,
        [&given[3], &given[2], &given[1], &given[0]].map(|s| s.type_url.clone()),
        "Envoy's order: clusters, endpoints, listeners, routes"
    );
    for section in &parsed {
        let original = given
            .iter()
            .find(|g| g.type_url == section.type_url)
            .expect("same type");
        assert_eq!(section.version_info, original.version_info);
        let as_json = |s: &DumpSection| {
            s.resources
                .iter()
                .map(|r| any_to_json(r).expect("json"))
                .collect::<Vec<_>>()
        };
        assert_eq!(as_json(section), as_json(original), "{}", section.type_url);
    }
}

#[test]
fn config_dump_refuses_types_it_has_no_section_for() {
    let secret = DumpSection {
        type_url: "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret".into(),
        ..Default::default()
    };
    let err = config_dump(&[secret]).expect_err("no secrets section");
    assert!(err.to_string().contains("no section"), "{err}");
}
