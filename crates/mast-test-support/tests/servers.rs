//! The echo servers and the HTTP client, as e2e tests will use them: what a client sees in
//! the answers, what the server records, and each behaviour (status, fail-first, delay).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mast_test_support::{
    Behaviour, ClientError, EchoServer, HttpRequest, TcpEchoServer, http_get, http_get_direct,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn echoes_request_details_in_headers() {
    let server = EchoServer::start("v1").unwrap();
    let r = http_get_direct(
        server.addr(),
        "http://reviews:9080/a/b?x=1",
        &[("x-user", "jicki")],
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "v1\n");
    assert_eq!(r.trimmed(), "v1");
    assert_eq!(r.header("x-echo-path"), Some("/a/b?x=1"));
    assert_eq!(r.header("x-echo-method"), Some("GET"));
    assert_eq!(r.header("x-echo-authority"), Some("reviews:9080"));
    assert_eq!(r.header("x-echo-x-user"), Some("jicki"));
    assert_eq!(r.header("x-echo-protocol"), Some("HTTP/1.1"));
    assert_eq!(r.header("x-echo-server"), Some("v1"));
    assert_eq!(server.request_count(), 1);
    let seen = server.last_request().unwrap();
    assert_eq!(seen.path, "/a/b?x=1");
    assert_eq!(seen.header("x-user"), Some("jicki"));
}

#[tokio::test]
async fn absolute_form_requests_reach_a_proxy_as_sent() {
    // The echo server stands in for a proxy: it must see the absolute URL's parts.
    let proxy = EchoServer::start("proxy").unwrap();
    let r = http_get(proxy.addr(), "http://nginx-svc/x?y=2", &[])
        .await
        .unwrap();
    assert_eq!(r.header("x-echo-authority"), Some("nginx-svc"));
    assert_eq!(r.header("x-echo-path"), Some("/x?y=2"));
    assert_eq!(r.header("x-echo-host"), Some("nginx-svc"));
    let err = http_get(proxy.addr(), "/relative", &[]).await.unwrap_err();
    assert!(matches!(err, ClientError::BadRequest(_)), "{err}");
}

#[tokio::test]
async fn records_method_and_body() {
    let server = EchoServer::start("shadow").unwrap();
    let r = HttpRequest::new("POST", "/upload")
        .header("content-type", "text/plain")
        .body("hello")
        .direct(server.addr())
        .await
        .unwrap();
    assert_eq!(r.header("x-echo-method"), Some("POST"));
    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].body, Bytes::from("hello"));
    server.reset();
    assert_eq!(server.request_count(), 0);
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn fails_first_requests_then_succeeds() {
    let server = EchoServer::start_with("flaky", Behaviour::default().fail_first(2, 503)).unwrap();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            http_get_direct(server.addr(), "/", &[])
                .await
                .unwrap()
                .status,
        );
    }
    assert_eq!(statuses, [503, 503, 200, 200]);
    server.set_behaviour(Behaviour::default().status(418));
    assert_eq!(
        http_get_direct(server.addr(), "/", &[])
            .await
            .unwrap()
            .status,
        418
    );
    assert_eq!(server.request_count(), 5);
}

#[tokio::test]
async fn delays_answers_and_client_times_out() {
    let server = EchoServer::start_with(
        "slow",
        Behaviour::default().delay(Duration::from_millis(300)),
    )
    .unwrap();
    let start = Instant::now();
    let r = http_get_direct(server.addr(), "/", &[]).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(start.elapsed() >= Duration::from_millis(300));
    let err = HttpRequest::get("/")
        .timeout(Duration::from_millis(50))
        .direct(server.addr())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout(_)), "{err}");
}

#[tokio::test]
async fn connection_refused_is_reported() {
    let port = mast_test_support::free_port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let err = http_get_direct(addr, "/", &[]).await.unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
}

#[tokio::test]
async fn speaks_h2c_with_prior_knowledge() {
    let server = EchoServer::start("h2").unwrap();
    let stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(format!("http://svc.local:{}/h2?q", server.port()))
        .header("x-a", "b")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-echo-protocol"], "HTTP/2.0");
    assert_eq!(
        resp.headers()["x-echo-authority"],
        format!("svc.local:{}", server.port()).as_str()
    );
    assert_eq!(resp.headers()["x-echo-x-a"], "b");
    assert_eq!(resp.headers()["x-echo-path"], "/h2?q");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, Bytes::from("h2\n"));
}

#[tokio::test]
async fn tcp_echo_prefixes_its_name() {
    let server = TcpEchoServer::start("tcp-v1").unwrap();
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(b"ping\n").await.unwrap();
    let mut expected = b"tcp-v1\nping\n".to_vec();
    let mut got = vec![0u8; expected.len()];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, expected);
    stream.write_all(b"more").await.unwrap();
    expected = b"more".to_vec();
    let mut got = vec![0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, expected);
    assert_eq!(server.connection_count(), 1);
    assert_eq!(server.bytes_received(), 9);
}

#[test]
fn servers_answer_while_the_test_thread_blocks() {
    // No runtime on this thread: the servers run on their own.
    let server = EchoServer::start("bg").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt
        .block_on(http_get_direct(server.addr(), "/", &[]))
        .unwrap();
    assert_eq!(r.trimmed(), "bg");
    let addr = server.addr();
    drop(server);
    // Dropped servers stop listening.
    let gone = mast_test_support::wait_for(
        || std::net::TcpStream::connect(addr).is_err(),
        Duration::from_secs(5),
    );
    assert!(gone);
}
