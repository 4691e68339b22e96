//! Tracing through real listeners on 127.0.0.1, in process: the proxy is configured as mastd
//! would configure two sidecars (hand-built CDS and LDS through `xds::Handler::apply`): a
//! client's outbound listener (OUTBOUND, HCM `tracing`) routing to a server's inbound listener
//! (INBOUND, same `tracing`) routing to an `EchoServer` that records the headers it gets. The
//! tracer's collector cluster points at a collector stand-in (a hyper server on port 0 that
//! records POST bodies).
//! - Zipkin: the application sees `x-b3-traceid` (the caller's when given, else a new 32-hex
//!   id) and `x-request-id`; the collector receives a CLIENT and a SERVER span of that trace,
//!   chained, tagged `http.status_code` and `upstream_cluster`.
//! - OpenTelemetry: `traceparent` in → `traceparent` out (same trace), OTLP protobuf decoded.
//! - `random_sampling` 0: headers still propagated with `x-b3-sampled: 0`, no span exported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "tracing/generated.rs"]
mod generated;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::{
    Address, HttpService, HttpUri, SocketAddress, TrafficDirection, address, http_uri,
    socket_address,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::{
    Decorator, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route,
    route_action, route_match,
};
use envoy_types::pb::envoy::config::trace::v3::tracing::Http as Provider;
use envoy_types::pb::envoy::config::trace::v3::tracing::http::ConfigType;
use envoy_types::pb::envoy::config::trace::v3::{OpenTelemetryConfig, ZipkinConfig};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_connection_manager::RouteSpecifier,
    http_connection_manager::Tracing,
};
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::{BoolValue, Duration as PbDuration};
use envoy_types::util::pack_any;
use http_body_util::{BodyExt as _, Full};
use mast_otlp::{ExportTraceServiceRequest, SPAN_KIND_CLIENT, SPAN_KIND_SERVER, Span};
use mast_proxy::cluster::ClusterManager;
use mast_proxy::config::{CLUSTER, LISTENER, Proxy, RouteStore};
use mast_proxy::hcm::Env;
use mast_proxy::signals::Signals;
use mast_proxy::stats::ProxyStats;
use mast_proxy::xds::{Handler, Resource, Update};
use mast_test_support::{EchoServer, HttpRequest, free_port};
use parking_lot::Mutex;
use prost::Message as _;
use serde_json::Value;

const TRACE: &str = "463ac35c9f6413ad48485a3953bb6124";
const SPAN: &str = "a2fb4a1d1a96d312";

type Posts = Arc<Mutex<Vec<Bytes>>>;

/// A collector stand-in answering `status` to every POST; the bodies it received.
async fn collector(status: u16) -> (u16, Posts) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let posts: Posts = Arc::default();
    let seen = Arc::clone(&posts);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let seen = Arc::clone(&seen);
                    async move {
                        let body = req.into_body().collect().await.map(|b| b.to_bytes());
                        seen.lock().push(body.unwrap_or_default());
                        let mut r = http::Response::new(Full::new(Bytes::new()));
                        *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc),
            );
        }
    });
    (port, posts)
}

fn socket(port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: "127.0.0.1".into(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port.into())),
            ..Default::default()
        })),
    }
}

fn resource(name: &str, value: envoy_types::pb::google::protobuf::Any) -> Resource {
    Resource {
        name: name.into(),
        version: "1".into(),
        value,
    }
}

/// A STATIC cluster `name` → 127.0.0.1:`port`.
fn cluster(name: &str, port: u16) -> Resource {
    let endpoint = LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
            address: Some(socket(port)),
            ..Default::default()
        })),
        ..Default::default()
    };
    let c = Cluster {
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
    resource(name, pack_any(c))
}

/// A listener on `port` whose HCM routes everything to `to`, with `tracing`.
fn listener(name: &str, port: u16, inbound: bool, to: &str, tracing: &Tracing) -> Resource {
    let route = Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
            ..Default::default()
        }),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(to.into())),
            ..Default::default()
        })),
        // As mastd's outbound routes: the span is named after the service.
        decorator: (!inbound).then(|| Decorator {
            operation: "svc.default.svc.cluster.local:80/*".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let hcm = HttpConnectionManager {
        stat_prefix: name.into(),
        route_specifier: Some(RouteSpecifier::RouteConfig(RouteConfiguration {
            name: name.into(),
            virtual_hosts: vec![VirtualHost {
                name: "all".into(),
                domains: vec!["*".into()],
                routes: vec![route],
                ..Default::default()
            }],
            ..Default::default()
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".into(),
            ..Default::default()
        }],
        tracing: Some(tracing.clone()),
        ..Default::default()
    };
    let direction = if inbound {
        TrafficDirection::Inbound
    } else {
        TrafficDirection::Outbound
    };
    let l = Listener {
        name: name.into(),
        address: Some(socket(port)),
        traffic_direction: direction as i32,
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    resource(name, pack_any(l))
}

fn tracing<T: prost::Message + prost::Name>(provider: T, random: f64) -> Tracing {
    Tracing {
        random_sampling: Some(Percent { value: random }),
        provider: Some(Provider {
            name: "tracer".into(),
            config_type: Some(ConfigType::TypedConfig(pack_any(provider))),
        }),
        ..Default::default()
    }
}

/// Istio's Zipkin provider, as mastd emits it.
fn zipkin(random: f64) -> Tracing {
    tracing(
        ZipkinConfig {
            collector_cluster: "zipkin".into(),
            collector_endpoint: "/api/v2/spans".into(),
            collector_endpoint_version: 1,
            trace_id_128bit: true,
            shared_span_context: Some(BoolValue { value: false }),
            ..Default::default()
        },
        random,
    )
}

fn otel(random: f64) -> Tracing {
    tracing(
        OpenTelemetryConfig {
            http_service: Some(HttpService {
                http_uri: Some(HttpUri {
                    uri: "http://otel-collector:4318/v1/traces".into(),
                    timeout: Some(PbDuration {
                        seconds: 5,
                        nanos: 0,
                    }),
                    http_upstream_type: Some(http_uri::HttpUpstreamType::Cluster("otel".into())),
                }),
                ..Default::default()
            }),
            service_name: "client.default".into(),
            ..Default::default()
        },
        random,
    )
}

/// A proxy (the first one installs the tracing node and counters for the process).
fn new_proxy() -> Proxy {
    let mut registry = prometheus_client::registry::Registry::default();
    mast_proxy::trace::install(
        mast_proxy::trace::LocalNode {
            id: "sidecar~127.0.0.1~client.default~default.svc.cluster.local".into(),
            cluster: "client.default".into(),
            zone: String::new(),
            ip: Some("127.0.0.1".parse().unwrap()),
        },
        mast_proxy::trace::stats::TraceStats::register(&mut registry),
    );
    let env = Arc::new(Env {
        clusters: Arc::new(ClusterManager::new()),
        routes: Arc::new(RouteStore::new()),
        access_log: None,
        stats: ProxyStats::register(&mut registry),
    });
    Proxy::new(env, Signals::new())
}

/// Two sidecars in one proxy: the client's outbound listener → the server's inbound
/// listener → the application; the collector cluster `collector_cluster` → `collector`.
struct Mesh {
    _proxy: Proxy,
    app: EchoServer,
    outbound: SocketAddr,
}

impl Mesh {
    fn start(tracing: &Tracing, collector_cluster: &str, collector: u16) -> Self {
        let proxy = new_proxy();
        let app = EchoServer::start("app").unwrap();
        let (outbound, inbound) = (free_port(), free_port());
        let clusters = vec![
            cluster("server-inbound", inbound),
            cluster("app", app.port()),
            cluster(collector_cluster, collector),
        ];
        let listeners = vec![
            listener(
                "client-outbound",
                outbound,
                false,
                "server-inbound",
                tracing,
            ),
            listener("server-inbound", inbound, true, "app", tracing),
        ];
        for (t, resources) in [(CLUSTER, clusters), (LISTENER, listeners)] {
            let update = Update {
                resources,
                removed: vec![],
                complete: false,
            };
            proxy
                .apply(t, &update)
                .unwrap_or_else(|e| panic!("{t}: {e}"));
        }
        Self {
            _proxy: proxy,
            app,
            outbound: SocketAddr::from(([127, 0, 0, 1], outbound)),
        }
    }

    /// GET through both sidecars; the headers the application received.
    async fn get(&self, headers: &[(&str, &str)]) -> http::HeaderMap {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = HttpRequest::get("http://svc.default.svc.cluster.local/hello")
                .headers(headers)
                .direct(self.outbound)
                .await;
            match r {
                Ok(r) if r.status == 200 => break,
                _ if Instant::now() > deadline => panic!("no answer: {r:?}"),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        self.app.last_request().unwrap().headers
    }
}

fn header<'a>(h: &'a http::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Waits (at most 5 s) for `want` spans of `trace` among the collector's posts, decoded by
/// `spans`; returns what was found.
async fn wait_spans<S>(posts: &Posts, want: usize, spans: impl Fn(&[u8]) -> Vec<S>) -> Vec<S> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found: Vec<S> = posts.lock().iter().flat_map(|b| spans(b)).collect();
        if found.len() >= want || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn zipkin_spans(trace: &str) -> impl Fn(&[u8]) -> Vec<Value> + '_ {
    move |body| {
        let v: Value = serde_json::from_slice(body).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .filter(|s| s["traceId"] == trace)
            .cloned()
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zipkin_continues_or_starts_traces_and_exports_both_spans() {
    let (port, posts) = collector(202).await;
    let mesh = Mesh::start(&zipkin(100.0), "zipkin", port);

    // The caller's trace is continued.
    let seen = mesh
        .get(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "1"),
        ])
        .await;
    assert_eq!(header(&seen, "x-b3-traceid"), TRACE);
    assert_eq!(header(&seen, "x-b3-sampled"), "1");
    let rid = header(&seen, "x-request-id");
    assert_eq!(rid.len(), 36, "{seen:?}");
    let spans = wait_spans(&posts, 2, zipkin_spans(TRACE)).await;
    assert_eq!(spans.len(), 2, "{spans:?}");
    let client = spans
        .iter()
        .find(|s| s["kind"] == "CLIENT")
        .expect("client span");
    let server = spans
        .iter()
        .find(|s| s["kind"] == "SERVER")
        .expect("server span");
    assert_eq!(client["parentId"], SPAN);
    assert_eq!(client["name"], "svc.default.svc.cluster.local:80/*");
    assert_eq!(client["localEndpoint"]["serviceName"], "client.default");
    assert_eq!(client["tags"]["upstream_cluster"], "server-inbound");
    assert_eq!(server["parentId"], client["id"]);
    assert_eq!(server["tags"]["upstream_cluster"], "app");
    assert_eq!(header(&seen, "x-b3-parentspanid"), client["id"]);
    assert_eq!(header(&seen, "x-b3-spanid"), server["id"]);
    for s in [client, server] {
        assert_eq!(s["tags"]["http.status_code"], "200", "{s}");
        assert_eq!(s["tags"]["guid:x-request-id"], rid, "{s}");
        assert!(s["duration"].as_u64().is_some(), "{s}");
    }

    // No context: a new 128-bit trace, the same id at both sidecars and the application.
    let seen = mesh.get(&[]).await;
    let trace = header(&seen, "x-b3-traceid").to_owned();
    assert!(
        trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()),
        "{trace}"
    );
    assert_ne!(trace, TRACE);
    assert!(!header(&seen, "x-request-id").is_empty());
    let spans = wait_spans(&posts, 2, zipkin_spans(&trace)).await;
    assert_eq!(spans.len(), 2, "{spans:?}");
    let stats = mast_proxy::trace::stats::global();
    assert!(stats.zipkin.reports_sent.get() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_sampling_propagates_unsampled_and_exports_nothing() {
    let (port, posts) = collector(202).await;
    let mesh = Mesh::start(&zipkin(0.0), "zipkin", port);
    let seen = mesh.get(&[]).await;
    assert_eq!(header(&seen, "x-b3-sampled"), "0");
    assert_eq!(header(&seen, "x-b3-traceid").len(), 32);
    // The caller's decision still wins.
    let forced = mesh
        .get(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "1"),
        ])
        .await;
    assert_eq!(header(&forced, "x-b3-sampled"), "1");
    let spans = wait_spans(&posts, 2, zipkin_spans(TRACE)).await;
    assert_eq!(spans.len(), 2);
    // Past a flush interval, nothing of the unsampled trace arrived.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let unsampled = header(&seen, "x-b3-traceid").to_owned();
    let leaked: Vec<Value> = posts
        .lock()
        .iter()
        .flat_map(|b| zipkin_spans(&unsampled)(b))
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentelemetry_continues_w3c_and_exports_otlp() {
    let (port, posts) = collector(200).await;
    let mesh = Mesh::start(&otel(100.0), "otel", port);
    let tp = format!("00-{TRACE}-{SPAN}-01");
    let seen = mesh
        .get(&[("traceparent", &tp), ("tracestate", "vendor=1")])
        .await;
    let out = header(&seen, "traceparent");
    let fields: Vec<&str> = out.split('-').collect();
    assert_eq!(
        (fields[0], fields[1], fields[3]),
        ("00", TRACE, "01"),
        "{out}"
    );
    assert_ne!(fields[2], SPAN);
    assert_eq!(header(&seen, "tracestate"), "vendor=1");
    assert!(seen.get("x-b3-traceid").is_none());
    let spans = wait_spans(&posts, 2, |body| {
        let req = ExportTraceServiceRequest::decode(body).unwrap();
        let rs = &req.resource_spans[0];
        let service = rs
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .find(|a| a.key == "service.name");
        assert!(service.is_some());
        rs.scope_spans
            .iter()
            .flat_map(|s| s.spans.clone())
            .filter(|s| hex(&s.trace_id) == TRACE)
            .collect::<Vec<Span>>()
    })
    .await;
    assert_eq!(spans.len(), 2, "{spans:?}");
    let client = spans.iter().find(|s| s.kind == SPAN_KIND_CLIENT).unwrap();
    let server = spans.iter().find(|s| s.kind == SPAN_KIND_SERVER).unwrap();
    assert_eq!(hex(&client.parent_span_id), SPAN);
    assert_eq!(server.parent_span_id, client.span_id);
    assert_eq!(hex(&server.span_id), fields[2]);
    assert_eq!(server.name, "ingress");
    let tag = |s: &Span, k: &str| {
        s.attributes
            .iter()
            .find(|a| a.key == k)
            .and_then(|a| a.value.clone())
            .and_then(|v| v.value)
    };
    use mast_otlp::Value as V;
    assert_eq!(
        tag(client, "http.status_code"),
        Some(V::StringValue("200".into()))
    );
    assert_eq!(
        tag(client, "upstream_cluster"),
        Some(V::StringValue("server-inbound".into()))
    );
}
