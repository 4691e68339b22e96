//! Unit tests: VirtualService `tcp` and `tls` routes on outbound TCP/TLS listeners.

use envoy_types::pb::envoy::config::listener::v3::FilterChain;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier as TcpCluster;
use mast_model::{OutboundPolicy, Protocol};
use serde_json::json;

use super::filters::TLS_INSPECTOR_FILTER;
use super::tests::{find, iptables, run, service, tcp_cluster, typed, vs};

fn prefixes(chain: &FilterChain) -> Vec<String> {
    chain
        .filter_chain_match
        .as_ref()
        .map(|m| {
            m.prefix_ranges
                .iter()
                .map(|r| {
                    format!(
                        "{}/{}",
                        r.address_prefix,
                        r.prefix_len.as_ref().unwrap().value
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn sni(chain: &FilterChain) -> Vec<String> {
    chain
        .filter_chain_match
        .as_ref()
        .map(|m| m.server_names.clone())
        .unwrap_or_default()
}

fn mysql() -> mast_model::Service {
    service(
        "mysql.default.svc.cluster.local",
        &[(3306, Protocol::Tcp)],
        &["10.0.0.2"],
    )
}

#[test]
fn weighted_tcp_route_splits_by_weight() {
    let v1 = service(
        "mysql-v1.default.svc.cluster.local",
        &[(3306, Protocol::Tcp)],
        &["10.0.1.1"],
    );
    let rule = vs(
        "mysql",
        json!({"hosts": ["mysql"], "tcp": [{"route": [
        {"destination": {"host": "mysql-v1"}, "weight": 80},
        {"destination": {"host": "mysql", "subset": "v2"}, "weight": 20},
        {"destination": {"host": "mysql", "subset": "v3"}, "weight": 0}]}]}),
    );
    let ls = run(
        &iptables(),
        &[mysql(), v1],
        &[rule],
        OutboundPolicy::AllowAny,
    );
    let l = find(&ls, "10.0.0.2_3306");
    assert_eq!(l.filter_chains.len(), 1);
    let t: TcpProxy = typed(l.filter_chains[0].filters.last().unwrap());
    assert_eq!(t.stat_prefix, "mysql.default");
    let Some(TcpCluster::WeightedClusters(w)) = t.cluster_specifier else {
        panic!("not weighted")
    };
    let got: Vec<(&str, u32)> = w
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight))
        .collect();
    assert_eq!(
        got,
        [
            ("outbound|3306||mysql-v1.default.svc.cluster.local", 80),
            ("outbound|3306|v2|mysql.default.svc.cluster.local", 20)
        ]
    );
    // The VIP listener of mysql-v1 has no VirtualService: its own cluster.
    assert_eq!(
        tcp_cluster(&find(&ls, "10.0.1.1_3306").filter_chains[0]).0,
        "outbound|3306||mysql-v1.default.svc.cluster.local"
    );
}

#[test]
fn tcp_route_with_subnets_adds_a_prefix_chain_before_the_default() {
    let rule = vs(
        "mysql",
        json!({"hosts": ["mysql.default.svc.cluster.local"], "tcp": [
        {"match": [{"destinationSubnets": ["10.9.0.7/16"]}, {"port": 3306, "destinationSubnets": ["10.8.0.0/16"]}],
         "route": [{"destination": {"host": "backup", "port": {"number": 3307}}}]},
        {"match": [{"sourceLabels": {"app": "other"}}], "route": [{"destination": {"host": "never"}}]},
        {"match": [{"port": 9999}], "route": [{"destination": {"host": "never"}}]}]}),
    );
    let ls = run(&iptables(), &[mysql()], &[rule], OutboundPolicy::AllowAny);
    let l = find(&ls, "10.0.0.2_3306");
    assert_eq!(l.filter_chains.len(), 1);
    assert_eq!(
        prefixes(&l.filter_chains[0]),
        ["10.8.0.0/16", "10.9.0.0/16"]
    );
    assert_eq!(
        tcp_cluster(&l.filter_chains[0]).0,
        "outbound|3307||backup.default.svc.cluster.local"
    );
    let default = l.default_filter_chain.as_ref().unwrap();
    assert_eq!(
        tcp_cluster(default).0,
        "outbound|3306||mysql.default.svc.cluster.local"
    );
}

#[test]
fn first_catch_all_tcp_rule_wins() {
    let rule = vs(
        "mysql",
        json!({"hosts": ["mysql"], "tcp": [
        {"match": [{"sourceLabels": {"app": "client"}, "port": 3306}], "route": [{"destination": {"host": "first"}}]},
        {"route": [{"destination": {"host": "second"}}]}]}),
    );
    let other = vs(
        "later",
        json!({"hosts": ["*.svc.cluster.local"], "tcp": [{"route": [{"destination": {"host": "third"}}]}]}),
    );
    let ls = run(
        &iptables(),
        &[mysql()],
        &[rule, other],
        OutboundPolicy::AllowAny,
    );
    let l = find(&ls, "10.0.0.2_3306");
    assert_eq!(l.filter_chains.len(), 1);
    assert!(l.default_filter_chain.is_none());
    assert_eq!(
        tcp_cluster(&l.filter_chains[0]).0,
        "outbound|3306||first.default.svc.cluster.local"
    );
}

#[test]
fn destination_port_defaults_to_the_only_port_of_the_target() {
    let single = service(
        "single.default.svc.cluster.local",
        &[(5000, Protocol::Tcp)],
        &["10.0.0.5"],
    );
    let rule = vs(
        "mysql",
        json!({"hosts": ["mysql"], "tcp": [{"route": [{"destination": {"host": "single"}}]}]}),
    );
    let ls = run(
        &iptables(),
        &[mysql(), single],
        &[rule],
        OutboundPolicy::AllowAny,
    );
    let c = "outbound|5000||single.default.svc.cluster.local";
    assert_eq!(
        tcp_cluster(&find(&ls, "10.0.0.2_3306").filter_chains[0]),
        (c.into(), c.into())
    );
}

#[test]
fn tls_routes_become_sni_chains() {
    let ext = service("api.example.com", &[(443, Protocol::Tls)], &[]);
    let rule = vs(
        "api",
        json!({"hosts": ["api.example.com", "*.api.example.com"], "tls": [
        {"match": [{"sniHosts": ["api.example.com"]}, {"sniHosts": ["api.example.com"], "sourceLabels": {"app": "client"}}],
         "route": [{"destination": {"host": "api.example.com", "subset": "eu"}}]},
        {"match": [{"sniHosts": ["v2.api.example.com"], "destinationSubnets": ["192.168.0.0/24"]}],
         "route": [{"destination": {"host": "api.example.com", "subset": "v2"}}]},
        {"match": [{"sniHosts": ["x.api.example.com"], "sourceNamespace": "other"}],
         "route": [{"destination": {"host": "never"}}]}]}),
    );
    let ls = run(&iptables(), &[ext], &[rule], OutboundPolicy::AllowAny);
    let l = find(&ls, "0.0.0.0_443");
    assert_eq!(
        l.listener_filters
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        [TLS_INSPECTOR_FILTER]
    );
    assert_eq!(l.filter_chains.len(), 2);
    assert_eq!(sni(&l.filter_chains[0]), ["api.example.com"]);
    assert_eq!(
        tcp_cluster(&l.filter_chains[0]).0,
        "outbound|443|eu|api.example.com"
    );
    assert_eq!(sni(&l.filter_chains[1]), ["v2.api.example.com"]);
    assert_eq!(prefixes(&l.filter_chains[1]), ["192.168.0.0/24"]);
    assert_eq!(
        tcp_cluster(&l.filter_chains[1]).0,
        "outbound|443|v2|api.example.com"
    );
    assert_eq!(
        tcp_cluster(l.default_filter_chain.as_ref().unwrap()).0,
        "PassthroughCluster"
    );
}

#[test]
fn tls_service_with_cidr_address_matches_prefix_and_sni() {
    let ext = service(
        "net.example.com",
        &[(443, Protocol::Https)],
        &["192.168.7.0/24"],
    );
    let ls = run(&iptables(), &[ext], &[], OutboundPolicy::AllowAny);
    let l = find(&ls, "0.0.0.0_443");
    assert_eq!(sni(&l.filter_chains[0]), ["net.example.com"]);
    assert_eq!(prefixes(&l.filter_chains[0]), ["192.168.7.0/24"]);
}

#[test]
fn tls_with_vip_and_no_route_needs_no_inspector() {
    let ext = service("vip.example.com", &[(443, Protocol::Tls)], &["240.0.0.1"]);
    let ls = run(&iptables(), &[ext], &[], OutboundPolicy::AllowAny);
    let l = find(&ls, "240.0.0.1_443");
    assert!(l.listener_filters.is_empty());
    assert_eq!(l.filter_chains.len(), 1);
    assert!(l.filter_chains[0].filter_chain_match.is_none());
}
