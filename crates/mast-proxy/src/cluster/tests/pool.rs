//! Pool limits on real sockets: idle timeout, max requests per connection, HTTP/2 max
//! concurrent streams, the downstream protocol, origin-form HTTP/2 requests, and removed
//! clusters not kept alive by their tasks.

use std::sync::atomic::Ordering;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{
    Http2ProtocolOptions, HttpProtocolOptions as CommonOptions,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    ExplicitHttpConfig, UpstreamProtocolOptions, UseDownstreamHttpConfig,
    explicit_http_config::ProtocolConfig,
};
use http_body_util::BodyExt as _;

use super::servers::*;
use super::*;

fn common(idle: Duration, max_requests: Option<u32>) -> HttpProtocolOptions {
    HttpProtocolOptions {
        common_http_protocol_options: Some(CommonOptions {
            idle_timeout: Some(PbDuration {
                seconds: idle.as_secs() as i64,
                nanos: idle.subsec_nanos() as i32,
            }),
            max_requests_per_connection: max_requests.map(|value| UInt32Value { value }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn idle_connections_close_after_idle_timeout() {
    let (port, seen) = server(false, Duration::ZERO).await;
    let pb = static_pb("i", LbPolicy::RoundRobin, &[(port, 1)]);
    let (_m, c) = manager_with(&with_http(
        pb,
        http_options(common(Duration::from_millis(100), None)),
    ));
    get(&c, port).await.unwrap();
    get(&c, port).await.unwrap();
    assert_eq!(seen.conns.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.closed.load(Ordering::SeqCst), 1, "closed by the proxy");
    get(&c, port).await.unwrap();
    assert_eq!(
        seen.conns.load(Ordering::SeqCst),
        2,
        "the idle one was closed"
    );
}

#[tokio::test]
async fn max_requests_per_connection() {
    let (port, seen) = server(false, Duration::ZERO).await;
    let pb = static_pb("m", LbPolicy::RoundRobin, &[(port, 1)]);
    let (_m, c) = manager_with(&with_http(
        pb,
        http_options(common(Duration::from_secs(10), Some(2))),
    ));
    for _ in 0..4 {
        get(&c, port).await.unwrap();
    }
    assert_eq!(seen.conns.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn http2_max_concurrent_streams_opens_more_connections() {
    let (port, seen) = server(true, Duration::from_millis(150)).await;
    let o = HttpProtocolOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(Http2ProtocolOptions {
                    max_concurrent_streams: Some(UInt32Value { value: 2 }),
                    ..Default::default()
                })),
            },
        )),
        ..Default::default()
    };
    let pb = static_pb("s", LbPolicy::RoundRobin, &[(port, 1)]);
    let (_m, c) = manager_with(&with_http(pb, http_options(o)));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { get(&c, port).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), "ok");
    }
    assert_eq!(seen.conns.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn downstream_protocol_and_origin_form_http2() {
    let (p1, s1) = server(false, Duration::ZERO).await;
    let (p2, s2) = server(true, Duration::ZERO).await;
    let o = HttpProtocolOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(
            UseDownstreamHttpConfig::default(),
        )),
        ..Default::default()
    };
    let pb = static_pb("d", LbPolicy::RoundRobin, &[(p1, 1), (p2, 1)]);
    let (_m, c) = manager_with(&with_http(pb, http_options(o)));
    let eps = c.endpoints();
    let h1 = eps.iter().find(|e| e.address().port() == p1).unwrap();
    let h2 = eps.iter().find(|e| e.address().port() == p2).unwrap();
    assert_eq!(h1.send(request(p1)).await.unwrap().status(), 200);
    let req = http::Request::builder()
        .version(http::Version::HTTP_2)
        .uri("/origin-form")
        .header("host", format!("127.0.0.1:{p2}"))
        .body(crate::body::empty())
        .unwrap();
    let resp = h2.send(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();
    assert_eq!(s1.requests.load(Ordering::SeqCst), 1);
    assert_eq!(s2.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn removed_clusters_are_dropped_despite_their_tasks() {
    use envoy_types::pb::envoy::config::cluster::v3::OutlierDetection;
    let mut pb = static_pb("gone", LbPolicy::RoundRobin, &[(1, 1)]);
    pb.outlier_detection = Some(OutlierDetection {
        interval: Some(PbDuration {
            seconds: 0,
            nanos: 5_000_000,
        }),
        enforcing_success_rate: Some(UInt32Value { value: 0 }),
        ..Default::default()
    });
    let (m, c) = manager_with(&pb);
    let weak = Arc::downgrade(&c);
    drop(c);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(weak.upgrade().is_some(), "kept while configured");
    m.apply_clusters(vec![], &["gone".to_string()]);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(weak.upgrade().is_none(), "dropped once removed");
}

/// An HTTP/2 server whose response body arrives `delay` after the headers.
async fn slow_body_h2(delay: Duration) -> u16 {
    use bytes::Bytes;
    use http_body_util::StreamBody;
    use hyper::body::Frame;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = l.accept().await {
            let svc = hyper::service::service_fn(move |_req| async move {
                let body = StreamBody::new(futures::stream::once(async move {
                    tokio::time::sleep(delay).await;
                    Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(b"late")))
                }));
                Ok::<_, std::convert::Infallible>(http::Response::new(body))
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc),
            );
        }
    });
    port
}

#[tokio::test]
async fn http2_idle_timeout_never_cuts_a_streaming_response() {
    let port = slow_body_h2(Duration::from_millis(300)).await;
    let mut o = common(Duration::from_millis(80), None);
    o.upstream_protocol_options = Some(UpstreamProtocolOptions::ExplicitHttpConfig(
        ExplicitHttpConfig {
            protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(Default::default())),
        },
    ));
    let pb = static_pb("t", LbPolicy::RoundRobin, &[(port, 1)]);
    let (_m, c) = manager_with(&with_http(pb, http_options(o)));
    assert_eq!(get(&c, port).await.unwrap(), "late");
}

#[tokio::test]
async fn http2_requests_wait_for_a_stream_slot() {
    use envoy_types::pb::envoy::config::cluster::v3::{
        CircuitBreakers, circuit_breakers::Thresholds,
    };
    let (port, seen) = server(true, Duration::from_millis(50)).await;
    let o = HttpProtocolOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(Http2ProtocolOptions {
                    max_concurrent_streams: Some(UInt32Value { value: 1 }),
                    ..Default::default()
                })),
            },
        )),
        ..Default::default()
    };
    let mut pb = with_http(
        static_pb("w", LbPolicy::RoundRobin, &[(port, 1)]),
        http_options(o),
    );
    pb.circuit_breakers = Some(CircuitBreakers {
        thresholds: vec![Thresholds {
            max_connections: Some(UInt32Value { value: 1 }),
            ..Default::default()
        }],
        ..Default::default()
    });
    let (_m, c) = manager_with(&pb);
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { get(&c, port).await })
        })
        .collect();
    for t in tasks {
        let r = tokio::time::timeout(Duration::from_secs(5), t).await;
        assert_eq!(r.unwrap().unwrap().unwrap(), "ok");
    }
    assert_eq!(seen.conns.load(Ordering::SeqCst), 1);
}
