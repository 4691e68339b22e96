//! `mastctl x echo` as a client sees it: the message, JSON, h2c, gRPC, delays, error rates,
//! a clean stop; and its flags.

#![allow(clippy::unwrap_used)]

use super::*;

#[tokio::test]
async fn plain_get_answers_the_message_and_version() {
    let server = start(echo("hello nginx-1")).await;
    let mut c = Client::connect(server.addr, false).await;
    let a = c.get(server.addr, "/", &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.text(), "hello nginx-1\n");
    assert_eq!(a.headers["x-echo-version"], "v2");
    assert_eq!(a.headers["content-type"], "text/plain; charset=utf-8");
    server.stop().await;
}

#[tokio::test]
async fn json_answer_describes_identity_and_request() {
    let server = start(echo("hello nginx-1")).await;
    let mut c = Client::connect(server.addr, false).await;
    for (path, headers) in [
        ("/some/path?format=json", vec![("x-user", "jicki")]),
        (
            "/some/path",
            vec![("x-user", "jicki"), ("accept", "application/json")],
        ),
    ] {
        let a = c.get(server.addr, path, &headers).await;
        assert_eq!(a.headers["content-type"], "application/json");
        let doc: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(doc["message"], "hello nginx-1");
        assert_eq!(doc["version"], "v2");
        assert_eq!(doc["hostname"], "testhost");
        assert_eq!(doc["workload"]["name"], "nginx-1");
        assert_eq!(doc["workload"]["namespace"], "default");
        assert_eq!(doc["request"]["method"], "GET");
        assert_eq!(doc["request"]["path"], "/some/path");
        assert_eq!(doc["request"]["protocol"], "HTTP/1.1");
        assert_eq!(doc["request"]["headers"]["x-user"], "jicki");
        assert_eq!(doc["request"]["authority"], server.addr.to_string());
    }
    server.stop().await;
}

#[tokio::test]
async fn h2c_prior_knowledge_on_the_same_port() {
    let server = start(echo("hello h2")).await;
    let mut c = Client::connect(server.addr, true).await;
    let a = c.get(server.addr, "/", &[]).await;
    assert_eq!(a.text(), "hello h2\n");
    let a = c.get(server.addr, "/?format=json", &[]).await;
    let doc: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(doc["request"]["protocol"], "HTTP/2.0");
    server.stop().await;
}

#[tokio::test]
async fn grpc_echo_with_status_trailers() {
    let mut e = echo("hello grpc");
    let server = start(e.clone()).await;
    let mut c = Client::connect(server.addr, true).await;
    let a = c.grpc(server.addr, grpc::ECHO_PATH, "ping").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["content-type"], "application/grpc");
    assert_eq!(a.trailers.unwrap()["grpc-status"], "0");
    let reply: grpc::EchoResponse = grpc::decode(&a.body).unwrap();
    assert_eq!(reply.message, "hello grpc");
    assert_eq!(reply.echo, "ping");
    assert_eq!(reply.version, "v2");
    assert_eq!(reply.workload["name"], "nginx-1");
    assert_eq!(reply.metadata["te"], "trailers");

    let a = c.grpc(server.addr, "/no.Such/Method", "ping").await;
    assert_eq!(
        a.headers["grpc-status"], "12",
        "unknown method is UNIMPLEMENTED"
    );
    server.stop().await;

    e.error_rate = 1.0;
    let server = start(e).await;
    let mut c = Client::connect(server.addr, true).await;
    let a = c.grpc(server.addr, grpc::ECHO_PATH, "ping").await;
    assert_eq!(a.headers["grpc-status"], "14", "503 maps to UNAVAILABLE");
    server.stop().await;
}

#[tokio::test]
async fn delay_holds_every_answer() {
    let mut e = echo("slow");
    e.delay = Duration::from_millis(150);
    let server = start(e).await;
    let mut c = Client::connect(server.addr, false).await;
    for _ in 0..3 {
        let t = Instant::now();
        let a = c.get(server.addr, "/", &[]).await;
        assert_eq!(a.text(), "slow\n");
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(150), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
    let t = Instant::now();
    c.get(server.addr, "/?delay=0s", &[]).await;
    assert!(
        t.elapsed() < Duration::from_millis(150),
        "?delay= overrides"
    );
    server.stop().await;
}

#[tokio::test]
async fn error_rate_answers_that_fraction_with_the_error_status() {
    let mut e = echo("flaky");
    e.error_rate = 0.3;
    e.error_status = StatusCode::BAD_GATEWAY;
    let server = start(e).await;
    let mut c = Client::connect(server.addr, false).await;
    let mut errors = 0;
    for _ in 0..300 {
        let a = c.get(server.addr, "/", &[]).await;
        match a.status {
            StatusCode::OK => assert_eq!(a.text(), "flaky\n"),
            StatusCode::BAD_GATEWAY => {
                errors += 1;
                assert_eq!(a.text(), "flaky: error 502 Bad Gateway\n");
                assert_eq!(a.headers["x-echo-fault"], "injected");
            }
            s => panic!("unexpected {s}"),
        }
    }
    // 90 expected; the bounds are more than five standard deviations away.
    assert!((50..=130).contains(&errors), "{errors} errors of 300");
    let a = c.get(server.addr, "/?status=418", &[]).await;
    assert_eq!(a.status.as_u16(), 418, "?status= forces a status");
    server.stop().await;
}

#[tokio::test]
async fn stop_closes_the_port() {
    let server = start(echo("bye")).await;
    let addr = server.addr;
    let mut c = Client::connect(addr, false).await;
    assert_eq!(c.get(addr, "/", &[]).await.text(), "bye\n");
    server.stop().await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "nothing listens after stop"
    );
}

#[test]
fn echo_flags_parse_including_version() {
    let cli = Cli::try_parse_from([
        "mastctl",
        "echo",
        "--message",
        "hello nginx-1",
        "--version",
        "v3",
        "--delay",
        "100ms",
        "--error-rate",
        "0.1",
        "--error-status",
        "500",
        "--port",
        "9000",
    ])
    .unwrap();
    let crate::cmd::x::Program::Echo(a) = cli.program else {
        panic!("not echo")
    };
    assert_eq!(a.message, "hello nginx-1");
    assert_eq!(a.version, "v3");
    assert_eq!(a.delay, Duration::from_millis(100));
    assert_eq!(a.error_status, 500);
    assert_eq!(a.port, 9000);
    assert!(Cli::try_parse_from(["mastctl", "echo", "--error-rate", "2"]).is_err());
}

#[test]
fn durations_parse_like_istio_writes_them() {
    let p = crate::cmd::x::parse_duration;
    assert_eq!(p("100ms"), Ok(Duration::from_millis(100)));
    assert_eq!(p("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(p("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(p("3"), Ok(Duration::from_secs(3)));
    assert!(p("fast").is_err());
    assert!(p("10 parsecs").is_err());
}
