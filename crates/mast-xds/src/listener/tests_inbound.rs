//! Unit tests: the inbound side (`virtualInbound`), the ports capture mode and gateways.

use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::dynamic_forward_proxy::v3::FilterConfig as DfpFilterConfig;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter;
use mast_model::{InboundPort, MeshSnapshot, OutboundPolicy, Protocol, ProxyNode};
use serde_json::json;

use super::filters::*;
use super::tests::{
    find, hcm, http_filter_names, iptables, mesh, names, ports_mode, service, socket, tcp_cluster,
    unpack,
};
use super::{Inputs, build};

#[test]
fn virtual_inbound_has_a_chain_per_app_port_and_a_passthrough_default() {
    let svc = service(
        "reviews.default.svc.cluster.local",
        &[
            (80, Protocol::Http),
            (90, Protocol::Tcp),
            (91, Protocol::Http2),
        ],
        &[],
    );
    let inbound = vec![
        InboundPort {
            service: &svc,
            port: &svc.ports[0],
            target_port: 9080,
        },
        InboundPort {
            service: &svc,
            port: &svc.ports[1],
            target_port: 9090,
        },
        InboundPort {
            service: &svc,
            port: &svc.ports[2],
            target_port: 9091,
        },
        InboundPort {
            service: &svc,
            port: &svc.ports[1],
            target_port: 15006,
        },
    ];
    let proxy = iptables();
    let inputs = Inputs::new(
        &proxy,
        vec![],
        vec![],
        inbound,
        OutboundPolicy::AllowAny,
        "cluster.local",
    );
    let ls = build(&inputs);
    let vi = find(&ls, "virtualInbound");
    assert_eq!(socket(vi), ("0.0.0.0".into(), 15006));
    assert_eq!(
        vi.listener_filters
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        [ORIGINAL_DST_FILTER, TLS_INSPECTOR_FILTER],
        "no PeerAuthentication: PERMISSIVE, TLS chains need the inspector"
    );
    let chains: Vec<(&str, u32, &str, bool)> = vi
        .filter_chains
        .iter()
        .map(|c| {
            let m = c.filter_chain_match.as_ref().unwrap();
            (
                c.name.as_str(),
                m.destination_port.as_ref().unwrap().value,
                m.transport_protocol.as_str(),
                c.transport_socket.is_some(),
            )
        })
        .collect();
    assert_eq!(
        chains,
        [
            ("virtualInbound-blackhole", 15006, "", false),
            ("0.0.0.0_9080", 9080, "tls", true),
            ("0.0.0.0_9080", 9080, "raw_buffer", false),
            ("0.0.0.0_9090", 9090, "tls", true),
            ("0.0.0.0_9090", 9090, "tls", false),
            ("0.0.0.0_9090", 9090, "raw_buffer", false),
            ("0.0.0.0_9091", 9091, "tls", true),
            ("0.0.0.0_9091", 9091, "raw_buffer", false),
        ]
    );
    assert_eq!(tcp_cluster(&vi.filter_chains[0]).0, "BlackHoleCluster");

    for chain in &vi.filter_chains[1..=2] {
        let h = hcm(chain);
        assert_eq!(h.stat_prefix, "inbound_0.0.0.0_9080");
        assert_eq!(http_filter_names(&h), [ROUTER_FILTER]);
        assert!(h.http2_protocol_options.is_none());
        let Some(RouteSpecifier::RouteConfig(rc)) = &h.route_specifier else {
            panic!("not inline")
        };
        assert_eq!(rc.name, "inbound|9080||");
        assert_eq!(rc.virtual_hosts[0].domains, ["*"]);
        let Some(Action::Route(ra)) = &rc.virtual_hosts[0].routes[0].action else {
            panic!()
        };
        assert_eq!(
            ra.cluster_specifier,
            Some(ClusterSpecifier::Cluster("inbound|9080||".into()))
        );
        assert_eq!(ra.timeout.as_ref().map(|d| d.seconds), Some(0));
    }
    for chain in &vi.filter_chains[3..=5] {
        assert_eq!(
            tcp_cluster(chain),
            ("inbound|9090||".into(), "inbound|9090||".into())
        );
    }
    assert!(hcm(&vi.filter_chains[6]).http2_protocol_options.is_some());
    assert_eq!(
        tcp_cluster(vi.default_filter_chain.as_ref().unwrap()).0,
        "InboundPassthroughCluster"
    );
}

#[test]
fn ports_mode_has_an_http_proxy_and_explicit_inbound_listeners() {
    let svc = service(
        "reviews.default.svc.cluster.local",
        &[(80, Protocol::Http)],
        &["10.0.0.1"],
    );
    let proxy = ports_mode();
    let inbound = vec![InboundPort {
        service: &svc,
        port: &svc.ports[0],
        target_port: 9080,
    }];
    let all = mesh();
    let inputs = Inputs::new(
        &proxy,
        all.iter().collect(),
        vec![],
        inbound,
        OutboundPolicy::AllowAny,
        "cluster.local",
    );
    let ls = build(&inputs);
    assert_eq!(
        names(&ls),
        ["mast_inbound_9080", "mast_inbound_9090", "mast_outbound"]
    );

    let out = find(&ls, "mast_outbound");
    assert_eq!(socket(out), ("127.0.0.1".into(), 15101));
    assert!(out.bind_to_port.is_none() && out.use_original_dst.is_none());
    let h = hcm(&out.filter_chains[0]);
    let Some(RouteSpecifier::Rds(rds)) = &h.route_specifier else {
        panic!("not RDS")
    };
    assert_eq!(rds.route_config_name, "mast_outbound");
    // The dynamic forward proxy resolves unknown hosts; it must run before the router.
    assert_eq!(
        http_filter_names(&h),
        [
            FAULT_FILTER,
            CORS_FILTER,
            super::filters::DFP_FILTER,
            ROUTER_FILTER
        ]
    );
    let Some(http_filter::ConfigType::TypedConfig(dfp)) = &h.http_filters[2].config_type else {
        panic!("the DFP filter has a typed config")
    };
    assert_eq!(
        unpack::<DfpFilterConfig>(dfp),
        crate::forward_proxy::filter_config()
    );
    // What CONNECT needs: the upgrade on the HCM (HTTP/1.1) and allow_connect (HTTP/2).
    assert_eq!(
        h.upgrade_configs
            .iter()
            .map(|u| u.upgrade_type.as_str())
            .collect::<Vec<_>>(),
        ["websocket", "CONNECT"]
    );
    assert!(h.http2_protocol_options.as_ref().unwrap().allow_connect);
    assert_eq!(
        h.http_protocol_options
            .as_ref()
            .unwrap()
            .allow_absolute_url
            .as_ref()
            .map(|b| b.value),
        Some(true)
    );

    let web = find(&ls, "mast_inbound_9080");
    assert_eq!(socket(web), ("127.0.0.1".into(), 15106));
    assert_eq!(web.filter_chains.len(), 2, "PERMISSIVE: mTLS and plaintext");
    for chain in &web.filter_chains {
        let Some(RouteSpecifier::RouteConfig(rc)) = hcm(chain).route_specifier else {
            panic!()
        };
        assert_eq!(rc.name, "inbound|9080||");
    }
    let tcp = find(&ls, "mast_inbound_9090");
    assert_eq!(socket(tcp), ("127.0.0.1".into(), 15107));
    assert_eq!(tcp.filter_chains.len(), 3);
    for chain in &tcp.filter_chains {
        assert_eq!(tcp_cluster(chain).0, "inbound|9090||");
    }
}

/// A gateway no Gateway selects gets no listener at all (no sidecar listeners either); a
/// sidecar in the same empty mesh gets its two capture listeners.
#[test]
fn unselected_gateway_gets_no_listeners_sidecar_gets_capture_listeners() {
    let router = ProxyNode::parse(
        "router~10.0.0.5~gw.istio-system~istio-system.svc.cluster.local",
        &json!({}),
    )
    .unwrap();
    assert!(super::listeners(&MeshSnapshot::default(), &router).is_empty());
    let sidecar = super::listeners(&MeshSnapshot::default(), &iptables());
    assert_eq!(names(&sidecar), ["virtualInbound", "virtualOutbound"]);
}
