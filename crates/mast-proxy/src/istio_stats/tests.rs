//! The metrics as a scrape shows them: the peer metadata exchange on both sides, labels,
//! buckets, gRPC status from trailers, TCP counters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use ::http::{HeaderMap, HeaderValue, Response, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use prometheus_client::registry::Registry;

use super::http::{Tracker, outbound_request_in, upstream_endpoint_in, upstream_response_in};
use super::peer::{METADATA, METADATA_ID};
use super::*;
use crate::bootstrap::{Capture, NodeSpec};
use crate::hcm::flags::Flags;
use crate::tls::PeerTls;

fn spec(workload: &str, app: &str, version: &str, sa: &str) -> NodeSpec {
    let labels: BTreeMap<String, String> = [("app", app), ("version", version)]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    NodeSpec {
        proxy_type: Default::default(),
        ip: "127.0.0.1".into(),
        workload: workload.into(),
        workload_name: None,
        namespace: "default".into(),
        domain: "cluster.local".into(),
        labels,
        service_account: Some(sa.into()),
        cluster_id: "Kubernetes".into(),
        mesh_id: "cluster.local".into(),
        capture: Capture::Iptables,
        id_override: None,
    }
}

fn identity(workload: &str, app: &str, version: &str, sa: &str) -> Identity {
    let s = spec(workload, app, version, sa);
    Identity::from_node(&s, &s.node_id())
}

/// Metrics for `id` in a fresh registry (leaked: hooks hold `&'static`).
fn stats(id: Identity) -> (&'static IstioStats, &'static Registry) {
    let registry = Box::leak(Box::new(Registry::default()));
    let stats = Box::leak(Box::new(IstioStats::register(registry, id)));
    (stats, registry)
}

fn scrape(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text
}

/// The sample of `metric` whose labels contain every `label="value"` of `want`.
fn sample(text: &str, metric: &str, want: &[&str]) -> Option<String> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .find(|l| {
            want.iter()
                .all(|w| l.contains(&format!("{w},")) || l.contains(&format!("{w}}}")))
        })
        .map(|l| l.rsplit(' ').next().unwrap().to_owned())
}

async fn drain(response: Response<crate::body::Body>) {
    let _ = response.into_body().collect().await.unwrap();
}

fn with_body(status: StatusCode, body: &'static str) -> Response<crate::body::Body> {
    let mut r = Response::new(crate::body::full(body));
    *r.status_mut() = status;
    r
}

#[test]
fn peer_metadata_round_trips_with_istio_keys() {
    let s = spec("client", "client", "v1", "sleep");
    let value = peer::encode(&s);
    let w = peer::decode(value.as_bytes(), "cluster.local").unwrap();
    assert_eq!(w.workload, "client");
    assert_eq!(w.namespace, "default");
    assert_eq!(w.app, "client");
    assert_eq!(w.version, "v1");
    assert_eq!(w.canonical_service, "client");
    assert_eq!(w.canonical_revision, "v1");
    assert_eq!(w.cluster, "Kubernetes");
    assert_eq!(w.principal, "spiffe://cluster.local/ns/default/sa/sleep");
    assert!(peer::decode(b"not base64!", "cluster.local").is_none());
    // The same value again comes from the per-thread cache.
    let a = peer::lookup(value.as_bytes(), "cluster.local").unwrap();
    let b = peer::lookup(value.as_bytes(), "cluster.local").unwrap();
    assert!(Arc::ptr_eq(&a, &b));
}

#[test]
fn destination_service_from_cluster_names() {
    assert_eq!(
        service_of_cluster("outbound|80|v1|nginx-svc.default.svc.cluster.local"),
        Some((
            "nginx-svc.default.svc.cluster.local",
            "nginx-svc",
            "default"
        ))
    );
    assert_eq!(service_of_cluster("inbound|9080||"), None);
    assert_eq!(service_of_cluster("PassthroughCluster"), None);
    assert!(is_inbound("inbound_0.0.0.0_9080") && is_inbound("inbound|9080||"));
    assert!(!is_inbound("outbound_0.0.0.0_80"));
}

#[tokio::test]
async fn server_side_reads_strips_and_answers_the_metadata_exchange() {
    let (server, registry) = stats(identity("server-1", "server", "v2", "server"));
    let client = identity("client", "client", "v1", "sleep");
    let mut headers = HeaderMap::new();
    headers.insert(METADATA, client.metadata_header.clone());
    headers.insert(METADATA_ID, client.id_header.clone());
    let tls = Some(Arc::new(PeerTls {
        peer_uri_sans: vec!["spiffe://cluster.local/ns/default/sa/sleep".into()],
        ..Default::default()
    }));
    let t = Tracker::start_in(server, true, &tls, &mut headers);
    assert!(headers.is_empty(), "stripped before the app: {headers:?}");
    let received = Arc::new(AtomicU64::new(3));
    let r = t.finish(
        with_body(StatusCode::OK, "hello"),
        Some("inbound|8080||"),
        "nginx-svc:80",
        Flags::NONE,
        received,
    );
    assert_eq!(r.headers()[METADATA], server.identity.metadata_header);
    assert_eq!(r.headers()[METADATA_ID], server.identity.id_header);
    drain(r).await;
    let text = scrape(registry);
    let labels = [
        "reporter=\"destination\"",
        "source_workload=\"client\"",
        "source_workload_namespace=\"default\"",
        "source_principal=\"spiffe://cluster.local/ns/default/sa/sleep\"",
        "source_app=\"client\"",
        "source_version=\"v1\"",
        "destination_workload=\"server-1\"",
        "destination_principal=\"spiffe://cluster.local/ns/default/sa/server\"",
        "destination_version=\"v2\"",
        "destination_service=\"nginx-svc.default.svc.cluster.local\"",
        "destination_service_name=\"nginx-svc\"",
        "destination_service_namespace=\"default\"",
        "destination_cluster=\"Kubernetes\"",
        "request_protocol=\"http\"",
        "response_code=\"200\"",
        "grpc_response_status=\"\"",
        "response_flags=\"-\"",
        "connection_security_policy=\"mutual_tls\"",
    ];
    assert_eq!(
        sample(&text, "istio_requests_total", &labels).as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        sample(&text, "istio_request_bytes_sum", &labels).as_deref(),
        Some("3.0"),
        "{text}"
    );
    assert_eq!(
        sample(&text, "istio_response_bytes_sum", &labels).as_deref(),
        Some("5.0"),
        "{text}"
    );
    let bucket = [labels[0], "le=\"3600000.0\""];
    assert_eq!(
        sample(&text, "istio_request_duration_milliseconds_bucket", &bucket).as_deref(),
        Some("1"),
        "{text}"
    );
    assert!(text.contains("le=\"0.5\""), "{text}");
}

#[tokio::test]
async fn plaintext_inbound_without_exchange_is_none_and_unknown() {
    let (server, registry) = stats(identity("server-1", "server", "v2", "server"));
    let mut headers = HeaderMap::new();
    let t = Tracker::start_in(server, true, &None, &mut headers);
    let r = t.finish(
        with_body(StatusCode::NOT_FOUND, ""),
        None,
        "server.default.svc.cluster.local",
        Flags::NONE,
        Arc::new(AtomicU64::new(0)),
    );
    assert!(
        r.headers().get(METADATA).is_none(),
        "no exchange, no answer"
    );
    drain(r).await;
    let labels = [
        "reporter=\"destination\"",
        "source_workload=\"unknown\"",
        "source_principal=\"unknown\"",
        "destination_service=\"server.default.svc.cluster.local\"",
        "response_code=\"404\"",
        "connection_security_policy=\"none\"",
    ];
    let text = scrape(registry);
    assert_eq!(
        sample(&text, "istio_requests_total", &labels).as_deref(),
        Some("1"),
        "{text}"
    );
}

#[tokio::test]
async fn client_side_sends_metadata_and_labels_the_server_from_its_answer() {
    let (client, registry) = stats(identity("client", "client", "v1", "sleep"));
    let server = identity("server-1", "server", "v2", "server");
    let cluster = "outbound|80||nginx-svc.default.svc.cluster.local";
    let mut head = HeaderMap::new();
    outbound_request_in(client, cluster, false, &mut head);
    outbound_request_in(client, "inbound|80||", true, &mut head);
    assert!(head.is_empty(), "only to mesh clusters: {head:?}");
    outbound_request_in(client, cluster, true, &mut head);
    assert_eq!(head[METADATA], client.identity.metadata_header);
    assert_eq!(head[METADATA_ID], client.identity.id_header);

    let mut upstream = with_body(StatusCode::OK, "ok");
    upstream
        .headers_mut()
        .insert(METADATA, server.metadata_header.clone());
    upstream
        .headers_mut()
        .insert(METADATA_ID, server.id_header.clone());
    upstream_response_in(client, &mut upstream);
    assert!(
        upstream.headers().is_empty(),
        "stripped: {:?}",
        upstream.headers()
    );
    let mut req = HeaderMap::new();
    let t = Tracker::start_in(client, false, &None, &mut req);
    let r = t.finish(
        upstream,
        Some(cluster),
        "nginx-svc",
        Flags::NONE,
        Arc::new(AtomicU64::new(0)),
    );
    drain(r).await;
    // A local 503 (no healthy upstream): no peer answered.
    let t = Tracker::start_in(client, false, &None, &mut req);
    let r = t.finish(
        with_body(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream"),
        Some(cluster),
        "nginx-svc",
        Flags::NO_HEALTHY_UPSTREAM,
        Arc::new(AtomicU64::new(0)),
    );
    drain(r).await;

    let text = scrape(registry);
    let ok = [
        "reporter=\"source\"",
        "source_workload=\"client\"",
        "source_principal=\"spiffe://cluster.local/ns/default/sa/sleep\"",
        "destination_workload=\"server-1\"",
        "destination_app=\"server\"",
        "destination_version=\"v2\"",
        "destination_service=\"nginx-svc.default.svc.cluster.local\"",
        "response_code=\"200\"",
        "connection_security_policy=\"unknown\"",
    ];
    assert_eq!(
        sample(&text, "istio_requests_total", &ok).as_deref(),
        Some("1"),
        "{text}"
    );
    let unavailable = [
        "reporter=\"source\"",
        "destination_workload=\"unknown\"",
        "destination_service_name=\"nginx-svc\"",
        "response_code=\"503\"",
        "response_flags=\"UH\"",
    ];
    assert_eq!(
        sample(&text, "istio_requests_total", &unavailable).as_deref(),
        Some("1"),
        "{text}"
    );
}

#[tokio::test]
async fn grpc_status_comes_from_the_trailers() {
    let (client, registry) = stats(identity("client", "client", "v1", "sleep"));
    let mut req = HeaderMap::new();
    req.insert(
        ::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    let t = Tracker::start_in(client, false, &None, &mut req);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("14"));
    let frames: Vec<Result<http_body::Frame<Bytes>, crate::body::BoxError>> = vec![
        Ok(http_body::Frame::data(Bytes::from_static(b"abcd"))),
        Ok(http_body::Frame::trailers(trailers)),
    ];
    let body = crate::body::boxed(http_body_util::StreamBody::new(futures::stream::iter(
        frames,
    )));
    let r = t.finish(
        Response::new(body),
        Some("outbound|9000||grpc.default.svc.cluster.local"),
        "grpc",
        Flags::NONE,
        Arc::new(AtomicU64::new(0)),
    );
    drain(r).await;
    let text = scrape(registry);
    let labels = [
        "request_protocol=\"grpc\"",
        "grpc_response_status=\"14\"",
        "destination_service=\"grpc.default.svc.cluster.local\"",
    ];
    assert_eq!(
        sample(&text, "istio_requests_total", &labels).as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        sample(&text, "istio_response_bytes_sum", &labels).as_deref(),
        Some("4.0"),
        "{text}"
    );
}

#[test]
fn tcp_connections_and_bytes() {
    let (s, registry) = stats(identity("client", "client", "v1", "sleep"));
    let mut c = tcp::Conn::open_in(s, "outbound|5432||db.default.svc.cluster.local", &None);
    c.connected(None);
    c.bytes(10, 20);
    drop(c);
    drop(tcp::Conn::open_in(
        s,
        "outbound|5432||db.default.svc.cluster.local",
        &None,
    ));
    let text = scrape(registry);
    let ok = [
        "reporter=\"source\"",
        "source_workload=\"client\"",
        "destination_service=\"db.default.svc.cluster.local\"",
        "request_protocol=\"tcp\"",
        "response_flags=\"-\"",
    ];
    let failed = [ok[0], ok[2], "response_flags=\"UF\""];
    assert_eq!(
        sample(&text, "istio_tcp_connections_opened_total", &ok).as_deref(),
        Some("2"),
        "{text}"
    );
    assert_eq!(
        sample(&text, "istio_tcp_connections_closed_total", &ok).as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        sample(&text, "istio_tcp_connections_closed_total", &failed).as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        sample(&text, "istio_tcp_received_bytes_total", &ok).as_deref(),
        Some("10"),
        "{text}"
    );
    assert_eq!(
        sample(&text, "istio_tcp_sent_bytes_total", &ok).as_deref(),
        Some("20"),
        "{text}"
    );
    assert!(
        !text.contains("response_code"),
        "TCP has no response code: {text}"
    );
}

#[test]
fn tcp_peers_from_endpoint_metadata_and_mutual_tls() {
    use envoy_types::pb::envoy::config::core::v3::Metadata;
    use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
    let (s, registry) = stats(identity("db-v1", "db", "v1", "db"));
    // Client side: the endpoint's Istio workload metadata names the destination.
    let md = Metadata {
        filter_metadata: [(
            "istio".to_owned(),
            Struct {
                fields: [(
                    "workload".to_owned(),
                    Value {
                        kind: Some(Kind::StringValue(
                            "cache-v2;data;cache;v2;Kubernetes".into(),
                        )),
                    },
                )]
                .into_iter()
                .collect(),
            },
        )]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    let mut c = tcp::Conn::open_in(s, "outbound|6379||cache.data.svc.cluster.local", &None);
    c.connected(Some(&md));
    drop(c);
    // Server side: the client's principal from mutual TLS, and plaintext as `none`.
    let tls = Some(std::sync::Arc::new(crate::tls::PeerTls {
        peer_uri_sans: vec!["spiffe://cluster.local/ns/default/sa/sleep".into()],
        ..Default::default()
    }));
    let mut c = tcp::Conn::open_in(s, "inbound|5432||", &tls);
    c.connected(None);
    drop(c);
    let mut c = tcp::Conn::open_in(s, "inbound|5432||", &None);
    c.connected(None);
    drop(c);
    let text = scrape(registry);
    let outbound = [
        "reporter=\"source\"",
        "destination_workload=\"cache-v2\"",
        "destination_workload_namespace=\"data\"",
        "destination_canonical_service=\"cache\"",
        "destination_canonical_revision=\"v2\"",
        "destination_service=\"cache.data.svc.cluster.local\"",
        "connection_security_policy=\"unknown\"",
    ];
    assert_eq!(
        sample(&text, "istio_tcp_connections_opened_total", &outbound).as_deref(),
        Some("1"),
        "{text}"
    );
    let mtls = [
        "reporter=\"destination\"",
        "source_principal=\"spiffe://cluster.local/ns/default/sa/sleep\"",
        "destination_workload=\"db-v1\"",
        "connection_security_policy=\"mutual_tls\"",
    ];
    assert_eq!(
        sample(&text, "istio_tcp_connections_closed_total", &mtls).as_deref(),
        Some("1"),
        "{text}"
    );
    let plain = [
        "reporter=\"destination\"",
        "source_principal=\"unknown\"",
        "connection_security_policy=\"none\"",
    ];
    assert_eq!(
        sample(&text, "istio_tcp_connections_opened_total", &plain).as_deref(),
        Some("1"),
        "{text}"
    );
}

#[tokio::test]
async fn client_side_labels_a_server_that_exchanges_nothing_from_its_endpoint() {
    use envoy_types::pb::envoy::config::core::v3::Metadata;
    use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
    let (client, registry) = stats(identity("client", "client", "v1", "sleep"));
    let cluster = "outbound|80||nginx-svc.default.svc.cluster.local";
    let md = Metadata {
        filter_metadata: [(
            "istio".to_owned(),
            Struct {
                fields: [(
                    "workload".to_owned(),
                    Value {
                        kind: Some(Kind::StringValue(
                            "nginx-2;default;nginx;v2;Kubernetes".into(),
                        )),
                    },
                )]
                .into_iter()
                .collect(),
            },
        )]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    // An Envoy sidecar answers without metadata: the endpoint's names the workload.
    let mut upstream = with_body(StatusCode::OK, "ok");
    upstream_endpoint_in(&mut upstream, Some(&md));
    upstream_response_in(client, &mut upstream);
    let mut req = HeaderMap::new();
    let t = Tracker::start_in(client, false, &None, &mut req);
    drain(t.finish(
        upstream,
        Some(cluster),
        "nginx-svc",
        Flags::NONE,
        Arc::new(AtomicU64::new(0)),
    ))
    .await;
    // A server that exchanges its metadata wins over the endpoint's.
    let server = identity("server-1", "server", "v3", "server");
    let mut upstream = with_body(StatusCode::OK, "ok");
    upstream
        .headers_mut()
        .insert(METADATA, server.metadata_header.clone());
    upstream_endpoint_in(&mut upstream, Some(&md));
    upstream_response_in(client, &mut upstream);
    let t = Tracker::start_in(client, false, &None, &mut req);
    drain(t.finish(
        upstream,
        Some(cluster),
        "nginx-svc",
        Flags::NONE,
        Arc::new(AtomicU64::new(0)),
    ))
    .await;
    let text = scrape(registry);
    let from_endpoint = [
        "reporter=\"source\"",
        "destination_workload=\"nginx-2\"",
        "destination_canonical_revision=\"v2\"",
        "destination_principal=\"unknown\"",
    ];
    assert_eq!(
        sample(&text, "istio_requests_total", &from_endpoint).as_deref(),
        Some("1"),
        "{text}"
    );
    let exchanged = [
        "destination_workload=\"server-1\"",
        "destination_version=\"v3\"",
    ];
    assert_eq!(
        sample(&text, "istio_requests_total", &exchanged).as_deref(),
        Some("1"),
        "{text}"
    );
}
