//! Ports capture's explicit HTTP proxy (`mast_outbound`): hosts the mesh does not know go to
//! the dynamic forward proxy (cluster `ForwardProxyCluster` + HTTP filter, one DNS cache)
//! under ALLOW_ANY and get 502 under REGISTRY_ONLY, and `CONNECT` reaches every service port
//! (`connect_matcher` routes that terminate the tunnel), honouring VirtualService `tcp` and
//! `tls` rules. Checked field by field, then with real Envoy (`envoy --mode validate`, no
//! deprecated field, every cluster a route names present).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod rds_util;
mod support;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::ClusterDiscoveryType;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration};
use envoy_types::pb::envoy::extensions::clusters::dynamic_forward_proxy::v3::ClusterConfig;
use envoy_types::pb::envoy::extensions::clusters::dynamic_forward_proxy::v3::cluster_config::ClusterImplementationSpecifier;
use mast_model::{MeshSnapshot, ProxyNode};
use mast_xds::forward_proxy::{DNS_CACHE_NAME, FORWARD_PROXY_CLUSTER};
use mast_xds::route::{ALLOW_ANY, BLOCK_ALL, CONNECT_ROUTE, PORTS_OUTBOUND_ROUTE};
use prost::Message;
use rds_util::{action, cluster, ports_sidecar, sidecar, snapshot, table, tables, vhost, weights};
use serde_json::json;

/// TCP, TLS and HTTP services; a VirtualService splitting TCP connections to `mysql`, one with
/// only a `destinationSubnets` match (not applicable to tunnels), and a TLS rule by SNI.
const MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: any-external, namespace: default}
spec:
  hosts: ["*.external.example"]
  ports: [{name: http, number: 80, protocol: HTTP}]
  resolution: NONE
  location: MESH_EXTERNAL
---
apiVersion: v1
kind: Service
metadata: {name: tcp-echo, namespace: default}
spec:
  clusterIP: 10.96.0.30
  ports: [{name: tcp, port: 9000}]
  selector: {app: tcp-echo}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  ports:
  - {name: http, port: 80}
  - {name: redis, port: 6379}
  selector: {app: web}
---
apiVersion: v1
kind: Service
metadata: {name: mysql, namespace: default}
spec:
  ports: [{name: tcp, port: 3306}]
  selector: {app: mysql}
---
apiVersion: v1
kind: Service
metadata: {name: mysql-backup, namespace: default}
spec:
  ports: [{name: tcp, port: 3306}]
  selector: {app: mysql-backup}
---
apiVersion: v1
kind: Service
metadata: {name: legacy, namespace: default}
spec:
  ports: [{name: tcp, port: 7000}]
  selector: {app: legacy}
---
apiVersion: v1
kind: Service
metadata: {name: dns, namespace: default}
spec:
  ports: [{name: udp-dns, port: 53, protocol: UDP}]
  selector: {app: dns}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external-tls, namespace: default}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external-tls-v2, namespace: default}
spec:
  hosts: [api-v2.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 8443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mysql, namespace: default}
spec:
  hosts: [mysql]
  tcp:
  - match: [{sourceLabels: {app: other}}]
    route: [{destination: {host: legacy}}]
  - route:
    - {destination: {host: mysql}, weight: 70}
    - {destination: {host: mysql-backup}, weight: 30}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: legacy, namespace: default}
spec:
  hosts: [legacy]
  tcp:
  - match: [{destinationSubnets: [10.0.0.0/8]}]
    route: [{destination: {host: mysql}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com]
  tls:
  - match: [{sniHosts: [api.example.com]}]
    route: [{destination: {host: api-v2.example.com}}]
"#;

const REGISTRY_ONLY: &str = "
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
";

fn mesh() -> MeshSnapshot {
    snapshot(MESH)
}

fn registry_only() -> MeshSnapshot {
    snapshot(&format!("{MESH}---\n{REGISTRY_ONLY}"))
}

fn client() -> ProxyNode {
    ports_sidecar("default")
}

fn outbound_table(snap: &MeshSnapshot) -> RouteConfiguration {
    let t = tables(snap, &client());
    assert_eq!(t.len(), 1);
    table(&t, PORTS_OUTBOUND_ROUTE).clone()
}

fn clusters(snap: &MeshSnapshot, proxy: &ProxyNode) -> Vec<Cluster> {
    support::decode_all(mast_xds::generate(snap, proxy, mast_xds::CLUSTER_TYPE))
}

/// Asserts `route` is a `CONNECT` route terminating the tunnel (no timeout).
fn assert_tunnel(route: &Route) {
    let m = route.r#match.as_ref().unwrap();
    assert!(
        matches!(m.path_specifier, Some(PathSpecifier::ConnectMatcher(_))),
        "{:?} matches CONNECT only: {m:?}",
        route.name
    );
    let a = action(route);
    assert_eq!(a.upgrade_configs.len(), 1, "{:?}", route.name);
    assert_eq!(a.upgrade_configs[0].upgrade_type, "CONNECT");
    assert!(a.upgrade_configs[0].connect_config.is_some());
    assert_eq!(a.timeout.map(|t| (t.seconds, t.nanos)), Some((0, 0)));
}

#[test]
fn allow_any_sends_unknown_hosts_and_tunnels_to_the_forward_proxy() {
    let snap = mesh();
    let all = clusters(&snap, &client());
    let dfp = all
        .iter()
        .find(|c| c.name == FORWARD_PROXY_CLUSTER)
        .expect("ForwardProxyCluster in ports capture under ALLOW_ANY");
    let Some(ClusterDiscoveryType::ClusterType(t)) = &dfp.cluster_discovery_type else {
        panic!("custom cluster type")
    };
    assert_eq!(t.name, "envoy.clusters.dynamic_forward_proxy");
    let config = ClusterConfig::decode(t.typed_config.as_ref().unwrap().value.as_slice()).unwrap();
    let Some(ClusterImplementationSpecifier::DnsCacheConfig(cache)) =
        config.cluster_implementation_specifier
    else {
        panic!("DNS cache config")
    };
    assert_eq!(cache.name, DNS_CACHE_NAME);

    let rc = outbound_table(&snap);
    let catch_all = rc.virtual_hosts.last().unwrap();
    assert_eq!(catch_all.name, ALLOW_ANY);
    assert_eq!(catch_all.domains, ["*"]);
    let [connect, http] = catch_all.routes.as_slice() else {
        panic!(
            "a CONNECT route, then the HTTP route: {:?}",
            catch_all.routes
        )
    };
    assert_eq!(connect.name, "allow_any_connect");
    assert_tunnel(connect);
    assert_eq!(cluster(connect), FORWARD_PROXY_CLUSTER);
    assert_eq!(http.name, ALLOW_ANY);
    assert_eq!(cluster(http), FORWARD_PROXY_CLUSTER);
    assert!(action(http).upgrade_configs.is_empty());
}

#[test]
fn registry_only_refuses_unknown_hosts_and_tunnels_with_502() {
    let snap = registry_only();
    assert!(
        clusters(&snap, &client())
            .iter()
            .all(|c| c.name != FORWARD_PROXY_CLUSTER),
        "no forward proxy under REGISTRY_ONLY"
    );
    let rc = outbound_table(&snap);
    let catch_all = rc.virtual_hosts.last().unwrap();
    assert_eq!(catch_all.name, BLOCK_ALL);
    let [connect, http] = catch_all.routes.as_slice() else {
        panic!("{:?}", catch_all.routes)
    };
    assert!(matches!(
        connect.r#match.as_ref().unwrap().path_specifier,
        Some(PathSpecifier::ConnectMatcher(_))
    ));
    for r in [connect, http] {
        let Some(Action::DirectResponse(d)) = &r.action else {
            panic!("{:?} answers directly", r.name)
        };
        assert_eq!(d.status, 502);
    }
    // Known services still tunnel.
    let echo = vhost(&rc, "tcp-echo.default.svc.cluster.local:9000");
    assert_eq!(
        cluster(&echo.routes[0]),
        "outbound|9000||tcp-echo.default.svc.cluster.local"
    );
}

#[test]
fn iptables_capture_keeps_the_passthrough_cluster_and_no_connect_routes() {
    let snap = mesh();
    let proxy = sidecar("default", json!({}));
    assert!(
        clusters(&snap, &proxy)
            .iter()
            .all(|c| c.name != FORWARD_PROXY_CLUSTER)
    );
    for rc in tables(&snap, &proxy) {
        let catch_all = rc.virtual_hosts.last().unwrap();
        assert_eq!(catch_all.routes.len(), 1, "{}", rc.name);
        assert_eq!(cluster(&catch_all.routes[0]), "PassthroughCluster");
        let connects = rc
            .virtual_hosts
            .iter()
            .flat_map(|v| &v.routes)
            .filter(|r| !action_upgrades(r).is_empty())
            .count();
        assert_eq!(connects, 0, "table {}", rc.name);
    }
}

fn action_upgrades(route: &Route) -> Vec<String> {
    match &route.action {
        Some(Action::Route(a)) => a
            .upgrade_configs
            .iter()
            .map(|u| u.upgrade_type.clone())
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn tcp_ports_get_a_connect_virtual_host_with_port_domains() {
    let rc = outbound_table(&mesh());
    let v = vhost(&rc, "tcp-echo.default.svc.cluster.local:9000");
    let mut domains = v.domains.clone();
    domains.sort();
    assert_eq!(
        domains,
        [
            "10.96.0.30:9000",
            "tcp-echo.default.svc.cluster.local:9000",
            "tcp-echo.default.svc:9000",
            "tcp-echo.default:9000",
            "tcp-echo:9000",
        ]
    );
    let [route] = v.routes.as_slice() else {
        panic!("{:?}", v.routes)
    };
    assert_eq!(route.name, CONNECT_ROUTE);
    assert_tunnel(route);
    assert_eq!(
        cluster(route),
        "outbound|9000||tcp-echo.default.svc.cluster.local"
    );
    // Other non-HTTP protocols tunnel too; UDP does not.
    let redis = vhost(&rc, "web.default.svc.cluster.local:6379");
    assert_tunnel(&redis.routes[0]);
    assert!(
        rc.virtual_hosts.iter().all(|v| !v.name.starts_with("dns.")),
        "no CONNECT for UDP ports"
    );
    let mut all: Vec<&String> = rc.virtual_hosts.iter().flat_map(|v| &v.domains).collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "every domain appears once");
}

#[test]
fn tcp_rules_split_tunnels_by_weight_and_subnet_rules_are_skipped() {
    let rc = outbound_table(&mesh());
    let mysql = vhost(&rc, "mysql.default.svc.cluster.local:3306");
    assert_tunnel(&mysql.routes[0]);
    // The sourceLabels rule is for another client; the catch-all rule splits 70/30.
    assert_eq!(
        weights(&mysql.routes[0]),
        [
            (
                "outbound|3306||mysql.default.svc.cluster.local".to_owned(),
                70
            ),
            (
                "outbound|3306||mysql-backup.default.svc.cluster.local".to_owned(),
                30
            ),
        ]
    );
    // A rule matching only destination subnets cannot apply to a tunnel routed by name.
    let legacy = vhost(&rc, "legacy.default.svc.cluster.local:7000");
    assert_eq!(
        cluster(&legacy.routes[0]),
        "outbound|7000||legacy.default.svc.cluster.local"
    );
    // The sourceLabels rule applies to a client carrying them.
    let md = json!({"NAMESPACE": "default", "LABELS": {"app": "other"}, "MAST_CAPTURE_MODE": "ports", "MAST_OUTBOUND_PORT": "15101"});
    let other = ProxyNode::parse(
        "sidecar~127.0.0.1~other.default~default.svc.cluster.local",
        &md,
    )
    .unwrap();
    let t = tables(&mesh(), &other);
    let v = vhost(
        table(&t, PORTS_OUTBOUND_ROUTE),
        "mysql.default.svc.cluster.local:3306",
    );
    assert_eq!(
        cluster(&v.routes[0]),
        "outbound|7000||legacy.default.svc.cluster.local"
    );
}

#[test]
fn tls_rules_apply_when_their_sni_hosts_cover_the_host() {
    let rc = outbound_table(&mesh());
    let api = vhost(&rc, "api.example.com:443");
    assert_eq!(api.domains, ["api.example.com:443"]);
    assert_tunnel(&api.routes[0]);
    // The destination's only port (8443), not the port tunnelled to.
    assert_eq!(cluster(&api.routes[0]), "outbound|8443||api-v2.example.com");
    let v2 = vhost(&rc, "api-v2.example.com:8443");
    assert_eq!(cluster(&v2.routes[0]), "outbound|8443||api-v2.example.com");
}

#[test]
fn http_ports_accept_connect_to_their_own_cluster_first() {
    let rc = outbound_table(&mesh());
    let web = vhost(&rc, "web.default.svc.cluster.local:80");
    assert!(web.domains.iter().any(|d| d == "web:80"));
    let [connect, default] = web.routes.as_slice() else {
        panic!("{:?}", web.routes)
    };
    assert_eq!(connect.name, CONNECT_ROUTE);
    assert_tunnel(connect);
    assert_eq!(
        cluster(connect),
        "outbound|80||web.default.svc.cluster.local"
    );
    assert_eq!(default.name, "default");
    assert!(action(default).upgrade_configs.is_empty());
}

#[test]
fn envoy_accepts_the_forward_proxy_and_connect_routes() {
    for (label, snap) in [
        ("ports-proxy-allow-any", mesh()),
        ("ports-proxy-registry-only", registry_only()),
    ] {
        let res = support::Resources::generated(&snap, &client());
        assert_eq!(
            res.listeners.len(),
            1,
            "{label}: mast_outbound only (no inbound ports)"
        );
        support::assert_envoy_accepts_current(label, &res);
        support::assert_routes_resolve(&format!("{label}-resolve"), &res);
    }
}

#[test]
fn envoy_refuses_a_filter_and_cluster_with_different_dns_caches() {
    // Proof that validation instantiates both: Envoy requires one cache configuration per name.
    let mut res = support::Resources::generated(&mesh(), &client());
    let dfp = res
        .clusters
        .iter_mut()
        .find(|c| c.name == FORWARD_PROXY_CLUSTER)
        .unwrap();
    let Some(ClusterDiscoveryType::ClusterType(t)) = &mut dfp.cluster_discovery_type else {
        panic!()
    };
    let mut config =
        ClusterConfig::decode(t.typed_config.as_ref().unwrap().value.as_slice()).unwrap();
    if let Some(ClusterImplementationSpecifier::DnsCacheConfig(c)) =
        &mut config.cluster_implementation_specifier
    {
        c.max_hosts = Some(envoy_types::pb::google::protobuf::UInt32Value { value: 7 });
    }
    t.typed_config = Some(support::any(config));
    let label = "ports-proxy-dns-mismatch";
    match support::validate(label, &res) {
        Ok(support::Validation::Skipped(why)) => eprintln!("SKIPPED: {why}"),
        Ok(support::Validation::Passed(out)) => {
            panic!("Envoy accepted two configurations of one DNS cache: {out}")
        }
        Err(e) => {
            let want = format!("DNS cache '{DNS_CACHE_NAME}' with different settings");
            assert!(e.contains(&want), "{e}");
            support::remove_kept(label);
        }
    }
}

/// A `resolution: NONE` service would be ORIGINAL_DST; on an explicit proxy that is the
/// listener itself, so its cluster is the dynamic forward proxy instead.
#[test]
fn passthrough_services_use_the_forward_proxy_in_ports_mode() {
    let all = clusters(&mesh(), &client());
    let c = all
        .iter()
        .find(|c| c.name == "outbound|80||*.external.example")
        .expect("cluster");
    match &c.cluster_discovery_type {
        Some(ClusterDiscoveryType::ClusterType(t)) => {
            assert_eq!(t.name, "envoy.clusters.dynamic_forward_proxy");
        }
        other => panic!("expected the dynamic forward proxy, got {other:?}"),
    }
}
