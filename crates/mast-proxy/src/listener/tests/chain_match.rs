//! Envoy's filter-chain match on overlapping chains: each step keeps only the most specific
//! candidates, and a connection that fails a later step falls to the default chain rather
//! than to a less specific chain (what Envoy 1.40 picks for the same listener).

use std::net::SocketAddr;

use envoy_types::pb::envoy::config::listener::v3::FilterChainMatch;

use super::super::chain_match::{ChainMatch, SourceType, convert_match};
use super::super::convert::ListenerConfig;
use super::{PEER, chain, dst, listener};
use crate::listener::accept::select_chain;
use crate::listener::inspect::Inspected;

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn sni(name: &str, alpn: &[&str]) -> Inspected {
    Inspected {
        transport: "tls",
        server_name: Some(name.into()),
        alpn: names(alpn),
    }
}

fn raw() -> Inspected {
    Inspected {
        transport: "raw_buffer",
        ..Inspected::default()
    }
}

fn pick(l: &ListenerConfig, to: &str, from: SocketAddr, seen: &Inspected) -> Option<String> {
    select_chain(l, dst(to), from, seen).map(|c| c.name.clone())
}

fn gateway_443() -> ListenerConfig {
    listener(
        "0.0.0.0:443",
        true,
        vec![
            chain(
                "exact-tls",
                ChainMatch {
                    server_names: names(&["api.example.com"]),
                    transport_protocol: Some("tls".into()),
                    ..ChainMatch::default()
                },
            ),
            chain(
                "wild-example",
                ChainMatch {
                    server_names: names(&["*.example.com"]),
                    ..ChainMatch::default()
                },
            ),
            chain(
                "wild-eu-example",
                ChainMatch {
                    server_names: names(&["*.eu.example.com"]),
                    ..ChainMatch::default()
                },
            ),
            chain(
                "no-sni-tls",
                ChainMatch {
                    transport_protocol: Some("tls".into()),
                    ..ChainMatch::default()
                },
            ),
            chain(
                "no-sni-raw",
                ChainMatch {
                    transport_protocol: Some("raw_buffer".into()),
                    ..ChainMatch::default()
                },
            ),
        ],
        Some(chain("default", ChainMatch::default())),
    )
}

#[test]
fn exact_beats_the_longest_wildcard_which_beats_shorter_ones_and_no_names() {
    let l = gateway_443();
    let at = |s: &Inspected| pick(&l, "10.0.0.1:443", PEER, s);
    assert_eq!(
        at(&sni("api.example.com", &[])).as_deref(),
        Some("exact-tls")
    );
    assert_eq!(
        at(&sni("www.example.com", &[])).as_deref(),
        Some("wild-example")
    );
    // A wildcard covers one or more labels; the longest suffix wins.
    assert_eq!(
        at(&sni("a.b.example.com", &[])).as_deref(),
        Some("wild-example")
    );
    assert_eq!(
        at(&sni("x.eu.example.com", &[])).as_deref(),
        Some("wild-eu-example")
    );
    assert_eq!(
        at(&sni("a.b.eu.example.com", &[])).as_deref(),
        Some("wild-eu-example")
    );
    // `*.example.com` does not match the bare domain.
    assert_eq!(at(&sni("example.com", &[])).as_deref(), Some("no-sni-tls"));
    assert_eq!(at(&sni("other.org", &[])).as_deref(), Some("no-sni-tls"));
    assert_eq!(at(&raw()).as_deref(), Some("no-sni-raw"));
}

#[test]
fn a_connection_failing_a_later_step_gets_the_default_not_a_less_specific_chain() {
    let l = gateway_443();
    // The exact name wins the server-name step; its transport protocol then fails: Envoy
    // does not go back to `*.example.com` or to the no-SNI chains.
    let plain_with_name = Inspected {
        transport: "raw_buffer",
        server_name: Some("api.example.com".into()),
        alpn: Vec::new(),
    };
    assert_eq!(
        pick(&l, "10.0.0.1:443", PEER, &plain_with_name).as_deref(),
        Some("default")
    );
    let mut no_default = gateway_443();
    no_default.default_chain = None;
    assert_eq!(
        pick(&no_default, "10.0.0.1:443", PEER, &plain_with_name),
        None
    );
}

#[test]
fn a_port_specific_chain_shadows_port_less_chains_even_when_it_fails_later() {
    let l = listener(
        "0.0.0.0:15006",
        true,
        vec![
            chain(
                "9080-tls",
                ChainMatch {
                    destination_port: Some(9080),
                    transport_protocol: Some("tls".into()),
                    ..ChainMatch::default()
                },
            ),
            chain("any-port", ChainMatch::default()),
        ],
        None,
    );
    assert_eq!(
        pick(&l, "10.0.0.1:9080", PEER, &sni("a", &[])).as_deref(),
        Some("9080-tls")
    );
    assert_eq!(pick(&l, "10.0.0.1:9080", PEER, &raw()), None);
    assert_eq!(
        pick(&l, "10.0.0.1:9090", PEER, &raw()).as_deref(),
        Some("any-port")
    );
}

#[test]
fn alpn_follows_the_clients_order_then_chains_without_protocols() {
    let l = listener(
        "0.0.0.0:443",
        true,
        vec![
            chain(
                "h2",
                ChainMatch {
                    application_protocols: names(&["h2"]),
                    ..ChainMatch::default()
                },
            ),
            chain(
                "h1",
                ChainMatch {
                    application_protocols: names(&["http/1.1", "http/1.0"]),
                    ..ChainMatch::default()
                },
            ),
            chain("none", ChainMatch::default()),
        ],
        None,
    );
    let at = |alpn: &[&str]| pick(&l, "10.0.0.1:443", PEER, &sni("a.example.com", alpn));
    assert_eq!(at(&["h2", "http/1.1"]).as_deref(), Some("h2"));
    assert_eq!(at(&["http/1.1", "h2"]).as_deref(), Some("h1"));
    assert_eq!(at(&["http/1.0"]).as_deref(), Some("h1"));
    assert_eq!(at(&["istio-peer-exchange"]).as_deref(), Some("none"));
    assert_eq!(at(&[]).as_deref(), Some("none"));
}

#[test]
fn source_type_ip_and_port_narrow_last() {
    let l = listener(
        "0.0.0.0:80",
        true,
        vec![
            chain(
                "local",
                ChainMatch {
                    source_type: SourceType::SameIpOrLoopback,
                    ..ChainMatch::default()
                },
            ),
            chain(
                "external-net",
                ChainMatch {
                    source_type: SourceType::External,
                    source_prefix_ranges: vec![(dst("192.0.2.0:0").ip(), 24)],
                    ..ChainMatch::default()
                },
            ),
            chain(
                "external-net-port",
                ChainMatch {
                    source_type: SourceType::External,
                    source_prefix_ranges: vec![(dst("192.0.2.0:0").ip(), 24)],
                    source_ports: vec![40000],
                    ..ChainMatch::default()
                },
            ),
            chain("any", ChainMatch::default()),
        ],
        None,
    );
    let from = |p: &str| pick(&l, "10.0.0.1:80", dst(p), &raw());
    assert_eq!(from("127.0.0.1:5000").as_deref(), Some("local"));
    assert_eq!(from("10.0.0.1:5000").as_deref(), Some("local"), "same IP");
    assert_eq!(
        from("192.0.2.7:40000").as_deref(),
        Some("external-net-port")
    );
    assert_eq!(from("192.0.2.7:40001").as_deref(), Some("external-net"));
    // The EXTERNAL entry exists, so an external peer outside it gets no chain (Envoy does not
    // fall back to ANY once a more specific source type matched).
    assert_eq!(from("198.51.100.1:40000"), None);
}

#[test]
fn overlapping_chains_and_partial_wildcards_are_refused() {
    use envoy_types::pb::envoy::config::core::v3::{
        Address, SocketAddress, address, socket_address,
    };
    use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
    use envoy_types::pb::google::protobuf::Any;
    let tcp = envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy {
        stat_prefix: "x".into(),
        cluster_specifier: Some(
            envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier::Cluster("c".into()),
        ),
        ..Default::default()
    };
    let filters = vec![Filter {
        name: "envoy.filters.network.tcp_proxy".into(),
        config_type: Some(filter::ConfigType::TypedConfig(Any {
            type_url: "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
                .into(),
            value: prost::Message::encode_to_vec(&tcp),
        })),
    }];
    let names_of = |list: &[&str]| names(list);
    let fc = |name: &str, names: &[&str]| FilterChain {
        name: name.into(),
        filter_chain_match: Some(FilterChainMatch {
            server_names: names_of(names),
            ..FilterChainMatch::default()
        }),
        filters: filters.clone(),
        ..FilterChain::default()
    };
    let listener = |chains: Vec<FilterChain>| Listener {
        name: "l".into(),
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: "127.0.0.1".into(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(0)),
                ..SocketAddress::default()
            })),
        }),
        filter_chains: chains,
        ..Listener::default()
    };
    let ok = ListenerConfig::from_proto(&listener(vec![
        fc("a", &["a.example.com"]),
        fc("b", &["*.example.com", "b.example.com"]),
    ]));
    assert!(ok.is_ok(), "{:?}", ok.err());
    let err = ListenerConfig::from_proto(&listener(vec![
        fc("a", &["a.example.com", "x.example.com"]),
        fc("b", &["b.example.com", "X.example.com"]),
    ]))
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(err.contains("overlapping matching rules"), "{err}");
    assert!(err.contains("filter_chains[1].filter_chain_match"), "{err}");
    let partial = convert_match(&FilterChainMatch {
        server_names: names(&["*w.example.com"]),
        ..FilterChainMatch::default()
    });
    assert_eq!(
        partial.err().map(|(f, _)| f).as_deref(),
        Some("server_names[0]")
    );
}

#[test]
fn large_listeners_select_the_same_way() {
    for count in [127u16, 128, 200] {
        let mut chains: Vec<_> = (0..count)
            .map(|p| {
                chain(
                    &format!("port-{p}"),
                    ChainMatch {
                        destination_port: Some(1000 + p),
                        transport_protocol: Some("tls".into()),
                        ..ChainMatch::default()
                    },
                )
            })
            .collect();
        chains.push(chain(
            "wild",
            ChainMatch {
                destination_port: Some(1000 + count - 1),
                server_names: names(&["*.example.com"]),
                ..ChainMatch::default()
            },
        ));
        let l = listener("0.0.0.0:15006", true, chains, None);
        let last = format!("10.0.0.1:{}", 1000 + count - 1);
        assert_eq!(
            pick(&l, &last, PEER, &sni("a.example.com", &[])).as_deref(),
            Some("wild"),
            "{count} chains"
        );
        assert_eq!(
            pick(&l, &last, PEER, &sni("other.org", &[])),
            Some(format!("port-{}", count - 1)),
            "{count} chains"
        );
        assert_eq!(
            pick(&l, "10.0.0.1:1005", PEER, &sni("a.example.com", &[])).as_deref(),
            Some("port-5")
        );
        assert_eq!(pick(&l, "10.0.0.1:1005", PEER, &raw()), None);
    }
}
