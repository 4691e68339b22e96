//! Unit tests: the listener set and the shape of each listener, in both capture modes, built
//! from hand-made inputs (no snapshot needed).

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::{
    CodecType, RouteSpecifier,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier as TcpCluster;
use envoy_types::pb::google::protobuf::Any;
use mast_config::networking::VirtualService;
use mast_core::Hostname;
use mast_model::{Config, Endpoint, OutboundPolicy, Protocol, ProxyNode, Resolution};
use mast_model::{Service, ServicePort};
use prost::Message;
use serde_json::json;

use super::filters::*;
use super::{Inputs, build};

// ---- helpers shared with tests_l4 and tests_inbound ----

pub fn sidecar(md: serde_json::Value) -> ProxyNode {
    ProxyNode::parse(
        "sidecar~10.0.0.9~client-1.default~default.svc.cluster.local",
        &md,
    )
    .unwrap()
}

pub fn iptables() -> ProxyNode {
    sidecar(json!({"NAMESPACE": "default", "LABELS": {"app": "client", "version": "v1"}}))
}

pub fn ports_mode() -> ProxyNode {
    sidecar(
        json!({"NAMESPACE": "default", "MAST_CAPTURE_MODE": "ports", "MAST_OUTBOUND_PORT": "15101",
        "MAST_INBOUND_PORTS": "9080=15106,9090=15107"}),
    )
}

pub fn service(host: &str, ports: &[(u16, Protocol)], addresses: &[&str]) -> Service {
    Service {
        hostname: Hostname::new_unchecked(host),
        namespace: "default".into(),
        name: host.split('.').next().unwrap().into(),
        ports: ports
            .iter()
            .map(|(p, proto)| ServicePort {
                name: String::new(),
                port: *p,
                protocol: *proto,
            })
            .collect(),
        addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
        export_to: vec![],
        mesh_external: false,
        resolution: Resolution::Static,
        selector: BTreeMap::new(),
        endpoints: BTreeMap::new(),
    }
}

pub fn endpoint(ip: &str, port: u16) -> Endpoint {
    Endpoint {
        address: ip.into(),
        port,
        labels: BTreeMap::new(),
        namespace: "default".into(),
        workload: String::new(),
        service_account: String::new(),
        weight: 1,
        healthy: true,
    }
}

pub fn vs(name: &str, spec: serde_json::Value) -> Config<VirtualService> {
    Config {
        name: name.into(),
        namespace: "default".into(),
        spec: std::sync::Arc::new(serde_json::from_value(spec).unwrap()),
    }
}

pub fn run(
    proxy: &ProxyNode,
    services: &[Service],
    vss: &[Config<VirtualService>],
    policy: OutboundPolicy,
) -> Vec<Listener> {
    let inputs = Inputs::new(
        proxy,
        services.iter().collect(),
        vss.iter().collect(),
        vec![],
        policy,
        "cluster.local",
    );
    build(&inputs)
}

pub fn names(ls: &[Listener]) -> Vec<&str> {
    ls.iter().map(|l| l.name.as_str()).collect()
}

pub fn find<'a>(ls: &'a [Listener], name: &str) -> &'a Listener {
    ls.iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no listener {name} in {:?}", names(ls)))
}

pub fn typed<T: Message + Default>(f: &Filter) -> T {
    let Some(ConfigType::TypedConfig(any)) = &f.config_type else {
        panic!("filter {} has no typed config", f.name)
    };
    unpack(any)
}

pub fn unpack<T: Message + Default>(any: &Any) -> T {
    T::decode(any.value.as_slice()).unwrap()
}

pub fn hcm(chain: &FilterChain) -> HttpConnectionManager {
    let f = chain.filters.last().unwrap();
    assert_eq!(f.name, HCM_FILTER);
    typed(f)
}

/// The single cluster of a chain's tcp_proxy, with its stat prefix.
pub fn tcp_cluster(chain: &FilterChain) -> (String, String) {
    let f = chain.filters.last().unwrap();
    assert_eq!(f.name, TCP_PROXY_FILTER);
    let t: TcpProxy = typed(f);
    match t.cluster_specifier {
        Some(TcpCluster::Cluster(c)) => (c, t.stat_prefix),
        other => panic!("not a single cluster: {other:?}"),
    }
}

pub fn socket(l: &Listener) -> (String, u32) {
    use envoy_types::pb::envoy::config::core::v3::address::Address as A;
    use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
    let Some(A::SocketAddress(s)) = l.address.clone().unwrap().address else {
        panic!()
    };
    let Some(PortSpecifier::PortValue(p)) = s.port_specifier else {
        panic!()
    };
    (s.address, p)
}

pub fn http_filter_names(h: &HttpConnectionManager) -> Vec<&str> {
    h.http_filters.iter().map(|f| f.name.as_str()).collect()
}

pub fn mesh() -> Vec<Service> {
    vec![
        service(
            "reviews.default.svc.cluster.local",
            &[(9080, Protocol::Http)],
            &["10.0.0.1"],
        ),
        service(
            "ratings.default.svc.cluster.local",
            &[(9080, Protocol::Grpc), (3306, Protocol::Mysql)],
            &["10.0.0.2"],
        ),
        service("api.example.com", &[(443, Protocol::Tls)], &[]),
        service(
            "dns.default.svc.cluster.local",
            &[(53, Protocol::Udp)],
            &["10.0.0.3"],
        ),
        service(
            "raw.default.svc.cluster.local",
            &[(7000, Protocol::Unsupported)],
            &["10.0.0.4"],
        ),
    ]
}

// ---- iptables mode ----

#[test]
fn iptables_listener_set() {
    let ls = run(&iptables(), &mesh(), &[], OutboundPolicy::AllowAny);
    assert_eq!(
        names(&ls),
        [
            "0.0.0.0_443",
            "0.0.0.0_9080",
            "10.0.0.2_3306",
            "10.0.0.4_7000",
            "virtualInbound",
            "virtualOutbound"
        ]
    );
    for l in ls.iter().filter(|l| !l.name.starts_with("virtual")) {
        assert_eq!(
            l.bind_to_port.as_ref().map(|b| b.value),
            Some(false),
            "{}",
            l.name
        );
    }
}

#[test]
fn virtual_outbound_follows_the_outbound_policy() {
    for (policy, cluster) in [
        (OutboundPolicy::AllowAny, "PassthroughCluster"),
        (OutboundPolicy::RegistryOnly, "BlackHoleCluster"),
    ] {
        let ls = run(&iptables(), &[], &[], policy);
        let vo = find(&ls, "virtualOutbound");
        assert_eq!(socket(vo), ("0.0.0.0".into(), 15001));
        assert_eq!(vo.use_original_dst.as_ref().map(|b| b.value), Some(true));
        assert_eq!(
            vo.listener_filters
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>(),
            [ORIGINAL_DST_FILTER]
        );
        let blackhole = &vo.filter_chains[0];
        assert_eq!(
            blackhole
                .filter_chain_match
                .as_ref()
                .unwrap()
                .destination_port
                .as_ref()
                .unwrap()
                .value,
            15001
        );
        assert_eq!(tcp_cluster(blackhole).0, "BlackHoleCluster");
        let default = vo.default_filter_chain.as_ref().unwrap();
        assert_eq!(tcp_cluster(default), (cluster.into(), cluster.into()));
    }
}

#[test]
fn http_port_gets_an_rds_listener_with_fault_cors_router() {
    let ls = run(&iptables(), &mesh(), &[], OutboundPolicy::AllowAny);
    let l = find(&ls, "0.0.0.0_9080");
    assert_eq!(socket(l), ("0.0.0.0".into(), 9080));
    assert_eq!(l.filter_chains.len(), 1);
    assert!(l.default_filter_chain.is_none());
    let h = hcm(&l.filter_chains[0]);
    assert_eq!(h.stat_prefix, "outbound_0.0.0.0_9080");
    assert_eq!(h.codec_type, CodecType::Auto as i32);
    let Some(RouteSpecifier::Rds(rds)) = &h.route_specifier else {
        panic!("not RDS")
    };
    assert_eq!(rds.route_config_name, "9080");
    assert!(
        rds.config_source
            .as_ref()
            .unwrap()
            .config_source_specifier
            .is_some()
    );
    assert_eq!(
        http_filter_names(&h),
        [FAULT_FILTER, CORS_FILTER, ROUTER_FILTER]
    );
    assert_eq!(h.use_remote_address.as_ref().map(|b| b.value), Some(false));
    assert_eq!(h.normalize_path.as_ref().map(|b| b.value), Some(true));
    assert_eq!(h.generate_request_id.as_ref().map(|b| b.value), Some(true));
    assert!(h.request_id_extension.is_some());
    assert_eq!(
        h.upgrade_configs
            .iter()
            .map(|u| u.upgrade_type.as_str())
            .collect::<Vec<_>>(),
        ["websocket"]
    );
}

#[test]
fn tcp_port_with_vip_is_one_tcp_proxy_chain() {
    let ls = run(&iptables(), &mesh(), &[], OutboundPolicy::AllowAny);
    let l = find(&ls, "10.0.0.2_3306");
    assert_eq!(socket(l), ("10.0.0.2".into(), 3306));
    assert_eq!(l.filter_chains.len(), 1);
    assert!(l.filter_chains[0].filter_chain_match.is_none());
    assert!(l.default_filter_chain.is_none());
    let c = "outbound|3306||ratings.default.svc.cluster.local";
    assert_eq!(tcp_cluster(&l.filter_chains[0]), (c.into(), c.into()));
    let raw = find(&ls, "10.0.0.4_7000");
    assert_eq!(
        tcp_cluster(&raw.filter_chains[0]).0,
        "outbound|7000||raw.default.svc.cluster.local"
    );
}

#[test]
fn tls_port_without_vip_matches_its_host_by_sni() {
    let ls = run(&iptables(), &mesh(), &[], OutboundPolicy::RegistryOnly);
    let l = find(&ls, "0.0.0.0_443");
    assert_eq!(
        l.listener_filters
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        [TLS_INSPECTOR_FILTER]
    );
    assert_eq!(l.filter_chains.len(), 1);
    assert_eq!(
        l.filter_chains[0]
            .filter_chain_match
            .as_ref()
            .unwrap()
            .server_names,
        ["api.example.com"]
    );
    assert_eq!(
        tcp_cluster(&l.filter_chains[0]).0,
        "outbound|443||api.example.com"
    );
    let fallback = l.default_filter_chain.as_ref().unwrap();
    assert_eq!(fallback.name, "PassthroughFilterChain");
    assert_eq!(tcp_cluster(fallback).0, "BlackHoleCluster");
}

#[test]
fn tls_services_without_vip_share_one_listener() {
    let services = [
        service("a.example.com", &[(443, Protocol::Https)], &[]),
        service("b.example.com", &[(443, Protocol::Tls)], &[]),
    ];
    let ls = run(&iptables(), &services, &[], OutboundPolicy::AllowAny);
    let l = find(&ls, "0.0.0.0_443");
    let snis: Vec<_> = l
        .filter_chains
        .iter()
        .map(|c| c.filter_chain_match.as_ref().unwrap().server_names.clone())
        .collect();
    assert_eq!(
        snis,
        [
            vec!["a.example.com".to_string()],
            vec!["b.example.com".to_string()]
        ]
    );
    assert_eq!(
        tcp_cluster(l.default_filter_chain.as_ref().unwrap()).0,
        "PassthroughCluster"
    );
}

#[test]
fn http_wins_over_tcp_on_a_shared_wildcard_and_reserved_ports_are_skipped() {
    let services = [
        service("a.default.svc.cluster.local", &[(8000, Protocol::Tcp)], &[]),
        service(
            "b.default.svc.cluster.local",
            &[(8000, Protocol::Http), (15001, Protocol::Http)],
            &[],
        ),
        service(
            "c.default.svc.cluster.local",
            &[(15006, Protocol::Tcp)],
            &["10.0.0.7"],
        ),
    ];
    let ls = run(&iptables(), &services, &[], OutboundPolicy::AllowAny);
    assert_eq!(
        names(&ls),
        ["0.0.0.0_8000", "virtualInbound", "virtualOutbound"]
    );
    assert_eq!(
        http_filter_names(&hcm(&find(&ls, "0.0.0.0_8000").filter_chains[0])).last(),
        Some(&ROUTER_FILTER)
    );
}

#[test]
fn passthrough_service_without_vip_listens_per_endpoint() {
    let mut headless = service(
        "db.default.svc.cluster.local",
        &[(5432, Protocol::Tcp)],
        &[],
    );
    headless.resolution = Resolution::Passthrough;
    headless.endpoints.insert(
        5432,
        vec![
            endpoint("10.1.0.2", 5432),
            endpoint("10.1.0.1", 5432),
            endpoint("10.0.0.9", 5432),
        ],
    );
    let ls = run(&iptables(), &[headless], &[], OutboundPolicy::AllowAny);
    assert_eq!(
        names(&ls),
        [
            "10.1.0.1_5432",
            "10.1.0.2_5432",
            "virtualInbound",
            "virtualOutbound"
        ]
    );
}
