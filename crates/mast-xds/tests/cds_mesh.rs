//! CDS from a whole mesh in Istio YAML: which clusters exist for a client sidecar, a serving
//! sidecar and a gateway, and how each DestinationRule setting shows up in them.

mod cds_common;

use cds_common::{
    client, cluster, gateway, kind, mesh, reviews, reviews_v1, reviews_v2_ports_mode,
};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{DiscoveryType, LbConfig, LbPolicy};
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::UpstreamProtocolOptions;
use mast_xds::cluster::clusters;
use prost::Message;

const HTTP_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

fn http_options(c: &Cluster) -> Option<HttpProtocolOptions> {
    let any = c.typed_extension_protocol_options.get(HTTP_OPTIONS)?;
    Some(HttpProtocolOptions::decode(any.value.as_slice()).expect("decodes"))
}

fn lb(c: &Cluster) -> LbPolicy {
    LbPolicy::try_from(c.lb_policy).expect("known policy")
}

#[test]
fn client_sidecar_gets_every_service_port_and_subset() {
    let all = clusters(&mesh(), &client());
    let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by name");
    for want in [
        reviews(9080, ""),
        reviews(9080, "v1"),
        reviews(9080, "v2"),
        reviews(9080, "v3"),
        reviews(9080, "none"),
        reviews(9090, ""),
        reviews(5432, "v1"),
        "outbound|9080||ratings.default.svc.cluster.local".into(),
        "outbound|80||httpbin.org".into(),
        "outbound|7000||legacy.internal".into(),
        "outbound|443||secure.example.com".into(),
        "BlackHoleCluster".into(),
        "PassthroughCluster".into(),
        "InboundPassthroughCluster".into(),
    ] {
        assert!(
            names.contains(&want.as_str()),
            "missing {want} in {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n.starts_with("outbound|53|")),
        "UDP ports get no cluster"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("inbound|")),
        "productpage serves nothing"
    );
}

#[test]
fn discovery_types_follow_resolution() {
    let all = clusters(&mesh(), &client());
    assert_eq!(kind(cluster(&all, &reviews(9080, ""))), DiscoveryType::Eds);
    let eds = cluster(&all, &reviews(9080, "v1"))
        .eds_cluster_config
        .clone()
        .expect("eds config");
    assert_eq!(eds.service_name, reviews(9080, "v1"));
    let dns = cluster(&all, "outbound|80||httpbin.org");
    assert_eq!(kind(dns), DiscoveryType::StrictDns);
    let la = dns.load_assignment.as_ref().expect("inline endpoints");
    assert_eq!(la.endpoints[0].lb_endpoints.len(), 1);
    let legacy = cluster(&all, "outbound|7000||legacy.internal");
    assert_eq!(
        (kind(legacy), lb(legacy)),
        (DiscoveryType::OriginalDst, LbPolicy::ClusterProvided)
    );
    let v3 = cluster(&all, &reviews(9080, "v3"));
    assert_eq!(
        (kind(v3), lb(v3)),
        (DiscoveryType::OriginalDst, LbPolicy::ClusterProvided),
        "PASSTHROUGH subset"
    );
    assert!(v3.eds_cluster_config.is_none());
}

#[test]
fn rule_policies_become_cluster_settings() {
    let all = clusters(&mesh(), &client());
    let main = cluster(&all, &reviews(9080, ""));
    assert_eq!(lb(main), LbPolicy::RoundRobin);
    assert!(
        matches!(main.lb_config, Some(LbConfig::RoundRobinLbConfig(_))),
        "warmup → slow start"
    );
    assert_eq!(main.connect_timeout.unwrap().nanos, 250_000_000);
    let t = &main.circuit_breakers.as_ref().unwrap().thresholds[0];
    let v = |x: &Option<envoy_types::pb::google::protobuf::UInt32Value>| x.unwrap().value;
    assert_eq!(
        (
            v(&t.max_connections),
            v(&t.max_pending_requests),
            v(&t.max_requests),
            v(&t.max_retries)
        ),
        (100, 10, 1000, 3)
    );
    let od = main.outlier_detection.as_ref().expect("outlier detection");
    assert_eq!(
        (
            od.consecutive_5xx.unwrap().value,
            od.consecutive_gateway_failure.unwrap().value
        ),
        (3, 2)
    );
    assert_eq!(od.max_ejection_percent.unwrap().value, 50);
    assert_eq!(
        main.common_lb_config
            .as_ref()
            .unwrap()
            .healthy_panic_threshold
            .unwrap()
            .value,
        20.0
    );
    let ka = main
        .upstream_connection_options
        .as_ref()
        .unwrap()
        .tcp_keepalive
        .unwrap();
    assert_eq!(ka.keepalive_time.unwrap().value, 7200);
    let common = http_options(main)
        .unwrap()
        .common_http_protocol_options
        .unwrap();
    assert_eq!(
        (
            common.idle_timeout.unwrap().seconds,
            common.max_requests_per_connection.unwrap().value
        ),
        (30, 10)
    );

    // Port-level settings replace the whole policy for 9090 (and it is gRPC: HTTP/2).
    let grpc = cluster(&all, &reviews(9090, ""));
    assert_eq!(lb(grpc), LbPolicy::Maglev);
    assert!(
        grpc.outlier_detection.is_none(),
        "not inherited from the top level"
    );
    assert_eq!(
        grpc.circuit_breakers.as_ref().unwrap().thresholds[0]
            .max_connections
            .unwrap()
            .value,
        u32::MAX
    );
    assert!(matches!(
        http_options(grpc).unwrap().upstream_protocol_options,
        Some(UpstreamProtocolOptions::ExplicitHttpConfig(_))
    ));

    // Subset v2 overrides the load balancer only.
    let v2 = cluster(&all, &reviews(9080, "v2"));
    assert_eq!(lb(v2), LbPolicy::RingHash);
    let Some(LbConfig::RingHashLbConfig(ring)) = &v2.lb_config else {
        panic!("ring hash")
    };
    assert_eq!(ring.minimum_ring_size.unwrap().value, 2048);
    assert!(v2.outlier_detection.is_some(), "inherited from the rule");

    // No rule: Istio's defaults.
    let ratings = cluster(&all, "outbound|9080||ratings.default.svc.cluster.local");
    assert_eq!(lb(ratings), LbPolicy::LeastRequest);
    assert!(ratings.outlier_detection.is_none());
    assert_eq!(ratings.connect_timeout.unwrap().seconds, 10);

    let httpbin = cluster(&all, "outbound|80||httpbin.org");
    assert_eq!(lb(httpbin), LbPolicy::Random);
    assert!(matches!(
        http_options(httpbin).unwrap().upstream_protocol_options,
        Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(_))
    ));
}

fn tls_context(c: &Cluster) -> Option<UpstreamTlsContext> {
    let ts = c.transport_socket.as_ref()?;
    if ts.name != "envoy.transport_sockets.tls" {
        return None;
    }
    let Some(ConfigType::TypedConfig(any)) = &ts.config_type else {
        return None;
    };
    Some(UpstreamTlsContext::decode(any.value.as_slice()).expect("decodes"))
}

#[test]
fn destination_rule_tls() {
    let all = clusters(&mesh(), &client());
    let simple =
        tls_context(cluster(&all, "outbound|443||secure.example.com")).expect("SIMPLE → TLS");
    assert_eq!(simple.sni, "secure.example.com");
    assert!(
        simple
            .common_tls_context
            .as_ref()
            .unwrap()
            .tls_certificates
            .is_empty()
    );
    let mutual =
        tls_context(cluster(&all, "outbound|8443||secure.example.com")).expect("MUTUAL → TLS");
    assert_eq!(
        mutual
            .common_tls_context
            .as_ref()
            .unwrap()
            .tls_certificates
            .len(),
        1
    );
    let istio = tls_context(cluster(&all, "outbound|443|istio|secure.example.com"))
        .expect("ISTIO_MUTUAL → TLS");
    assert_eq!(istio.sni, "outbound_.443_.istio_.secure.example.com");
    let pp = cluster(&all, "outbound|443|pp|secure.example.com")
        .transport_socket
        .as_ref()
        .unwrap();
    assert_eq!(pp.name, "envoy.transport_sockets.upstream_proxy_protocol");
}

#[test]
fn serving_sidecar_gets_inbound_clusters_to_the_app() {
    let all = clusters(&mesh(), &reviews_v1());
    for (name, port) in [
        ("inbound|9080||", 9080),
        ("inbound|9091||", 9091),
        ("inbound|5432||", 5432),
    ] {
        let c = cluster(&all, name);
        assert_eq!(kind(c), DiscoveryType::Static);
        let la = c.load_assignment.as_ref().expect("the app");
        let ep = la.endpoints[0].lb_endpoints[0].clone();
        let Some(
            envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier::Endpoint(e),
        ) = ep.host_identifier
        else {
            panic!()
        };
        let Some(envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(sa)) =
            e.address.unwrap().address
        else {
            panic!()
        };
        assert_eq!(sa.address, "127.0.0.1");
        assert_eq!(
            sa.port_specifier,
            Some(
                envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(
                    port
                )
            )
        );
        // The Sidecar's inboundConnectionPool replaces the DestinationRule's.
        let t = &c.circuit_breakers.as_ref().unwrap().thresholds[0];
        assert_eq!(
            (
                t.max_pending_requests.unwrap().value,
                t.max_connections.unwrap().value
            ),
            (7, u32::MAX),
            "{name}"
        );
    }
    assert!(
        http_options(cluster(&all, "inbound|9091||")).is_some(),
        "gRPC inbound is HTTP/2"
    );
    let ip = cluster(&all, "InboundPassthroughCluster");
    assert_eq!(
        ip.upstream_bind_config
            .as_ref()
            .unwrap()
            .source_address
            .as_ref()
            .unwrap()
            .address,
        "127.0.0.6"
    );
}

#[test]
fn ports_mode_sidecar_does_not_bind_passthrough() {
    let all = clusters(&mesh(), &reviews_v2_ports_mode());
    assert!(
        cluster(&all, "InboundPassthroughCluster")
            .upstream_bind_config
            .is_none()
    );
    cluster(&all, "inbound|9080||");
}

#[test]
fn gateway_gets_outbound_and_catch_alls_only() {
    let all = clusters(&mesh(), &gateway());
    assert!(
        !all.iter()
            .any(|c| c.name.starts_with("inbound|") || c.name == "InboundPassthroughCluster")
    );
    cluster(&all, "BlackHoleCluster");
    cluster(&all, "PassthroughCluster");
    let legacy = cluster(&all, "outbound|7000||legacy.internal");
    assert_eq!(
        kind(legacy),
        DiscoveryType::Eds,
        "gateways cannot use ORIGINAL_DST for NONE resolution"
    );
}
