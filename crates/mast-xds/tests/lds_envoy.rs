//! Real Envoy accepts the listeners Mast generates (`envoy --mode validate` on a binary
//! bootstrap, see `support`), together with the clusters and routes the other generators
//! produce for the same proxy. Clusters a listener or route names that the cluster generator
//! does not (yet) emit are added as empty STATIC placeholders, so validation exercises the
//! listeners whatever the state of CDS.

mod support;

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::{Filter, Listener};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier as TcpCluster;
use envoy_types::pb::google::protobuf::Duration;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
use prost::{Message, Name};
use serde_json::json;

const MESH: &str = include_str!("lds_mesh.yaml");

fn snapshot() -> MeshSnapshot {
    let out = mast_config::load_str(MESH, "lds_mesh.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "load: {:?}", out.diagnostics);
    MeshSnapshot::build(&out.resources, SnapshotOptions::default(), 1)
}

/// The filter's config when it is a `T`.
fn typed<T: Message + Name + Default>(f: &Filter) -> Option<T> {
    match &f.config_type {
        Some(ConfigType::TypedConfig(any)) if any.type_url == T::type_url() => {
            Some(T::decode(any.value.as_slice()).expect("typed config decodes"))
        }
        _ => None,
    }
}

fn route_clusters(rc: &RouteConfiguration, out: &mut BTreeSet<String>) {
    for route in rc.virtual_hosts.iter().flat_map(|v| &v.routes) {
        let Some(Action::Route(ra)) = &route.action else {
            continue;
        };
        match &ra.cluster_specifier {
            Some(ClusterSpecifier::Cluster(c)) => {
                out.insert(c.clone());
            }
            Some(ClusterSpecifier::WeightedClusters(w)) => {
                out.extend(w.clusters.iter().map(|c| c.name.clone()))
            }
            _ => {}
        }
        out.extend(ra.request_mirror_policies.iter().map(|m| m.cluster.clone()));
    }
}

fn listener_clusters(l: &Listener, out: &mut BTreeSet<String>) {
    for f in l
        .filter_chains
        .iter()
        .chain(&l.default_filter_chain)
        .flat_map(|c| &c.filters)
    {
        if let Some(t) = typed::<TcpProxy>(f) {
            match t.cluster_specifier {
                Some(TcpCluster::Cluster(c)) => {
                    out.insert(c);
                }
                Some(TcpCluster::WeightedClusters(w)) => {
                    out.extend(w.clusters.into_iter().map(|c| c.name))
                }
                None => {}
            }
        }
        if let Some(h) = typed::<HttpConnectionManager>(f)
            && let Some(RouteSpecifier::RouteConfig(rc)) = &h.route_specifier
        {
            route_clusters(rc, out);
        }
    }
}

fn placeholder(name: &str) -> Cluster {
    Cluster {
        name: name.into(),
        connect_timeout: Some(Duration {
            seconds: 1,
            nanos: 0,
        }),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Checks `res` twice: the listeners alone (routes left to RDS, placeholder clusters) with no
/// deprecated field allowed, then everything together.
fn assert_accepted(label: &str, res: &support::Resources) {
    let listeners_only = support::Resources {
        routes: Vec::new(),
        ..res.clone()
    };
    support::assert_envoy_accepts_current(&format!("{label}-listeners"), &listeners_only);
    support::assert_envoy_accepts(label, res);
}

/// Everything generated for `proxy`, plus placeholders for clusters named but not generated.
fn resources(snap: &MeshSnapshot, proxy: &ProxyNode) -> support::Resources {
    let mut res = support::Resources::generated(snap, proxy);
    let mut named = BTreeSet::new();
    res.listeners
        .iter()
        .for_each(|l| listener_clusters(l, &mut named));
    res.routes
        .iter()
        .for_each(|r| route_clusters(r, &mut named));
    let have: BTreeSet<String> = res.clusters.iter().map(|c| c.name.clone()).collect();
    res.clusters
        .extend(named.difference(&have).map(|n| placeholder(n)));
    res
}

#[test]
fn envoy_accepts_iptables_listeners() {
    let snap = snapshot();
    let proxy = ProxyNode::parse(
        "sidecar~10.0.0.9~reviews-v1.default~default.svc.cluster.local",
        &json!({"NAMESPACE": "default", "LABELS": {"app": "reviews"}}),
    )
    .unwrap();
    let res = resources(&snap, &proxy);
    assert!(
        res.listeners.len() >= 9,
        "listeners: {:?}",
        res.listeners.iter().map(|l| &l.name).collect::<Vec<_>>()
    );
    assert_accepted("lds-iptables", &res);

    // The check is real: the same listeners with one filter chain repeated are refused.
    let mut bad = res.clone();
    let tls = bad
        .listeners
        .iter_mut()
        .find(|l| l.name == "0.0.0.0_443")
        .unwrap();
    tls.filter_chains.push(tls.filter_chains[0].clone());
    match support::validate("lds-iptables-bad", &bad) {
        Ok(support::Validation::Skipped(why)) => eprintln!("SKIPPED: {why}"),
        Ok(support::Validation::Passed(out)) => {
            panic!("Envoy accepted a repeated filter chain: {out}")
        }
        Err(e) => {
            assert!(e.contains("same matching rules"), "{e}");
            // The support module keeps a rejected bootstrap for inspection; this one was expected.
            if let Some(path) = e
                .split(" rejected ")
                .nth(1)
                .and_then(|rest| rest.split(":\n").next())
            {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

#[test]
fn envoy_accepts_ports_mode_listeners() {
    let snap = snapshot();
    let md = json!({"NAMESPACE": "default", "LABELS": {"app": "reviews"}, "MAST_CAPTURE_MODE": "ports",
        "MAST_OUTBOUND_PORT": "15101", "MAST_INBOUND_PORTS": "9080=15106,9091=15107,9100=15108"});
    let proxy = ProxyNode::parse(
        "sidecar~127.0.0.1~reviews-v1.default~default.svc.cluster.local",
        &md,
    )
    .unwrap();
    let res = resources(&snap, &proxy);
    assert_eq!(res.listeners.len(), 4);
    // The dynamic forward proxy is validated together: its cluster (generated, not a
    // placeholder) and its HTTP filter on `mast_outbound`, sharing one DNS cache.
    let dfp = res
        .clusters
        .iter()
        .find(|c| c.name == mast_xds::forward_proxy::FORWARD_PROXY_CLUSTER)
        .expect("ForwardProxyCluster");
    assert!(
        dfp.load_assignment.is_none(),
        "the generated cluster, not a placeholder"
    );
    let outbound = res
        .listeners
        .iter()
        .find(|l| l.name == "mast_outbound")
        .unwrap();
    let hcm = typed::<HttpConnectionManager>(&outbound.filter_chains[0].filters[0]).unwrap();
    let filters: Vec<&str> = hcm.http_filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        filters,
        [
            "envoy.filters.http.fault",
            "envoy.filters.http.cors",
            mast_xds::forward_proxy::DFP_FILTER,
            "envoy.filters.http.router"
        ]
    );
    assert_accepted("lds-ports", &res);
}

#[test]
fn envoy_accepts_registry_only_listeners() {
    let mut yaml = MESH.to_owned();
    yaml.push_str(
        "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: default}\n\
         spec:\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n",
    );
    let out = mast_config::load_str(&yaml, "lds_mesh.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "load: {:?}", out.diagnostics);
    let snap = MeshSnapshot::build(&out.resources, SnapshotOptions::default(), 2);
    let proxy = ProxyNode::parse(
        "sidecar~10.0.0.8~client.default~default.svc.cluster.local",
        &json!({"NAMESPACE": "default"}),
    )
    .unwrap();
    let res = resources(&snap, &proxy);
    let vo = res
        .listeners
        .iter()
        .find(|l| l.name == "virtualOutbound")
        .unwrap();
    let mut named = BTreeSet::new();
    listener_clusters(vo, &mut named);
    assert_eq!(named, BTreeSet::from(["BlackHoleCluster".to_string()]));
    assert_accepted("lds-registry-only", &res);
}
