//! Real sockets on 127.0.0.1: HTTP/1.1 keep-alive reuse, upstreams closing idle connections,
//! HTTP/2 multiplexing, breakers with a slow upstream, connect failures, raw connections,
//! pools kept across EDS/CDS updates, STRICT_DNS and the dynamic forward proxy.

use std::sync::atomic::Ordering;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::{CircuitBreakers, circuit_breakers::Thresholds};
use envoy_types::pb::google::protobuf::Any;
use http_body_util::BodyExt as _;
use prost::Message as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::super::{SelectError, UpstreamError};
use super::servers::*;
use super::*;

#[tokio::test]
async fn http1_keep_alive_reuses_one_connection() {
    let (port, seen) = server(false, Duration::ZERO).await;
    let (_m, c) = manager_with(&static_pb("k", LbPolicy::RoundRobin, &[(port, 1)]));
    for _ in 0..5 {
        assert_eq!(get(&c, port).await.unwrap(), "ok");
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 5);
    assert_eq!(seen.conns.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn upstream_closing_idle_connections_is_invisible() {
    for linger in [Duration::ZERO, Duration::from_millis(30)] {
        let (port, seen) = closing_server(linger).await;
        let (_m, c) = manager_with(&static_pb("z", LbPolicy::RoundRobin, &[(port, 1)]));
        for i in 0..6 {
            assert_eq!(get(&c, port).await.expect("no error"), "ok", "request {i}");
            if i % 2 == 1 {
                tokio::time::sleep(linger * 2).await;
            }
        }
        assert_eq!(seen.requests.load(Ordering::SeqCst), 6);
    }
}

#[tokio::test]
async fn http2_multiplexes_on_one_connection() {
    let (port, seen) = server(true, Duration::from_millis(100)).await;
    let mut pb = static_pb("h2", LbPolicy::RoundRobin, &[(port, 1)]);
    pb.typed_extension_protocol_options.insert(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".into(),
        h2_options(),
    );
    let (_m, c) = manager_with(&pb);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move { get(&c, port).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), "ok");
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 10);
    assert_eq!(seen.conns.load(Ordering::SeqCst), 1);
}

fn limited(port: u16) -> PbCluster {
    let mut pb = static_pb("l", LbPolicy::RoundRobin, &[(port, 1)]);
    pb.circuit_breakers = Some(CircuitBreakers {
        thresholds: vec![Thresholds {
            max_connections: Some(UInt32Value { value: 1 }),
            max_pending_requests: Some(UInt32Value { value: 1 }),
            ..Default::default()
        }],
        ..Default::default()
    });
    pb
}

#[tokio::test]
async fn max_connections_and_pending_overflow() {
    let (port, seen) = server(false, Duration::from_millis(300)).await;
    let (_m, c) = manager_with(&limited(port));
    let c1 = c.clone();
    let first = tokio::spawn(async move { get(&c1, port).await });
    wait_for(1, &seen.requests).await;
    let c2 = c.clone();
    let second = tokio::spawn(async move { get(&c2, port).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(matches!(get(&c, port).await, Err(UpstreamError::Overflow)));
    assert_eq!(first.await.unwrap().unwrap(), "ok");
    assert_eq!(
        second.await.unwrap().unwrap(),
        "ok",
        "the pending request is served"
    );
    assert_eq!(seen.conns.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn raw_connections_count_toward_max_connections() {
    let (port, _seen) = server(false, Duration::ZERO).await;
    let (_m, c) = manager_with(&limited(port));
    let ep = c.select(&ctx()).await.unwrap();
    let mut conn = ep.connect().await.unwrap();
    assert!(matches!(ep.connect().await, Err(UpstreamError::Overflow)));
    conn.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    conn.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    drop(conn);
    assert!(ep.connect().await.is_ok());
}

#[tokio::test]
async fn connect_failure_to_a_closed_port() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let (_m, c) = manager_with(&static_pb("f", LbPolicy::RoundRobin, &[(port, 1)]));
    assert!(matches!(
        get(&c, port).await,
        Err(UpstreamError::ConnectFailure(_))
    ));
}

#[tokio::test]
async fn updates_keep_the_pool() {
    let (port, seen) = server(false, Duration::ZERO).await;
    let (m, c) = manager_with(&cluster_pb("u", DiscoveryType::Eds, LbPolicy::RoundRobin));
    eds(&m, &cla("u", &[("127.0.0.1", port, 1)]));
    get(&c, port).await.unwrap();
    // EDS: same endpoint plus another (weight change too).
    eds(
        &m,
        &cla("u", &[("127.0.0.1", port, 2), ("127.0.0.1", 1, 1)]),
    );
    let ep = c
        .endpoints()
        .into_iter()
        .find(|e| e.address().port() == port)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await; // the connection returns to the pool
    ep.send(request(port))
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    // CDS: a changed breaker keeps pools (same connection options).
    let mut pb = cluster_pb("u", DiscoveryType::Eds, LbPolicy::RoundRobin);
    pb.circuit_breakers = Some(CircuitBreakers {
        thresholds: vec![Thresholds {
            max_requests: Some(UInt32Value { value: 7 }),
            ..Default::default()
        }],
        ..Default::default()
    });
    m.apply_clusters(vec![ClusterConfig::from_proto(&pb).unwrap()], &[]);
    let c2 = m.get("u").unwrap();
    assert!(!Arc::ptr_eq(&c, &c2));
    let ep = c2
        .endpoints()
        .into_iter()
        .find(|e| e.address().port() == port)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    ep.send(request(port))
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    assert_eq!(seen.requests.load(Ordering::SeqCst), 3);
    assert_eq!(seen.conns.load(Ordering::SeqCst), 1, "no new connection");
}

#[tokio::test]
async fn strict_dns_resolves_localhost() {
    let (port, _seen) = server(false, Duration::ZERO).await;
    let mut pb = cluster_pb("d", DiscoveryType::StrictDns, LbPolicy::RoundRobin);
    pb.dns_lookup_family = 1; // V4_ONLY
    pb.load_assignment = Some(cla("d", &[("localhost", port, 1)]));
    let (_m, c) = manager_with(&pb);
    let ep = c.select(&ctx()).await.unwrap();
    assert_eq!(ep.address(), local(port));
    assert_eq!(get(&c, port).await.unwrap(), "ok");
}

fn forward_proxy_pb() -> PbCluster {
    use envoy_types::pb::envoy::config::cluster::v3::cluster::CustomClusterType;
    use envoy_types::pb::envoy::extensions::clusters::dynamic_forward_proxy::v3::{
        ClusterConfig as Dfp, cluster_config::ClusterImplementationSpecifier,
    };
    use envoy_types::pb::envoy::extensions::common::dynamic_forward_proxy::v3::DnsCacheConfig;
    let cfg = Dfp {
        cluster_implementation_specifier: Some(ClusterImplementationSpecifier::DnsCacheConfig(
            DnsCacheConfig {
                name: "mast_dns_cache".into(),
                dns_lookup_family: 3, // V4_PREFERRED
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    let mut pb = cluster_pb(
        "ForwardProxyCluster",
        DiscoveryType::Static,
        LbPolicy::ClusterProvided,
    );
    pb.cluster_discovery_type = Some(ClusterDiscoveryType::ClusterType(CustomClusterType {
        name: "envoy.clusters.dynamic_forward_proxy".into(),
        typed_config: Some(Any {
            type_url: "type.googleapis.com/envoy.extensions.clusters.dynamic_forward_proxy.v3.ClusterConfig".into(),
            value: cfg.encode_to_vec(),
        }),
    }));
    pb
}

#[tokio::test]
async fn dynamic_forward_proxy_resolves_the_authority() {
    let (port, seen) = server(false, Duration::ZERO).await;
    let (_m, c) = manager_with(&forward_proxy_pb());
    let authority = format!("localhost:{port}");
    let ctx = LbContext {
        authority: Some(&authority),
        ..LbContext::default()
    };
    let ep = c.select(&ctx).await.unwrap();
    assert_eq!(ep.address(), local(port));
    let resp = ep.send(request(port)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(seen.requests.load(Ordering::SeqCst), 1);
    let bad = LbContext {
        authority: Some("bad host:x"),
        ..LbContext::default()
    };
    assert!(matches!(
        c.select(&bad).await,
        Err(SelectError::DnsFailure(_))
    ));
    let none = LbContext::default();
    assert!(matches!(
        c.select(&none).await,
        Err(SelectError::DnsFailure(_))
    ));
}

#[tokio::test]
async fn connect_timeout_against_a_full_backlog() {
    // A loopback listener that never accepts, with a backlog of 1: once its queue is full the
    // kernel drops further SYNs, so the cluster's connect_timeout fires.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(local(0)).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    for _ in 0..8 {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        if let Ok(Ok(c)) = tokio::time::timeout(Duration::from_millis(50), s.connect(addr)).await {
            held.push(c);
        }
    }
    let mut pb = static_pb("t", LbPolicy::RoundRobin, &[(addr.port(), 1)]);
    pb.connect_timeout = Some(PbDuration {
        seconds: 0,
        nanos: 200_000_000,
    });
    let (_m, c) = manager_with(&pb);
    let started = std::time::Instant::now();
    assert!(matches!(
        get(&c, addr.port()).await,
        Err(UpstreamError::ConnectTimeout)
    ));
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(listener);
}

#[tokio::test]
async fn bind_address_and_tcp_keepalive_apply_to_connections() {
    use envoy_types::pb::envoy::config::cluster::v3::UpstreamConnectionOptions;
    use envoy_types::pb::envoy::config::core::v3::{BindConfig, SocketAddress, TcpKeepalive};
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let mut pb = static_pb("b", LbPolicy::RoundRobin, &[(port, 1)]);
    pb.upstream_bind_config = Some(BindConfig {
        source_address: Some(SocketAddress {
            address: "127.0.0.6".into(),
            port_specifier: Some(
                envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(
                    0,
                ),
            ),
            ..Default::default()
        }),
        ..Default::default()
    });
    pb.upstream_connection_options = Some(UpstreamConnectionOptions {
        tcp_keepalive: Some(TcpKeepalive {
            keepalive_probes: Some(UInt32Value { value: 3 }),
            keepalive_time: Some(UInt32Value { value: 7200 }),
            keepalive_interval: Some(UInt32Value { value: 75 }),
        }),
        ..Default::default()
    });
    let (_m, c) = manager_with(&pb);
    let conn = c.select(&ctx()).await.unwrap().connect().await.unwrap();
    let (_server, peer) = l.accept().await.unwrap();
    assert_eq!(peer.ip().to_string(), "127.0.0.6");
    let sock = socket2::SockRef::from(conn.stream());
    assert!(sock.keepalive().unwrap());
    assert_eq!(
        sock.tcp_keepalive_time().unwrap(),
        Duration::from_secs(7200)
    );
    assert_eq!(sock.tcp_keepalive_retries().unwrap(), 3);
}

#[tokio::test]
async fn forward_proxy_defaults_to_port_80() {
    let (_m, c) = manager_with(&forward_proxy_pb());
    let ctx = LbContext {
        authority: Some("localhost"),
        ..LbContext::default()
    };
    assert_eq!(c.select(&ctx).await.unwrap().address(), local(80));
}
