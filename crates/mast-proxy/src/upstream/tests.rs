//! Unit tests of the upstream wire preparation and socket checks (the pools themselves are
//! exercised through clusters in `cluster::tests`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use http::{Method, Request, Version};
use tokio::net::{TcpListener, TcpStream};

use super::stream::unusable;
use super::{ConnGuard, Limits, Shared, UpstreamError, UpstreamOptions, connect_raw};
use crate::body::{empty, full};

fn req(uri: &str) -> Request<crate::body::Body> {
    Request::builder().uri(uri).body(empty()).unwrap()
}

#[test]
fn http1_requests_go_out_in_origin_form_with_a_host() {
    let mut r = req("http://svc.ns:8080/a/b?c=d");
    *r.version_mut() = Version::HTTP_2;
    super::h1::prepare(&mut r);
    assert_eq!(r.uri(), "/a/b?c=d");
    assert_eq!(r.version(), Version::HTTP_11);
    assert_eq!(r.headers()["host"], "svc.ns:8080");
    let mut r = req("http://svc/x");
    r.headers_mut().insert("host", "kept".parse().unwrap());
    super::h1::prepare(&mut r);
    assert_eq!(r.headers()["host"], "kept");
}

#[test]
fn http2_requests_get_scheme_and_authority() {
    let mut r = req("/p?q");
    r.headers_mut().insert("host", "svc:81".parse().unwrap());
    super::h2::prepare(&mut r);
    assert_eq!(r.uri(), "http://svc:81/p?q");
    assert!(r.headers().get("host").is_none());
    assert_eq!(r.version(), Version::HTTP_2);
}

#[test]
fn only_bodyless_idempotent_requests_are_replayed() {
    let mut r = req("/x");
    r.headers_mut().insert("a", "b".parse().unwrap());
    let copy = super::h1::replayable(&r).expect("GET without a body");
    assert_eq!(copy.headers()["a"], "b");
    let mut post = req("/x");
    *post.method_mut() = Method::POST;
    assert!(super::h1::replayable(&post).is_none());
    let with_body = Request::builder().uri("/x").body(full("x")).unwrap();
    assert!(super::h1::replayable(&with_body).is_none());
}

#[tokio::test]
async fn a_connection_closed_by_the_peer_is_unusable() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    let (server, _) = l.accept().await.unwrap();
    assert!(!unusable(&client));
    drop(server);
    let mut closed = false;
    for _ in 0..100 {
        if unusable(&client) {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(closed);
}

#[tokio::test]
async fn raw_connections_honour_max_connections_and_report_failures() {
    let shared = Shared {
        options: UpstreamOptions::default(),
        limits: Limits {
            max_connections: 1,
            ..Limits::default()
        },
        counters: Default::default(),
    };
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let target = super::Target { addr, tls: None };
    let held = ConnGuard::try_new(&shared).unwrap();
    assert!(matches!(
        connect_raw(&shared, &target).await,
        Err(UpstreamError::Overflow)
    ));
    drop(held);
    let c = connect_raw(&shared, &target).await.unwrap();
    assert_eq!(c.stream().peer_addr().unwrap(), addr);
    drop(c);
    drop(l);
    assert!(matches!(
        connect_raw(&shared, &target).await,
        Err(UpstreamError::ConnectFailure(_))
    ));
}
