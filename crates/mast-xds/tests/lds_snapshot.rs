//! LDS from a real snapshot (YAML → `MeshSnapshot` → `mast_xds::generate`): the listener set a
//! sidecar gets in each capture mode, and the VirtualService TCP/TLS routes on them.

use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
use prost::Message;
use serde_json::json;

const MESH: &str = include_str!("lds_mesh.yaml");

fn snapshot() -> MeshSnapshot {
    let out = mast_config::load_str(MESH, "lds_mesh.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "load: {:?}", out.diagnostics);
    let errors: Vec<_> = mast_config::validate::validate_all(&out.resources)
        .into_iter()
        .filter(|d| d.level == mast_config::Level::Error)
        .collect();
    assert!(errors.is_empty(), "validation: {errors:?}");
    MeshSnapshot::build(&out.resources, SnapshotOptions::default(), 1)
}

fn proxy(ip: &str, md: serde_json::Value) -> ProxyNode {
    ProxyNode::parse(
        &format!("sidecar~{ip}~reviews-v1.default~default.svc.cluster.local"),
        &md,
    )
    .expect("node id parses")
}

fn listeners(snap: &MeshSnapshot, p: &ProxyNode) -> Vec<Listener> {
    mast_xds::generate(snap, p, mast_xds::LISTENER_TYPE)
        .into_iter()
        .map(|r| {
            assert_eq!(r.resource.type_url, mast_xds::LISTENER_TYPE);
            let l = Listener::decode(r.resource.value.as_slice()).expect("listener decodes");
            assert_eq!(l.name, r.name);
            l
        })
        .collect()
}

fn names(ls: &[Listener]) -> Vec<&str> {
    ls.iter().map(|l| l.name.as_str()).collect()
}

fn find<'a>(ls: &'a [Listener], name: &str) -> &'a Listener {
    ls.iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", names(ls)))
}

fn tcp_proxy(l: &Listener, chain: usize) -> TcpProxy {
    let f = l.filter_chains[chain]
        .filters
        .last()
        .expect("chain has filters");
    let Some(ConfigType::TypedConfig(any)) = &f.config_type else {
        panic!()
    };
    TcpProxy::decode(any.value.as_slice()).expect("tcp_proxy decodes")
}

#[test]
fn iptables_sidecar_gets_capture_and_per_port_listeners() {
    let snap = snapshot();
    let p = proxy(
        "10.0.0.9",
        json!({"NAMESPACE": "default", "LABELS": {"app": "reviews"}}),
    );
    let ls = listeners(&snap, &p);
    assert_eq!(
        names(&ls),
        [
            "0.0.0.0_443",
            "0.0.0.0_80",
            "0.0.0.0_9080",
            "0.0.0.0_9090",
            "10.96.0.10_9100",
            "10.96.0.20_3306",
            "10.96.0.21_3306",
            "virtualInbound",
            "virtualOutbound",
        ]
    );
    let mut inbound: Vec<&str> = find(&ls, "virtualInbound")
        .filter_chains
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    // PERMISSIVE (no PeerAuthentication): each port has an mTLS and a plaintext chain.
    inbound.dedup();
    assert_eq!(
        inbound,
        [
            "virtualInbound-blackhole",
            "0.0.0.0_9080",
            "0.0.0.0_9091",
            "0.0.0.0_9100"
        ]
    );

    // mysql: the tcp route with a subnet match splits 70/30; the default chain is mysql's own.
    let mysql = find(&ls, "10.96.0.20_3306");
    let Some(ClusterSpecifier::WeightedClusters(w)) = tcp_proxy(mysql, 0).cluster_specifier else {
        panic!()
    };
    let split: Vec<(&str, u32)> = w
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight))
        .collect();
    assert_eq!(
        split,
        [
            ("outbound|3306||mysql.default.svc.cluster.local", 70),
            ("outbound|3306||mysql-backup.default.svc.cluster.local", 30)
        ]
    );
    assert!(mysql.default_filter_chain.is_some());

    // 443: the TLS route for api.example.com and b.example.com's own SNI chain share a listener.
    let tls = find(&ls, "0.0.0.0_443");
    let snis: Vec<Vec<String>> = tls
        .filter_chains
        .iter()
        .map(|c| {
            c.filter_chain_match
                .clone()
                .unwrap_or_default()
                .server_names
        })
        .collect();
    assert_eq!(
        snis,
        [
            vec!["api.example.com".to_string()],
            vec!["b.example.com".to_string()]
        ]
    );
}

#[test]
fn ports_mode_sidecar_gets_explicit_listeners_only() {
    let snap = snapshot();
    let md = json!({"NAMESPACE": "default", "LABELS": {"app": "reviews"}, "MAST_CAPTURE_MODE": "ports",
        "MAST_OUTBOUND_PORT": "15101", "MAST_INBOUND_PORTS": "9080=15106,9091=15107,9100=15108"});
    let ls = listeners(&snap, &proxy("127.0.0.1", md));
    assert_eq!(
        names(&ls),
        [
            "mast_inbound_9080",
            "mast_inbound_9091",
            "mast_inbound_9100",
            "mast_outbound"
        ]
    );
}
