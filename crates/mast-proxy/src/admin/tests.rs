//! Every endpoint over a real socket, with resources put into the xDS cache directly.

use std::sync::Arc;

use clap::Parser as _;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::util::pack_any;
use mast_test_support::{HttpRequest, HttpResponse, http_get_direct};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde_json::Value;

use super::*;
use crate::bootstrap::Args;
use crate::xds::{CLUSTER_TYPE, ENDPOINT_TYPE, Handler, Resource, Update};

struct Accept;
impl Handler for Accept {
    fn apply(&self, _: &str, _: &Update) -> Result<(), String> {
        Ok(())
    }
}

const CLUSTER: &str = "outbound|80||a.default.svc.cluster.local";

fn cluster_resources() -> (Resource, Resource) {
    let cluster = Cluster {
        name: CLUSTER.into(),
        ..Cluster::default()
    };
    let endpoint = LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: "127.0.0.1".into(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(8080)),
                    ..SocketAddress::default()
                })),
            }),
            ..Endpoint::default()
        })),
        ..LbEndpoint::default()
    };
    let cla = ClusterLoadAssignment {
        cluster_name: CLUSTER.into(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![endpoint],
            ..Default::default()
        }],
        ..ClusterLoadAssignment::default()
    };
    let r = |name: &str, value| Resource {
        name: name.into(),
        version: "7".into(),
        value,
    };
    (r(CLUSTER, pack_any(cluster)), r(CLUSTER, pack_any(cla)))
}

struct Servers {
    admin: std::net::SocketAddr,
    health: std::net::SocketAddr,
    state: AdminState,
}

async fn start() -> Servers {
    let bootstrap = Args::parse_from([
        "mast-proxy",
        "--workload",
        "a",
        "--admin-port",
        "0",
        "--health-port",
        "0",
    ])
    .resolve()
    .unwrap();
    let xds = Arc::new(XdsClient::new(
        "127.0.0.1:1",
        bootstrap.node.clone(),
        true,
        Arc::new(Accept),
    ));
    let (c, e) = cluster_resources();
    xds.accept_for_test(CLUSTER_TYPE, vec![c], "7");
    xds.accept_for_test(ENDPOINT_TYPE, vec![e], "7");
    let mut registry = Registry::default();
    let family = Family::<Vec<(String, String)>, Counter>::default();
    registry.register("envoy_cluster_upstream_rq", "requests", family.clone());
    family
        .get_or_create(&vec![("envoy_cluster_name".into(), CLUSTER.into())])
        .inc_by(3);
    let state = AdminState::new(xds, Signals::new(), Arc::new(registry), Arc::new(bootstrap));
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let health = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (admin_addr, health_addr) = (admin.local_addr().unwrap(), health.local_addr().unwrap());
    tokio::spawn(serve_admin_on(admin, state.clone()));
    tokio::spawn(serve_health_on(health, state.clone()));
    Servers {
        admin: admin_addr,
        health: health_addr,
        state,
    }
}

async fn get(addr: std::net::SocketAddr, path: &str) -> HttpResponse {
    http_get_direct(addr, path, &[]).await.unwrap()
}

async fn post(addr: std::net::SocketAddr, path: &str) -> HttpResponse {
    HttpRequest::new("POST", path).direct(addr).await.unwrap()
}

fn json_of(r: &HttpResponse) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

#[tokio::test]
async fn ready_health_drain_and_quit() {
    let s = start().await;
    let r = get(s.admin, "/ready").await;
    assert_eq!((r.status, r.text()), (503, "PRE_INITIALIZING\n".into()));
    assert_eq!(get(s.health, "/healthz/ready").await.status, 503);
    s.state.signals.set_ready(true);
    let r = get(s.admin, "/ready").await;
    assert_eq!((r.status, r.text()), (200, "LIVE\n".into()));
    assert_eq!(get(s.health, "/healthz/ready").await.status, 200);
    assert_eq!(
        json_of(&get(s.admin, "/server_info").await)["state"],
        "LIVE"
    );

    assert_eq!(get(s.admin, "/drain_listeners").await.status, 405);
    assert!(!s.state.signals.is_draining());
    assert_eq!(post(s.admin, "/drain_listeners").await.status, 200);
    assert!(s.state.signals.is_draining());
    assert_eq!(get(s.health, "/healthz/ready").await.status, 503);
    assert_eq!(
        json_of(&get(s.admin, "/server_info").await)["state"],
        "DRAINING"
    );

    let mut quit = s.state.signals.shutdown();
    assert_eq!(post(s.admin, "/quitquitquit").await.status, 200);
    assert!(*quit.borrow_and_update());
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        http_get_direct(s.admin, "/ready", &[]).await.is_err(),
        "stops accepting"
    );
}

#[tokio::test]
async fn config_dump_and_clusters_in_envoys_shape() {
    let s = start().await;
    let dump = json_of(&get(s.admin, "/config_dump").await);
    let configs = dump["configs"].as_array().unwrap();
    let types: Vec<&str> = configs
        .iter()
        .map(|c| c["@type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
            "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
            "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
            "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
            "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
        ]
    );
    assert_eq!(
        configs[0]["bootstrap"]["node"]["id"],
        s.state.bootstrap.node.id.as_str()
    );
    let cluster = &configs[1]["dynamic_active_clusters"][0];
    assert_eq!(cluster["cluster"]["name"], CLUSTER);
    assert_eq!(cluster["version_info"], "7");
    let with_eds = json_of(&get(s.admin, "/config_dump?include_eds").await);
    let eds = &with_eds["configs"][2];
    assert_eq!(
        eds["@type"],
        "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump"
    );
    assert_eq!(
        eds["dynamic_endpoint_configs"][0]["endpoint_config"]["cluster_name"],
        CLUSTER
    );

    let clusters = json_of(&get(s.admin, "/clusters?format=json").await);
    let host = &clusters["cluster_statuses"][0]["host_statuses"][0];
    assert_eq!(host["address"]["socket_address"]["port_value"], 8080);
    assert_eq!(host["health_status"]["eds_health_status"], "HEALTHY");
    let plain = get(s.admin, "/clusters").await.text();
    assert_eq!(
        plain,
        format!("{CLUSTER}::127.0.0.1:8080::health_flags::healthy\n")
    );
}

#[tokio::test]
async fn stats_in_both_forms() {
    let s = start().await;
    let prom = get(s.admin, "/stats/prometheus").await.text();
    assert!(
        prom.contains(&format!(
            "envoy_cluster_upstream_rq_total{{envoy_cluster_name=\"{CLUSTER}\"}} 3"
        )),
        "{prom}"
    );
    assert!(
        prom.contains("envoy_cluster_manager_cds_update_success 1"),
        "{prom}"
    );
    assert!(prom.ends_with("# EOF\n"));
    let name = format!("cluster.{CLUSTER}.upstream_rq_total");
    let filter = format!(
        "/stats?filter=^{}$",
        name.replace('.', "\\.").replace('|', "\\|")
    );
    let plain = get(s.admin, &filter).await.text();
    assert_eq!(plain, format!("{name}: 3\n"));
    let all = get(s.admin, "/stats").await.text();
    assert!(
        all.contains("cluster_manager.cds.update_success: 1\n"),
        "{all}"
    );
    assert!(all.contains("control_plane.connected_state: 0\n"), "{all}");
    assert_eq!(get(s.admin, "/stats?filter=(").await.status, 400);
    assert_eq!(get(s.admin, "/nope").await.status, 404);
}
