//! Filter-chain selection and the original-destination hand-off, on hand-built listeners.

use std::net::SocketAddr;
use std::sync::Arc;

use super::accept::{select_chain, virtual_for};
use super::convert::{
    ChainMatch, Direction, FilterChain, ListenerConfig, NetworkFilter, in_prefix,
};
use super::inspect::Inspected;
use crate::tcp::TcpProxyConfig;

fn chain(name: &str, matcher: ChainMatch) -> FilterChain {
    FilterChain {
        name: name.into(),
        matcher,
        tls: None,
        rbac: Vec::new(),
        sni_cluster: false,
        filter: NetworkFilter::Tcp(Arc::new(TcpProxyConfig {
            stat_prefix: name.into(),
            clusters: vec![(name.into(), 1)],
            idle_timeout: None,
            max_connect_attempts: 1,
        })),
    }
}

fn listener(
    address: &str,
    bind: bool,
    chains: Vec<FilterChain>,
    default: Option<FilterChain>,
) -> ListenerConfig {
    ListenerConfig {
        name: address.into(),
        address: address
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
        bind,
        reuse_port: true,
        use_original_dst: false,
        original_dst_filter: false,
        tls_inspector: true,
        chains,
        default_chain: default,
        direction: Direction::Outbound,
        digest: 0,
        replaced: tokio::sync::watch::Sender::new(false),
    }
}

fn seen(sni: Option<&str>) -> Inspected {
    Inspected {
        transport: if sni.is_some() { "tls" } else { "raw_buffer" },
        server_name: sni.map(str::to_owned),
        alpn: Vec::new(),
    }
}

/// An external peer.
const PEER: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7)),
    40000,
);

fn dst(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

#[test]
fn sni_chains_win_over_the_default_and_wildcards_lose_to_exact_names() {
    let l = listener(
        "0.0.0.0:443",
        false,
        vec![
            chain(
                "exact",
                ChainMatch {
                    server_names: vec!["api.example.com".into()],
                    ..ChainMatch::default()
                },
            ),
            chain(
                "wild",
                ChainMatch {
                    server_names: vec!["*.example.com".into()],
                    ..ChainMatch::default()
                },
            ),
        ],
        Some(chain("passthrough", ChainMatch::default())),
    );
    let name = |s: Option<&str>| {
        select_chain(&l, dst("10.0.0.1:443"), PEER, &seen(s)).map(|c| c.name.clone())
    };
    assert_eq!(name(Some("api.example.com")).as_deref(), Some("exact"));
    assert_eq!(name(Some("www.example.com")).as_deref(), Some("wild"));
    assert_eq!(name(Some("other.org")).as_deref(), Some("passthrough"));
    assert_eq!(name(None).as_deref(), Some("passthrough"));
}

#[test]
fn destination_port_and_longest_prefix_decide() {
    let l = listener(
        "0.0.0.0:15006",
        true,
        vec![
            chain(
                "port-9080",
                ChainMatch {
                    destination_port: Some(9080),
                    ..ChainMatch::default()
                },
            ),
            chain(
                "net-16",
                ChainMatch {
                    prefix_ranges: vec![(dst("10.1.0.0:0").ip(), 16)],
                    ..ChainMatch::default()
                },
            ),
            chain(
                "net-24",
                ChainMatch {
                    prefix_ranges: vec![(dst("10.1.2.0:0").ip(), 24)],
                    ..ChainMatch::default()
                },
            ),
        ],
        None,
    );
    let name = |d: &str| select_chain(&l, dst(d), PEER, &seen(None)).map(|c| c.name.clone());
    assert_eq!(name("10.1.2.3:9080").as_deref(), Some("port-9080"));
    assert_eq!(name("10.1.2.3:80").as_deref(), Some("net-24"));
    assert_eq!(name("10.1.9.9:80").as_deref(), Some("net-16"));
    assert_eq!(
        name("192.168.0.1:80"),
        None,
        "no chain and no default: refused (NR)"
    );
    assert!(in_prefix(
        dst("10.1.2.3:0").ip(),
        dst("10.1.0.0:0").ip(),
        16
    ));
    assert!(!in_prefix(
        dst("10.2.0.1:0").ip(),
        dst("10.1.0.0:0").ip(),
        16
    ));
    assert!(in_prefix(dst("1.2.3.4:0").ip(), dst("0.0.0.0:0").ip(), 0));
}

#[test]
fn alpn_chains_need_an_offered_protocol() {
    let l = listener(
        "0.0.0.0:443",
        false,
        vec![chain(
            "h2",
            ChainMatch {
                application_protocols: vec!["h2".into()],
                ..ChainMatch::default()
            },
        )],
        Some(chain("default", ChainMatch::default())),
    );
    let mut offered = seen(Some("a.example.com"));
    offered.alpn = vec!["h2".into(), "http/1.1".into()];
    assert_eq!(
        select_chain(&l, dst("10.0.0.1:443"), PEER, &offered).map(|c| c.name.as_str()),
        Some("h2")
    );
    offered.alpn = vec!["http/1.1".into()];
    assert_eq!(
        select_chain(&l, dst("10.0.0.1:443"), PEER, &offered).map(|c| c.name.as_str()),
        Some("default")
    );
}

#[test]
fn original_destination_picks_the_exact_then_the_wildcard_listener() {
    let vip = Arc::new(listener(
        "10.96.0.10:3306",
        false,
        vec![],
        Some(chain("vip", ChainMatch::default())),
    ));
    let any = Arc::new(listener(
        "0.0.0.0:3306",
        false,
        vec![],
        Some(chain("any", ChainMatch::default())),
    ));
    let http = Arc::new(listener(
        "0.0.0.0:80",
        false,
        vec![],
        Some(chain("http", ChainMatch::default())),
    ));
    let all = vec![Arc::clone(&vip), Arc::clone(&any), Arc::clone(&http)];
    let found = |d: &str| virtual_for(&all, dst(d)).map(|l| l.name.clone());
    assert_eq!(found("10.96.0.10:3306").as_deref(), Some("10.96.0.10:3306"));
    assert_eq!(found("10.96.0.99:3306").as_deref(), Some("0.0.0.0:3306"));
    assert_eq!(found("10.96.0.10:80").as_deref(), Some("0.0.0.0:80"));
    assert_eq!(
        found("10.96.0.10:8080"),
        None,
        "virtualOutbound's own chains serve it"
    );
}

mod chain_match;
mod tls;
