//! Tests of the deterministic encoding: every map-bearing type decodes back to an equal
//! message, equal messages built with differently ordered maps (and from two threads) give the
//! same bytes, and so does `generate` for the rich mesh fixture.

use std::collections::{BTreeSet, HashMap};
use std::thread;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{LbSubsetConfig, TransportSocketMatch};
use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::ClusterWeight;
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, VirtualHost, WeightedCluster,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{Any, ListValue, Struct, Value};
use envoy_types::util::pack_any;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
use prost::{Message, Name};

use super::{Deterministic, HCM_TYPE, has_field, normalize_hcm, pack_deterministic};

/// How many times each message is built for the determinism checks, per thread.
const BUILDS: usize = 64;

/// A fresh `HashMap` of `entries`, inserted starting at a `seed`-dependent entry, reversed
/// for odd seeds: same content, different insertion order (and a new random hasher).
fn map_of<V>(entries: Vec<(&str, V)>, seed: usize) -> HashMap<String, V> {
    let n = entries.len().max(1);
    let mut entries: Vec<(String, V)> = entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    entries.rotate_left(seed % n);
    if seed % 2 == 1 {
        entries.reverse();
    }
    entries.into_iter().collect()
}

fn value(kind: Kind) -> Value {
    Value { kind: Some(kind) }
}

fn string(s: &str) -> Value {
    value(Kind::StringValue(s.to_owned()))
}

/// A `Struct` with a nested struct, a list of structs, every scalar kind, an empty-key entry
/// and a default-valued entry.
fn rich_struct(seed: usize) -> Struct {
    let inner = |s: usize| Struct {
        fields: map_of(
            ["a", "b", "c", "d", "e", "f"]
                .map(|k| (k, string(k)))
                .to_vec(),
            s,
        ),
    };
    let list = ListValue {
        values: vec![
            value(Kind::StructValue(inner(seed + 1))),
            string("x"),
            value(Kind::ListValue(ListValue {
                values: vec![value(Kind::StructValue(inner(seed + 2)))],
            })),
        ],
    };
    let fields = vec![
        ("name", string("reviews")),
        ("number", value(Kind::NumberValue(1.5))),
        ("flag", value(Kind::BoolValue(true))),
        ("null", value(Kind::NullValue(0))),
        ("nested", value(Kind::StructValue(inner(seed)))),
        ("list", value(Kind::ListValue(list))),
        ("", string("empty key")),
        ("unset", Value::default()),
    ];
    Struct {
        fields: map_of(fields, seed),
    }
}

fn any(name: &str) -> Any {
    Any {
        type_url: format!("type.googleapis.com/test.{name}"),
        value: name.as_bytes().to_vec(),
    }
}

fn metadata(seed: usize) -> Metadata {
    Metadata {
        filter_metadata: map_of(
            vec![
                ("istio", rich_struct(seed)),
                ("envoy.lb", rich_struct(seed + 3)),
                ("empty", Struct::default()),
            ],
            seed,
        ),
        typed_filter_metadata: map_of(
            vec![("a", any("a")), ("b", any("b")), ("c", any("c"))],
            seed,
        ),
    }
}

fn per_filter(seed: usize) -> HashMap<String, Any> {
    let names = [
        "envoy.filters.http.fault",
        "envoy.filters.http.cors",
        "x",
        "y",
    ];
    map_of(names.iter().map(|n| (*n, any(n))).collect(), seed)
}

fn route(seed: usize, i: usize) -> Route {
    let clusters = (0..2)
        .map(|c| ClusterWeight {
            name: format!("outbound|80|v{c}|reviews"),
            metadata_match: Some(metadata(seed + c)),
            typed_per_filter_config: per_filter(seed + c),
            ..Default::default()
        })
        .collect();
    let action = RouteAction {
        metadata_match: Some(metadata(seed + 1)),
        cluster_specifier: Some(ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters,
            ..Default::default()
        })),
        ..Default::default()
    };
    Route {
        name: format!("route-{i}"),
        metadata: Some(metadata(seed)),
        typed_per_filter_config: per_filter(seed),
        action: Some(Action::Route(action)),
        ..Default::default()
    }
}

fn route_config(seed: usize) -> RouteConfiguration {
    let virtual_hosts = (0..2)
        .map(|v| VirtualHost {
            name: format!("vh-{v}"),
            domains: vec![format!("host-{v}")],
            routes: (0..3).map(|i| route(seed + v + i, i)).collect(),
            typed_per_filter_config: per_filter(seed + v),
            metadata: Some(metadata(seed + v)),
            ..Default::default()
        })
        .collect();
    RouteConfiguration {
        name: "80".into(),
        virtual_hosts,
        typed_per_filter_config: per_filter(seed),
        metadata: Some(metadata(seed)),
        ..Default::default()
    }
}

fn cluster(seed: usize) -> Cluster {
    Cluster {
        name: "outbound|80||reviews.default.svc.cluster.local".into(),
        metadata: Some(metadata(seed)),
        typed_extension_protocol_options: per_filter(seed),
        load_assignment: Some(load_assignment(seed)),
        lb_subset_config: Some(LbSubsetConfig {
            default_subset: Some(rich_struct(seed)),
            ..Default::default()
        }),
        transport_socket_matches: (0..2)
            .map(|i| TransportSocketMatch {
                name: format!("m{i}"),
                r#match: Some(rich_struct(seed + i)),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn load_assignment(seed: usize) -> ClusterLoadAssignment {
    let endpoint = |i: usize| LbEndpoint {
        metadata: Some(metadata(seed + i)),
        ..Default::default()
    };
    let named = ["a", "b", "c", "d"]
        .iter()
        .map(|n| {
            let e = Endpoint {
                hostname: (*n).to_owned(),
                ..Default::default()
            };
            (*n, e)
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: "c".into(),
        endpoints: (0..2)
            .map(|l| LocalityLbEndpoints {
                metadata: Some(metadata(seed + l)),
                lb_endpoints: (0..3).map(endpoint).collect(),
                ..Default::default()
            })
            .collect(),
        named_endpoints: map_of(named, seed),
        ..Default::default()
    }
}

fn hcm_filter(seed: usize) -> Filter {
    let hcm = HttpConnectionManager {
        stat_prefix: "inbound_0.0.0.0_9080".into(),
        route_specifier: Some(RouteSpecifier::RouteConfig(RouteConfiguration {
            virtual_hosts: vec![VirtualHost {
                routes: vec![route(seed, 0), route(seed + 1, 1)],
                ..Default::default()
            }],
            ..Default::default()
        })),
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.http_connection_manager".into(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
    }
}

fn listener(seed: usize) -> Listener {
    let chain = |s: usize, i: usize| FilterChain {
        name: format!("chain-{i}"),
        filters: vec![hcm_filter(s)],
        metadata: Some(metadata(s)),
        ..Default::default()
    };
    Listener {
        name: "virtualInbound".into(),
        metadata: Some(metadata(seed)),
        filter_chains: vec![chain(seed, 0), chain(seed + 1, 1)],
        default_filter_chain: Some(chain(seed + 2, 2)),
        ..Default::default()
    }
}

/// Packs `msg` deterministically and checks the type URL, the length and that it decodes back.
fn round_trip<T: Name + Deterministic + Default + Clone + PartialEq + std::fmt::Debug>(msg: T) {
    let any = pack_deterministic(msg.clone());
    assert_eq!(any.type_url, T::type_url());
    assert_eq!(any.value.len(), msg.encoded_len(), "{}", T::full_name());
    let decoded = T::decode(any.value.as_slice()).unwrap();
    assert_eq!(decoded, msg, "{}", T::full_name());
}

#[test]
fn every_map_bearing_type_decodes_to_an_equal_message() {
    round_trip(rich_struct(0));
    round_trip(metadata(0));
    round_trip(cluster(0));
    round_trip(load_assignment(0));
    round_trip(route_config(0));
    round_trip(route(0, 0));
}

/// The HTTP connection managers of a listener's filters, decoded, with their `Any` bytes
/// cleared in the listener (the bytes are re-encoded, so only their content can be compared).
fn split_hcms(mut l: Listener) -> (Listener, Vec<HttpConnectionManager>) {
    let mut hcms = Vec::new();
    let chains = l
        .filter_chains
        .iter_mut()
        .chain(&mut l.default_filter_chain);
    for f in chains.flat_map(|c| c.filters.iter_mut()) {
        if let Some(filter::ConfigType::TypedConfig(any)) = &mut f.config_type
            && any.type_url == HCM_TYPE
        {
            hcms.push(HttpConnectionManager::decode(any.value.as_slice()).unwrap());
            any.value.clear();
        }
    }
    (l, hcms)
}

#[test]
fn a_listener_decodes_to_an_equal_message() {
    let original = listener(0);
    let any = pack_deterministic(original.clone());
    assert_eq!(any.type_url, Listener::type_url());
    assert_eq!(any.value.len(), original.encoded_len());
    let decoded = Listener::decode(any.value.as_slice()).unwrap();
    assert_eq!(split_hcms(decoded), split_hcms(original));
}

/// An HTTP connection manager with filters and an inline route configuration full of maps.
fn inline_hcm(seed: usize) -> HttpConnectionManager {
    HttpConnectionManager {
        stat_prefix: "inbound_0.0.0.0_9080".into(),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".into(),
            ..Default::default()
        }],
        route_specifier: Some(RouteSpecifier::RouteConfig(route_config(seed))),
        ..Default::default()
    }
}

#[test]
fn an_inline_route_configuration_is_spliced_deterministically() {
    assert_eq!(HCM_TYPE, HttpConnectionManager::type_url());
    let original = inline_hcm(0);
    let mut any = pack_any(original.clone());
    normalize_hcm(&mut any);
    assert_eq!(any.value.len(), original.encoded_len());
    assert_eq!(
        HttpConnectionManager::decode(any.value.as_slice()).unwrap(),
        original
    );
    for seed in 1..8 {
        let mut other = pack_any(inline_hcm(seed));
        normalize_hcm(&mut other);
        assert!(other.value == any.value, "seed {seed}");
    }
}

#[test]
fn other_anys_are_left_byte_for_byte() {
    let inline = pack_any(inline_hcm(0));
    assert!(has_field(&inline.value, 4));
    assert!(!has_field(&inline.value, 3));
    assert!(
        has_field(&[0xff], 4),
        "unparsable bytes are looked at closer"
    );
    let rds = pack_any(HttpConnectionManager {
        stat_prefix: "x".into(),
        ..Default::default()
    });
    // `rds` and `route_config` both present: which one wins depends on their order, so keep it.
    let mut both = rds.clone();
    prost::encoding::message::encode(4, &RouteConfiguration::default(), &mut both.value);
    let truncated = Any {
        type_url: HCM_TYPE.into(),
        value: vec![0x22, 0x05],
    };
    for original in [rds, both, truncated, any("other")] {
        let mut normalized = original.clone();
        normalize_hcm(&mut normalized);
        assert_eq!(normalized, original);
    }
}

/// Builds `BUILDS` messages per thread on two threads (different seeds, so different map
/// insertion orders), packs them and asserts one set of bytes; returns how many distinct plain
/// prost encodings the same messages had.
fn assert_deterministic<T: Name + Deterministic + Send + 'static>(build: fn(usize) -> T) -> usize {
    let run = move |offset: usize| {
        (offset..offset + BUILDS)
            .map(|seed| {
                let plain = build(seed).encode_to_vec();
                (pack_deterministic(build(seed)).value, plain)
            })
            .collect::<Vec<_>>()
    };
    let threads = [0, BUILDS].map(|offset| thread::spawn(move || run(offset)));
    let results: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let first = &results[0].0;
    for (i, (bytes, _)) in results.iter().enumerate() {
        assert!(
            bytes == first,
            "{}: build {i} encodes differently",
            T::full_name()
        );
    }
    results
        .iter()
        .map(|(_, plain)| plain)
        .collect::<BTreeSet<_>>()
        .len()
}

#[test]
fn equal_messages_give_equal_bytes() {
    // The plain encodings differ, so these would catch the bug the module fixes.
    assert!(assert_deterministic(route_config) > 1);
    assert!(assert_deterministic(cluster) > 1);
    assert!(assert_deterministic(load_assignment) > 1);
    assert!(assert_deterministic(listener) > 1);
    assert!(assert_deterministic(rich_struct) > 1);
}

const RICH: &str = include_str!("../../../mastd/tests/fixtures/rich-mesh.yaml");

fn rich_proxies() -> Vec<ProxyNode> {
    let iptables =
        serde_json::json!({"NAMESPACE": "default", "LABELS": {"app": "reviews", "version": "v1"}});
    let ports = serde_json::json!({"NAMESPACE": "default", "LABELS": {"app": "productpage"},
        "MAST_CAPTURE_MODE": "ports", "MAST_OUTBOUND_PORT": "15101", "MAST_INBOUND_PORTS": "9080=15106"});
    vec![
        ProxyNode::parse(
            "sidecar~10.0.0.7~reviews-v1.default~default.svc.cluster.local",
            &iptables,
        )
        .unwrap(),
        ProxyNode::parse(
            "sidecar~127.0.0.1~productpage.default~default.svc.cluster.local",
            &ports,
        )
        .unwrap(),
    ]
}

/// `generate`'s bytes decode to what the generators build (listeners: up to the re-encoded
/// `HttpConnectionManager` bytes, compared decoded).
fn assert_decodes_to_generated(snapshot: &MeshSnapshot, proxy: &ProxyNode, type_url: &str) {
    fn check<T: Message + Default + PartialEq + std::fmt::Debug>(
        built: Vec<T>,
        got: &[crate::NamedResource],
    ) {
        assert_eq!(built.len(), got.len());
        for (b, g) in built.iter().zip(got) {
            assert_eq!(
                &T::decode(g.resource.value.as_slice()).unwrap(),
                b,
                "{}",
                g.name
            );
        }
    }
    let got = crate::generate(snapshot, proxy, type_url);
    match type_url {
        crate::CLUSTER_TYPE => check(crate::cluster::clusters(snapshot, proxy), &got),
        crate::ENDPOINT_TYPE => check(crate::endpoint::endpoints(snapshot, proxy), &got),
        crate::LISTENER_TYPE => {
            let built = crate::listener::listeners(snapshot, proxy);
            assert_eq!(built.len(), got.len());
            for (b, g) in built.into_iter().zip(&got) {
                let decoded = Listener::decode(g.resource.value.as_slice()).unwrap();
                assert_eq!(split_hcms(decoded), split_hcms(b), "{}", g.name);
            }
        }
        _ => check(crate::route::routes(snapshot, proxy), &got),
    }
}

#[test]
fn generated_rich_mesh_is_byte_identical_across_runs_and_threads() {
    let loaded =
        mast_config::load_str(RICH, "rich-mesh.yaml", &mast_config::LoadOptions::default());
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let snapshot = MeshSnapshot::build(&loaded.resources, SnapshotOptions::default(), 1);
    for proxy in rich_proxies() {
        for type_url in crate::PUSH_ORDER {
            let runs: Vec<Vec<crate::NamedResource>> = thread::scope(|s| {
                let spawn = || s.spawn(|| crate::generate(&snapshot, &proxy, type_url));
                let handles = [spawn(), spawn()];
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert!(!runs[0].is_empty(), "{} {type_url}: resources", proxy.id);
            assert_eq!(runs[0], runs[1], "{} {type_url}", proxy.id);
            assert_decodes_to_generated(&snapshot, &proxy, type_url);
        }
    }
}
