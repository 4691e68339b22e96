//! What an upstream sees behind a gateway connection manager (`use_remote_address`): the
//! forwarded-for chain, the forwarded proto, internal/external marking, stripped control
//! headers, host port stripping and the `server` header.

use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::{
    InternalAddressConfig, StripPortMode,
};
use http::HeaderMap;

use super::*;

fn edge(h: HttpConnectionManager) -> Edge {
    Edge::from_proto(&h).unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn get<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn request(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, v.parse().unwrap());
    }
    h
}

const PEER: &str = "203.0.113.9:51000";
const LOCAL: &str = "10.0.0.5:8443";

#[test]
fn an_external_request_is_marked_and_sanitised() {
    let e = edge(HttpConnectionManager::default());
    let mut h = request(&[
        ("x-forwarded-for", "198.51.100.1"),
        ("x-forwarded-proto", "https"),
        ("x-envoy-internal", "true"),
        ("x-envoy-retry-on", "5xx"),
        ("x-envoy-decorator-operation", "spoofed"),
    ]);
    let m = mutate_request(&mut h, (addr(PEER), addr(LOCAL), false), (true, 0), &e);
    assert!(m.edge);
    assert_eq!(m.remote.to_string(), "203.0.113.9");
    assert_eq!(get(&h, "x-forwarded-for"), Some("198.51.100.1,203.0.113.9"));
    assert_eq!(
        get(&h, "x-forwarded-proto"),
        Some("http"),
        "untrusted hop: overwritten"
    );
    assert_eq!(get(&h, "x-envoy-external-address"), Some("203.0.113.9"));
    assert_eq!(get(&h, "x-envoy-internal"), None);
    assert_eq!(get(&h, "x-envoy-retry-on"), None);
    assert_eq!(get(&h, "x-envoy-decorator-operation"), None);
}

#[test]
fn trusted_hops_pick_the_client_from_xff_and_keep_its_proto() {
    let e = edge(HttpConnectionManager::default());
    let mut h = request(&[
        ("x-forwarded-for", "198.51.100.1, 192.0.2.44"),
        ("x-forwarded-proto", "https"),
    ]);
    let m = mutate_request(&mut h, (addr(PEER), addr(LOCAL), false), (true, 1), &e);
    assert_eq!(m.remote.to_string(), "192.0.2.44");
    assert_eq!(get(&h, "x-forwarded-proto"), Some("https"));
    assert_eq!(get(&h, "x-envoy-external-address"), Some("192.0.2.44"));
    assert_eq!(
        get(&h, "x-forwarded-for"),
        Some("198.51.100.1, 192.0.2.44,203.0.113.9")
    );
}

#[test]
fn internal_addresses_are_internal_only_when_configured() {
    let peer = "10.1.2.3:4000";
    let plain = edge(HttpConnectionManager::default());
    let mut h = request(&[]);
    let m = mutate_request(&mut h, (addr(peer), addr(LOCAL), true), (true, 0), &plain);
    assert!(m.edge, "Envoy 1.40 trusts no address by default");
    assert_eq!(get(&h, "x-forwarded-proto"), Some("https"));

    let configured = edge(HttpConnectionManager {
        internal_address_config: Some(InternalAddressConfig {
            cidr_ranges: vec![CidrRange {
                address_prefix: "10.0.0.0".into(),
                prefix_len: Some(envoy_types::pb::google::protobuf::UInt32Value { value: 8 }),
            }],
            ..Default::default()
        }),
        ..Default::default()
    });
    let mut h = request(&[("x-envoy-retry-on", "5xx")]);
    let m = mutate_request(
        &mut h,
        (addr(peer), addr(LOCAL), false),
        (true, 0),
        &configured,
    );
    assert!(!m.edge);
    assert_eq!(get(&h, "x-envoy-internal"), Some("true"));
    assert_eq!(get(&h, "x-envoy-retry-on"), Some("5xx"));
    assert_eq!(get(&h, "x-envoy-external-address"), None);
    // A received x-forwarded-for makes it external again.
    let mut h = request(&[("x-forwarded-for", "10.9.9.9")]);
    let m = mutate_request(
        &mut h,
        (addr(peer), addr(LOCAL), false),
        (true, 0),
        &configured,
    );
    assert!(m.edge);
}

#[test]
fn skip_xff_append_and_sidecar_mode_leave_xff_alone() {
    let skip = edge(HttpConnectionManager {
        skip_xff_append: true,
        ..Default::default()
    });
    let mut h = request(&[]);
    mutate_request(&mut h, (addr(PEER), addr(LOCAL), false), (true, 0), &skip);
    assert_eq!(get(&h, "x-forwarded-for"), None);
    let mut h = request(&[("x-forwarded-for", "1.1.1.1")]);
    let m = mutate_request(
        &mut h,
        (addr(PEER), addr(LOCAL), false),
        (false, 0),
        &edge(HttpConnectionManager::default()),
    );
    assert!(!m.edge);
    assert_eq!(get(&h, "x-forwarded-for"), Some("1.1.1.1"));
    assert_eq!(get(&h, "x-forwarded-proto"), Some("http"));
    assert_eq!(get(&h, "x-envoy-external-address"), None);
}

#[test]
fn host_ports_are_stripped_as_configured() {
    let any = edge(HttpConnectionManager {
        strip_port_mode: Some(StripPortMode::StripAnyHostPort(true)),
        ..Default::default()
    });
    assert_eq!(any.strip("example.com:8080", 443), "example.com");
    assert_eq!(any.strip("[::1]:8080", 443), "[::1]");
    assert_eq!(any.strip("example.com", 443), "example.com");
    let matching = edge(HttpConnectionManager {
        strip_matching_host_port: true,
        ..Default::default()
    });
    assert_eq!(matching.strip("example.com:443", 443), "example.com");
    assert_eq!(matching.strip("example.com:8080", 443), "example.com:8080");
    let none = edge(HttpConnectionManager::default());
    assert_eq!(none.strip("example.com:443", 443), "example.com:443");
}

#[test]
fn the_server_header_follows_the_transformation() {
    let mut h = request(&[("server", "upstream")]);
    edge(HttpConnectionManager::default()).server_header(&mut h);
    assert_eq!(get(&h, "server"), Some("envoy"));
    let named = edge(HttpConnectionManager {
        server_name: "istio-envoy".into(),
        server_header_transformation: 1,
        ..Default::default()
    });
    named.server_header(&mut h);
    assert_eq!(get(&h, "server"), Some("envoy"), "present: kept");
    let mut empty = HeaderMap::new();
    named.server_header(&mut empty);
    assert_eq!(get(&empty, "server"), Some("istio-envoy"));
    let pass = edge(HttpConnectionManager {
        server_header_transformation: 2,
        ..Default::default()
    });
    let mut h = request(&[("server", "upstream")]);
    pass.server_header(&mut h);
    assert_eq!(get(&h, "server"), Some("upstream"));
}

#[test]
fn header_features_not_implemented_are_refused() {
    let err = Edge::from_proto(&HttpConnectionManager {
        via: "1.1 gateway".into(),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(err.0, "via");
    let err = Edge::from_proto(&HttpConnectionManager {
        append_x_forwarded_port: true,
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(err.0, "append_x_forwarded_port");
}
