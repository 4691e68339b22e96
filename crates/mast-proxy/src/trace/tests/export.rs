//! Export through a real cluster to a collector stand-in on 127.0.0.1: the request hooks
//! end to end (a span per request, posted after the response body ends), batching (5 spans
//! go at once), OTLP, and a slow collector: the buffer is bounded and the overflow counted.

use std::time::{Duration, Instant};

use bytes::Bytes;
use envoy_types::pb::envoy::config::cluster::v3::Cluster as PbCluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::google::protobuf::{Duration as PbDuration, UInt32Value};
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mast_otlp::ExportTraceServiceRequest;
use parking_lot::Mutex;
use serde_json::Value;

use super::*;
use crate::cluster::{ClusterConfig, ClusterManager};
use crate::hcm::flags::Flags;
use crate::trace::context::TraceId;
use crate::trace::record::{FinishedSpan, Kind};
use crate::trace::reporter::Reporter;

/// One POST the stand-in received.
#[derive(Debug, Clone)]
struct Post {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

type Posts = Arc<Mutex<Vec<Post>>>;

/// A collector stand-in answering `status` after `delay`.
async fn collector(status: u16, delay: Duration) -> (SocketAddr, Posts) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let posts: Posts = Arc::default();
    let seen = Arc::clone(&posts);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let seen = Arc::clone(&seen);
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    seen.lock().push(Post {
                        path: parts.uri.path().to_owned(),
                        headers: parts.headers,
                        body,
                    });
                    tokio::time::sleep(delay).await;
                    let mut r = http::Response::new(Full::new(Bytes::new()));
                    *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, posts)
}

/// A cluster manager with one STATIC cluster `name` → `port` on 127.0.0.1.
fn clusters(name: &str, port: u16) -> Arc<ClusterManager> {
    let endpoint = LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: "127.0.0.1".into(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(port.into())),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        })),
        load_balancing_weight: Some(UInt32Value { value: 1 }),
        ..Default::default()
    };
    let pb = PbCluster {
        name: name.into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        connect_timeout: Some(PbDuration {
            seconds: 1,
            nanos: 0,
        }),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name.into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![endpoint],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let m = ClusterManager::new();
    m.apply_clusters(vec![ClusterConfig::from_proto(&pb).unwrap()], &[]);
    Arc::new(m)
}

/// Waits (at most 5 s) until `posts` holds `n` POSTs.
async fn wait_posts(posts: &Posts, n: usize) -> Vec<Post> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = posts.lock().clone();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One request through the hooks; the upstream trace id it propagated.
async fn one_request(config: &Arc<TraceConfig>, cm: &Arc<ClusterManager>, status: u16) -> String {
    let mut p = parts(&[("x-request-id", "125a4afb-6f55-44ba-ad80-413f09f48a28")]);
    crate::trace::start(config, false, peer(), &mut p);
    crate::trace::set_operation(&mut p.extensions, Some("svc:8080/*"));
    let mut head = HeaderMap::new();
    crate::trace::inject(&p.extensions, &mut head);
    let received = Arc::new(std::sync::atomic::AtomicU64::new(7));
    let done = crate::trace::Finish {
        status,
        flags: Flags::NONE,
        upstream_cluster: Some("outbound|8080||svc"),
        upstream_host: Some("127.0.0.1:1".parse().unwrap()),
        received,
    };
    let response = http::Response::new(crate::body::full("hello"));
    let response = crate::trace::finish(&mut p.extensions, done, cm, response);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "hello");
    head.get("x-b3-traceid")
        .or(head.get("traceparent"))
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn zipkin_span_reaches_the_collector() {
    let (addr, posts) = collector(202, Duration::ZERO).await;
    let cm = clusters("zipkin", addr.port());
    let config = config(&tracing(&zipkin_pb("zipkin"), 100.0));
    let trace = one_request(&config, &cm, 503).await;
    let got = wait_posts(&posts, 1).await;
    assert_eq!(got.len(), 1, "one batch");
    let post = &got[0];
    assert_eq!(post.path, "/api/v2/spans");
    assert_eq!(post.headers["host"], "zipkin.local:9411");
    assert_eq!(post.headers["content-type"], "application/json");
    let spans: Value = serde_json::from_slice(&post.body).unwrap();
    let s = &spans[0];
    assert_eq!(s["traceId"], trace);
    assert_eq!(s["kind"], "CLIENT");
    assert_eq!(s["name"], "svc:8080/*");
    let tags = &s["tags"];
    for (k, v) in [
        ("http.status_code", "503"),
        ("error", "true"),
        ("upstream_cluster", "outbound|8080||svc"),
        ("response_size", "5"),
        ("request_size", "7"),
        ("component", "proxy"),
        ("http.method", "GET"),
        ("http.url", "http://svc.default:8080/p?q=1"),
        ("guid:x-request-id", "125a4afb-6f55-94ba-ad80-413f09f48a28"),
        ("peer.address", "10.0.0.7:40000"),
    ] {
        assert_eq!(tags[k], v, "{k} in {s}");
    }
}

#[tokio::test]
async fn unsampled_requests_export_nothing() {
    let (addr, posts) = collector(202, Duration::ZERO).await;
    let cm = clusters("zipkin", addr.port());
    let config = config(&tracing(&zipkin_pb("zipkin"), 0.0));
    let trace = one_request(&config, &cm, 200).await;
    assert_eq!(trace.len(), 32, "propagated all the same");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(posts.lock().is_empty());
}

#[tokio::test]
async fn opentelemetry_exports_otlp_protobuf() {
    let (addr, posts) = collector(200, Duration::ZERO).await;
    let cm = clusters("otel", addr.port());
    let config = config(&tracing(&otel_pb("otel"), 100.0));
    let traceparent = one_request(&config, &cm, 200).await;
    let got = wait_posts(&posts, 1).await;
    let post = &got[0];
    assert_eq!(post.path, "/v1/traces");
    assert_eq!(post.headers["content-type"], "application/x-protobuf");
    let req = <ExportTraceServiceRequest as prost::Message>::decode(post.body.as_ref()).unwrap();
    let span = &req.resource_spans[0].scope_spans[0].spans[0];
    let hex: String = span.trace_id.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, traceparent[3..35]);
    assert_eq!(span.kind, mast_otlp::SPAN_KIND_CLIENT);
    assert_eq!(span.name, "svc:8080/*");
}

fn finished(n: u64) -> FinishedSpan {
    FinishedSpan {
        trace_id: TraceId {
            high: 1,
            low: n + 1,
            wide: true,
        },
        id: n + 1,
        parent_id: None,
        name: format!("span-{n}"),
        kind: Kind::Server,
        shared: false,
        tracestate: None,
        start_us: 1,
        duration_us: 1,
        tags: vec![],
    }
}

#[tokio::test]
async fn five_spans_go_at_once() {
    let (addr, posts) = collector(202, Duration::ZERO).await;
    let cm = clusters("zipkin", addr.port());
    let c = config(&tracing(&zipkin_pb("zipkin"), 100.0));
    let reporter = Reporter::start(c.provider.as_ref().unwrap(), cm).unwrap();
    let started = Instant::now();
    for n in 0..5 {
        reporter.report(finished(n));
    }
    let got = wait_posts(&posts, 1).await;
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "no wait for the timer"
    );
    let spans: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(spans.as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn a_slow_collector_bounds_the_buffer() {
    let (addr, posts) = collector(200, Duration::from_secs(2)).await;
    let cm = clusters("otel", addr.port());
    let mut pb = otel_pb("otel");
    pb.max_cache_size = Some(UInt32Value { value: 2 });
    let c = config(&tracing(&pb, 100.0));
    let reporter = Reporter::start(c.provider.as_ref().unwrap(), cm).unwrap();
    let dropped = crate::trace::stats::global().otel.spans_dropped.get();
    for n in 0..5 {
        reporter.report(finished(n));
    }
    // The first batch is now stuck at the collector: 2 more fit, the rest are dropped.
    wait_posts(&posts, 1).await;
    let started = Instant::now();
    for n in 5..15 {
        reporter.report(finished(n));
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "reporting never waits"
    );
    let now = crate::trace::stats::global().otel.spans_dropped.get();
    assert!(now - dropped >= 8, "dropped {}", now - dropped);
}

#[tokio::test]
async fn a_missing_or_dead_collector_is_counted() {
    let stats = crate::trace::stats::global();
    let (skipped, failed) = (
        stats.zipkin.reports_skipped_no_cluster.get(),
        stats.zipkin.reports_failed.get(),
    );
    // A closed port: bind, note, drop.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = config(&tracing(&zipkin_pb("zipkin"), 100.0));
    let provider = c.provider.as_ref().unwrap();
    let dead = Reporter::start(provider, clusters("zipkin", port)).unwrap();
    let missing = Reporter::start(provider, clusters("other", port)).unwrap();
    for n in 0..5 {
        dead.report(finished(n));
        missing.report(finished(n));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while (stats.zipkin.reports_skipped_no_cluster.get() == skipped
        || stats.zipkin.reports_failed.get() == failed)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stats.zipkin.reports_skipped_no_cluster.get() > skipped);
    assert!(stats.zipkin.reports_failed.get() > failed);
}

#[tokio::test]
async fn same_tracer_configuration_shares_one_exporter() {
    let cm = clusters("zipkin", 9);
    let a = config(&tracing(&zipkin_pb("zipkin"), 100.0));
    let b = config(&tracing(&zipkin_pb("zipkin"), 1.0));
    let ra = Arc::clone(a.reporter(&cm).unwrap());
    assert!(Arc::ptr_eq(&ra, b.reporter(&cm).unwrap()));
    let mut other = zipkin_pb("zipkin");
    other.collector_endpoint = "/other".into();
    let c = config(&tracing(&other, 100.0));
    assert!(!Arc::ptr_eq(&ra, c.reporter(&cm).unwrap()));
    let d = config(&tracing(&zipkin_pb("zipkin"), 100.0));
    assert!(!Arc::ptr_eq(
        &ra,
        d.reporter(&clusters("zipkin", 9)).unwrap()
    ));
}

/// `spawn_upstream_span` (gateways): the connection manager's span is SERVER, the router's
/// child `router <cluster> egress` is CLIENT under it, and the child's id goes upstream.
#[tokio::test]
async fn spawned_upstream_spans_are_children_of_a_server_span() {
    let (addr, posts) = collector(202, Duration::ZERO).await;
    let cm = clusters("zipkin", addr.port());
    let mut t = tracing(&zipkin_pb("zipkin"), 100.0);
    t.spawn_upstream_span = Some(envoy_types::pb::google::protobuf::BoolValue { value: true });
    let config = config(&t);
    let mut p = parts(&[("x-request-id", "125a4afb-6f55-44ba-ad80-413f09f48a28")]);
    crate::trace::start(&config, false, peer(), &mut p);
    let mut head = HeaderMap::new();
    let child =
        crate::trace::upstream::inject_upstream(&p.extensions, &mut head, "outbound|80||svc");
    let parent_id = p.extensions.get::<RequestTrace>().unwrap().span_id();
    let upstream: Option<SocketAddr> = Some("127.0.0.1:9".parse().unwrap());
    crate::trace::upstream::finish_upstream(child, "outbound|80||svc", 200, upstream, &cm);
    let done = crate::trace::Finish {
        status: 200,
        flags: Flags::NONE,
        upstream_cluster: Some("outbound|80||svc"),
        upstream_host: upstream,
        received: Arc::new(std::sync::atomic::AtomicU64::new(0)),
    };
    let response = http::Response::new(crate::body::full("ok"));
    let response = crate::trace::finish(&mut p.extensions, done, &cm, response);
    let _ = response.into_body().collect().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut spans = Vec::new();
    while spans.len() < 2 && Instant::now() < deadline {
        spans = wait_posts(&posts, 1)
            .await
            .iter()
            .flat_map(|p| serde_json::from_slice::<Vec<Value>>(&p.body).unwrap_or_default())
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let server = spans
        .iter()
        .find(|s| s["kind"] == "SERVER")
        .expect("server span");
    let client = spans
        .iter()
        .find(|s| s["kind"] == "CLIENT")
        .expect("client span");
    assert_eq!(client["name"], "router outbound|80||svc egress");
    assert_eq!(client["parentId"], server["id"]);
    assert_eq!(server["id"], format!("{parent_id:016x}"));
    assert_eq!(
        head["x-b3-spanid"].to_str().unwrap(),
        client["id"].as_str().unwrap(),
        "the child's context goes upstream"
    );
    assert_eq!(
        head["x-b3-parentspanid"].to_str().unwrap(),
        format!("{parent_id:016x}")
    );
    assert_eq!(client["tags"]["upstream_address"], "127.0.0.1:9");
}
