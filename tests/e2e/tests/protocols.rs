//! Protocols as a client sees them through the sidecar: HTTP/2 end to end (h2c prior
//! knowledge, 50 streams on one connection, HTTP/2 upstream), gRPC unary / server streaming
//! / error status with trailers, WebSocket echo and close, a slow upstream, an upstream that
//! resets mid-response, a client that cancels, keep-alive reuse and an upstream that closes
//! idle keep-alive connections (no 503 may reach the client), and the access log.
//! Run with `--nocapture` to see the measurements.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use mast_e2e::{Checks, Mesh, Proxy, SharedMesh, shared, yaml};
use mast_test_support::grpc::{FAIL_MESSAGE, SERVICE};
use mast_test_support::procfs::stdout_path;
use mast_test_support::raw_http::RESET_DECLARED;
use mast_test_support::{
    Behaviour, EchoServer, GrpcServer, H2Client, HttpRequest, KeepAliveClient, RawHttpServer,
    WsClient, WsEchoServer, WsMessage, pid_listening_on, wait_for_async,
};
use tokio::task::JoinSet;

static MESH: SharedMesh = SharedMesh::const_new();

/// A service `name` with one port 80 named `port_name` whose one endpoint is the local
/// server on `port`, labelled `version: v1`.
fn service(name: &str, port_name: &str, port: u16) -> String {
    yaml::docs(&[
        yaml::service(name, &[(port_name, 80)]),
        yaml::workload(name, "v1", &[(port_name, port)]),
    ])
}

/// Fails with `checks`' failed expectations, `details` and the mesh's explanation.
async fn verdict(mesh: &Mesh, checks: &Checks, details: &str) {
    assert!(
        checks.ok(),
        "failed: {:?}\n{details}{}",
        checks.failed(),
        mesh.explain().await
    );
}

async fn http2_end_to_end_50_streams_on_one_connection(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let echo = EchoServer::start("v1").unwrap();
    mesh.apply("h2.yaml", &service("h2-svc", "http2", echo.port()))
        .await
        .unwrap();
    let client = H2Client::connect(mesh.outbound()).await.unwrap();
    let started = Instant::now();
    let mut streams = JoinSet::new();
    for i in 0..50 {
        let client = client.clone();
        streams.spawn(async move { (i, client.get(&format!("http://h2-svc/item/{i}")).await) });
    }
    let mut ok = 0;
    let mut wrong = Vec::new();
    while let Some(joined) = streams.join_next().await {
        let (i, result) = joined.unwrap();
        let path = format!("/item/{i}");
        match result {
            Ok(r)
                if r.status == 200
                    && r.version == http::Version::HTTP_2
                    && r.trimmed() == "v1"
                    && r.header("x-echo-protocol") == Some("HTTP/2.0")
                    && r.header("x-echo-path") == Some(path.as_str()) =>
            {
                ok += 1;
            }
            other => wrong.push(format!("{i}: {other:?}")),
        }
    }
    let took = started.elapsed();
    let upstream_h2 = echo
        .requests()
        .iter()
        .filter(|r| r.version == http::Version::HTTP_2)
        .count();
    println!(
        "{proxy}: 50 h2 streams on one client connection in {took:?}; upstream saw {} \
         requests ({upstream_h2} as HTTP/2) on {} connections",
        echo.request_count(),
        echo.connection_count()
    );
    let mut checks = Checks::new();
    checks
        .check(
            "all 50 streams answered 200 over HTTP/2 by v1, each its own path",
            ok == 50,
        )
        .check("the client connection is still open", !client.is_closed())
        .check("the upstream saw 50 HTTP/2 requests", upstream_h2 == 50);
    let first: Vec<&String> = wrong.iter().take(5).collect();
    verdict(mesh, &checks, &format!("wrong answers: {first:?}")).await;
}

async fn grpc_unary_streaming_and_error_status_keep_their_trailers(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let server = GrpcServer::start("v1").unwrap();
    mesh.apply("grpc.yaml", &service("grpc-svc", "grpc", server.port()))
        .await
        .unwrap();
    let client = H2Client::connect(mesh.outbound()).await.unwrap();
    let method = |m: &str| format!("http://grpc-svc/{SERVICE}/{m}");
    let mut checks = Checks::new();
    let mut details = String::new();

    let unary = client.grpc(&method("Unary"), &[b"hello mesh"]).await;
    details.push_str(&format!("unary: {unary:?}\n"));
    let unary_ok = unary.as_ref().is_ok_and(|u| {
        u.response.status == 200
            && u.response.header("content-type") == Some("application/grpc")
            && u.messages == vec!["hello mesh"]
            && u.response.trailer("grpc-status") == Some("0")
    });
    checks.check(
        "unary: the message echoed, grpc-status 0 in trailers",
        unary_ok,
    );

    let started = Instant::now();
    let stream = client.grpc(&method("Stream"), &[b"100"]).await;
    let took = started.elapsed();
    let expected: Vec<String> = (0..100).map(|i| format!("message {i}")).collect();
    let stream_ok = stream.as_ref().is_ok_and(|s| {
        s.response.trailer("grpc-status") == Some("0")
            && s.messages.len() == 100
            && s.messages
                .iter()
                .zip(&expected)
                .all(|(m, e)| m == e.as_bytes())
    });
    match &stream {
        Ok(s) => details.push_str(&format!(
            "stream: {} messages in {took:?}, first {:?}, last {:?}, trailers {:?}\n",
            s.messages.len(),
            s.messages.first(),
            s.messages.last(),
            s.response.trailers
        )),
        Err(e) => details.push_str(&format!("stream: {e}\n")),
    }
    checks.check(
        "server streaming: 100 messages in order, grpc-status 0",
        stream_ok,
    );

    let fail = client.grpc(&method("Fail"), &[]).await;
    details.push_str(&format!("fail: {fail:?}\n"));
    let fail_ok = fail.as_ref().is_ok_and(|f| {
        f.response.status == 200
            && f.response.trailer("grpc-status") == Some("5")
            && f.response.trailer("grpc-message") == Some(FAIL_MESSAGE)
    });
    checks.check(
        "error: grpc-status 5 and grpc-message unchanged in trailers",
        fail_ok,
    );

    let calls = server.requests();
    let upstream_ok = calls.len() == 3
        && calls.iter().all(|c| {
            c.version == http::Version::HTTP_2
                && c.te.as_deref() == Some("trailers")
                && c.content_type.as_deref() == Some("application/grpc")
        });
    details.push_str(&format!("upstream calls: {calls:?}\n"));
    checks.check(
        "the upstream saw 3 HTTP/2 calls with te: trailers",
        upstream_ok,
    );
    println!("{proxy}: gRPC stream of 100 messages in {took:?}");
    verdict(mesh, &checks, &details).await;
}

async fn websocket_echoes_text_and_binary_and_closes_cleanly(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let server = WsEchoServer::start("v1").unwrap();
    mesh.apply("ws.yaml", &service("ws-svc", "http", server.port()))
        .await
        .unwrap();
    let timeout = Duration::from_secs(10);
    let mut client = WsClient::connect_via_proxy(mesh.outbound(), "http://ws-svc/chat", timeout)
        .await
        .unwrap_or_else(|e| panic!("websocket upgrade failed: {e}"));
    let binary: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let mut sent = vec![WsMessage::text("hello over the mesh")];
    sent.push(WsMessage::binary(binary));
    sent.extend((0..10).map(|i| WsMessage::text(format!("text {i}"))));
    let mut received = Vec::new();
    for message in &sent {
        if let Err(e) = client.send(message.clone()).await {
            received.push(Err(e));
            break;
        }
        received.push(client.recv().await);
    }
    let echoed = sent
        .iter()
        .zip(&received)
        .filter(|(s, r)| matches!(r, Ok(Some(m)) if m == *s))
        .count();
    let closed = client.close().await;
    let server_closed = wait_for_async(
        || async { server.closed_cleanly() == 1 },
        Duration::from_secs(5),
    )
    .await;
    let mut checks = Checks::new();
    checks
        .check(
            "every text and binary message echoed in order",
            echoed == sent.len(),
        )
        .check(
            "the client's close was answered (close handshake complete)",
            matches!(closed, Ok(true)),
        )
        .check("the upstream saw the close handshake", server_closed);
    let bad: Vec<_> = received
        .iter()
        .filter(|r| !matches!(r, Ok(Some(_))))
        .take(3)
        .collect();
    let details = format!(
        "echoed {echoed}/{}; close: {closed:?}; upstream echoed {}, closed cleanly {}; \
         bad receives: {bad:?}",
        sent.len(),
        server.echoed(),
        server.closed_cleanly()
    );
    verdict(mesh, &checks, &details).await;
}

async fn slow_upstream_first_byte_after_2s_gets_the_full_answer(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let slow =
        EchoServer::start_with("v1", Behaviour::default().delay(Duration::from_secs(2))).unwrap();
    mesh.apply("slow.yaml", &service("slow-svc", "http", slow.port()))
        .await
        .unwrap();
    let started = Instant::now();
    let r = mesh
        .send(HttpRequest::get("http://slow-svc/slow").timeout(Duration::from_secs(15)))
        .await;
    let took = started.elapsed();
    println!("{proxy}: slow upstream answered after {took:?}");
    let mut checks = Checks::new();
    checks
        .check(
            "200 with the whole body",
            r.as_ref()
                .is_ok_and(|r| r.status == 200 && r.trimmed() == "v1"),
        )
        .check(
            "after the upstream's 2 s",
            took >= Duration::from_millis(1_950),
        )
        .check(
            "without a timeout of the sidecar's own",
            took < Duration::from_secs(6),
        );
    verdict(mesh, &checks, &format!("{r:?} after {took:?}")).await;
}

async fn upstream_reset_mid_response_fails_the_response_and_the_next_succeeds(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let raw = RawHttpServer::start("v1").unwrap();
    mesh.apply("reset.yaml", &service("reset-svc", "http", raw.port()))
        .await
        .unwrap();
    let started = Instant::now();
    let r = mesh
        .send(HttpRequest::get("http://reset-svc/reset").timeout(Duration::from_secs(15)))
        .await;
    let took = started.elapsed();
    // The client must see a failure: a broken (truncated/reset) response, or an error
    // status if the sidecar had not started the answer; never the full body, never a hang.
    let observed = match &r {
        Err(e) => format!("error: {e:#}"),
        Ok(resp) => format!("status {} with {} body bytes", resp.status, resp.body.len()),
    };
    let failed = match &r {
        Err(e) => !e.to_string().contains("no answer within"),
        Ok(resp) => resp.status >= 500 || resp.body.len() < RESET_DECLARED,
    };
    // Over HTTP/2 the client's stream is reset (or its body cut short), the connection kept.
    let h2 = H2Client::connect(mesh.outbound())
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(15));
    let started = Instant::now();
    let r2 = h2.get("http://reset-svc/reset-h2").await;
    let took2 = started.elapsed();
    let observed2 = match &r2 {
        Err(e) => format!("error: {e}"),
        Ok(resp) => format!("status {} with {} body bytes", resp.status, resp.body.len()),
    };
    let failed2 = match &r2 {
        Err(e) => !e.to_string().contains("no answer within"),
        Ok(resp) => resp.status >= 500 || resp.body.len() < RESET_DECLARED,
    };
    let next = mesh.get("http://reset-svc/ok", &[]).await;
    let next2 = h2.get("http://reset-svc/ok-h2").await;
    println!(
        "{proxy}: upstream reset mid-response → HTTP/1.1 client: {observed} after {took:?}; \
         HTTP/2 client: {observed2} after {took2:?}"
    );
    let mut checks = Checks::new();
    checks
        .check("HTTP/1.1: the response fails (reset/truncated)", failed)
        .check(
            "HTTP/1.1: it fails promptly, not a hang",
            took < Duration::from_secs(5),
        )
        .check("HTTP/2: the stream fails (reset/truncated)", failed2)
        .check(
            "HTTP/2: it fails promptly, not a hang",
            took2 < Duration::from_secs(5),
        )
        .check(
            "the next request succeeds on a new HTTP/1.1 connection",
            next.as_ref()
                .is_ok_and(|n| n.status == 200 && n.trimmed() == "v1"),
        )
        .check(
            "the next request succeeds on the same HTTP/2 connection",
            next2
                .as_ref()
                .is_ok_and(|n| n.status == 200 && n.trimmed() == "v1"),
        );
    let details = format!(
        "{observed} after {took:?}; {observed2} after {took2:?}; next: {next:?}; {next2:?}"
    );
    verdict(mesh, &checks, &details).await;
}

async fn client_cancel_reaches_the_upstream(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let raw = RawHttpServer::start("v1").unwrap();
    mesh.apply("cancel.yaml", &service("cancel-svc", "http", raw.port()))
        .await
        .unwrap();
    // The client gives up after 500 ms: its connection is dropped mid-request.
    let r = mesh
        .send(HttpRequest::get("http://cancel-svc/hang").timeout(Duration::from_millis(500)))
        .await;
    let dropped = Instant::now();
    let seen = wait_for_async(
        || async { !raw.cancellations().is_empty() },
        Duration::from_secs(5),
    )
    .await;
    let after_drop = dropped.elapsed();
    // Over HTTP/2 the client cancels only its stream (RST_STREAM), keeping the connection.
    let h2 = H2Client::connect(mesh.outbound())
        .await
        .unwrap()
        .with_timeout(Duration::from_millis(500));
    let r2 = h2.get("http://cancel-svc/hang-h2").await;
    let reset = Instant::now();
    let seen2 = wait_for_async(
        || async { raw.cancellations().len() >= 2 },
        Duration::from_secs(5),
    )
    .await;
    let after_reset = reset.elapsed();
    let held = raw.cancellations();
    println!(
        "{proxy}: client dropped its HTTP/1.1 request; the upstream saw its connection closed \
         {after_drop:?} later; an HTTP/2 stream reset: {after_reset:?} later (held {held:?})"
    );
    let mut checks = Checks::new();
    checks
        .check("the client gave up (no answer)", r.is_err() && r2.is_err())
        .check("both requests reached the upstream", raw.hangs() == 2)
        .check(
            "HTTP/1.1: the upstream saw the request cancelled within 5 s",
            seen,
        )
        .check(
            "HTTP/2 stream reset: the upstream saw it cancelled within 5 s",
            seen2,
        )
        .check("the client's HTTP/2 connection stays open", !h2.is_closed());
    let details = format!(
        "client: {r:?} / {r2:?}; upstream hangs {}, cancellations {held:?}",
        raw.hangs()
    );
    verdict(mesh, &checks, &details).await;
}

async fn sequential_requests_reuse_one_upstream_connection(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let raw = RawHttpServer::start("v1").unwrap();
    mesh.apply("reuse.yaml", &service("reuse-svc", "http", raw.port()))
        .await
        .unwrap();
    let mut client = KeepAliveClient::new(mesh.outbound());
    let mut statuses = Vec::new();
    for i in 0..20 {
        let r = client.get(&format!("http://reuse-svc/seq/{i}")).await;
        statuses.push(r.map(|r| r.status).map_err(|e| e.to_string()));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let kept = raw.connection_count();
    // A new client connection per request, one after another: the sidecar's pool still
    // reuses (at most one upstream connection per worker thread).
    let mut fresh = Vec::new();
    for _ in 0..20 {
        let r = mesh.get("http://reuse-svc/fresh", &[]).await;
        fresh.push(r.map(|r| r.status).map_err(|e| e.to_string()));
    }
    let total = raw.connection_count();
    println!(
        "{proxy}: 20 requests on one kept-alive client connection → {kept} upstream \
         connection(s); 20 more on fresh client connections → {} more",
        total - kept
    );
    let mut checks = Checks::new();
    checks
        .check(
            "all 20 answered 200",
            statuses.iter().all(|s| s == &Ok(200)),
        )
        .check("one client connection", client.connections() == 1)
        .check(
            "one upstream connection for the kept-alive client",
            kept == 1,
        )
        .check(
            "fresh client connections all answered",
            fresh.iter().all(|s| s == &Ok(200)),
        )
        .check(
            "the pool reuses upstream connections (≤ 2 in all)",
            total <= 2,
        );
    verdict(
        mesh,
        &checks,
        &format!("{statuses:?}; {fresh:?}; upstream connections {total}"),
    )
    .await;
}

/// How many requests the idle-close scenario sends (`MAST_E2E_IDLE_REQUESTS`, default 200).
fn idle_requests() -> usize {
    std::env::var("MAST_E2E_IDLE_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

async fn upstream_closing_idle_connections_never_shows_a_503(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let raw = RawHttpServer::start_idle_close("v1", Duration::from_millis(100)).unwrap();
    mesh.apply("idle.yaml", &service("idle-svc", "http", raw.port()))
        .await
        .unwrap();
    let mut client = KeepAliveClient::new(mesh.outbound());
    let count = idle_requests();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    let mut samples = Vec::new();
    let started = Instant::now();
    for i in 0..count {
        if Instant::now() >= deadline {
            outcomes.insert("not sent (time bound)".into(), count - i);
            break;
        }
        // Gaps from 80 to 120 ms around the upstream's 100 ms idle timeout.
        let gap = 80 + (i * 37) % 41;
        tokio::time::sleep(Duration::from_millis(gap as u64)).await;
        let r = client.get(&format!("http://idle-svc/r/{i}")).await;
        let key = match &r {
            Ok(r) if r.status == 200 => "200".to_owned(),
            Ok(r) => r.status.to_string(),
            Err(e) => format!("error: {e}"),
        };
        if key != "200" && samples.len() < 5 {
            samples.push(format!("request {i} after {gap} ms: {r:?}"));
        }
        *outcomes.entry(key).or_default() += 1;
    }
    println!(
        "{proxy}: {count} requests at 80–120 ms gaps in {:?} → {outcomes:?}; upstream: {} \
         connections, {} idle closes; client connections: {}",
        started.elapsed(),
        raw.connection_count(),
        raw.idle_closes(),
        client.connections()
    );
    let answered = |key: &str| outcomes.get(key).copied().unwrap_or(0);
    let mut checks = Checks::new();
    checks.check(
        "the upstream did close idle connections",
        raw.idle_closes() > 0,
    );
    match proxy {
        Proxy::Mast => checks
            .check("no 503 reached the client", answered("503") == 0)
            .check("every request answered 200", answered("200") == count),
        // Envoy, the reference, shows the very failure this scenario guards against: a
        // request sent on a pooled connection the upstream is closing at that moment gets
        // `503 upstream connect error or disconnect/reset before headers. reset reason:
        // connection termination` (UC), a few times in 200. Only the mast-proxy side must
        // be free of it; on Envoy every request is a 200 or that 503.
        Proxy::Envoy => checks.check(
            "every request answered 200 or 503 (Envoy's UC race)",
            answered("200") + answered("503") == count,
        ),
    };
    verdict(
        mesh,
        &checks,
        &format!("{outcomes:?}; samples: {samples:?}"),
    )
    .await;
}

/// A DestinationRule for `host` allowing one connection and one pending request.
fn tiny_pool(host: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {host}\n  \
         namespace: default\nspec:\n  host: {host}\n  trafficPolicy:\n    connectionPool:\n      \
         tcp: {{maxConnections: 1}}\n      http: {{http1MaxPendingRequests: 1, http2MaxRequests: 1}}\n"
    )
}

/// Waits up to 5 s for a line of `file` containing every one of `parts`.
async fn log_line(file: &std::path::Path, parts: &[&str]) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
            return Some(line.to_owned());
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn access_log_shows_requests_in_istio_format_with_flags(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let echo = EchoServer::start("v1").unwrap();
    let slow = EchoServer::start_with("v1", Behaviour::default().delay(Duration::from_millis(800)))
        .unwrap();
    let files = yaml::docs(&[
        service("log-svc", "http", echo.port()),
        service("log-pool-svc", "http", slow.port()),
        tiny_pool("log-pool-svc"),
    ]);
    mesh.apply("log.yaml", &files).await.unwrap();
    let probe = format!("/log-probe-{}", std::process::id());
    let ok = mesh
        .get(&format!("http://log-svc{probe}"), &[])
        .await
        .unwrap();
    let overflow_path = format!("/overflow-probe-{}", std::process::id());
    let url = format!("http://log-pool-svc{overflow_path}");
    let tally = mesh.tally(10, move |_| HttpRequest::get(&url)).await;
    let pid = pid_listening_on(mesh.outbound().port()).expect("the sidecar's pid");
    let log = stdout_path(pid).expect("the sidecar's stdout");
    let ok_line = log_line(
        &log,
        &[
            &format!("\"GET {probe} HTTP/1.1\" 200 - via_upstream "),
            "\"log-svc\"",
            " outbound|80||log-svc.default.svc.cluster.local ",
        ],
    )
    .await;
    let uo_line = log_line(
        &log,
        &[
            &format!("\"GET {overflow_path} HTTP/1.1\" 503 UO "),
            " outbound|80||log-pool-svc.default.svc.cluster.local ",
        ],
    )
    .await;
    println!(
        "{proxy}: access log {}:\n  ok: {ok_line:?}\n  overflow: {uo_line:?}",
        log.display()
    );
    let mut checks = Checks::new();
    checks
        .check("the probe was answered", ok.status == 200)
        .check("some requests overflowed with 503", tally.count("503") >= 1);
    if proxy == Proxy::Mast {
        let istio_shape = ok_line.as_deref().is_some_and(|l| {
            l.starts_with('[') && l.contains("Z] \"GET ") && l.ends_with(|c: char| c != ' ')
        });
        checks
            .check(
                "a line for the 200 with flags `-` and the upstream cluster",
                ok_line.is_some(),
            )
            .check(
                "it has Istio's default shape ([start] \"METHOD PATH PROTO\" …)",
                istio_shape,
            )
            .check("a line for an overflow with 503 UO", uo_line.is_some());
    }
    // Envoy: mastd emits no access_log config (docs/xds-subset.md), so Envoy writes none;
    // printed above for comparison only.
    let details = format!("{tally}; log file {}", log.display());
    verdict(mesh, &checks, &details).await;
}

mast_e2e::both! {
    http2_end_to_end_50_streams_on_one_connection,
    grpc_unary_streaming_and_error_status_keep_their_trailers,
    websocket_echoes_text_and_binary_and_closes_cleanly,
    slow_upstream_first_byte_after_2s_gets_the_full_answer,
    upstream_reset_mid_response_fails_the_response_and_the_next_succeeds,
    client_cancel_reaches_the_upstream,
    sequential_requests_reuse_one_upstream_connection,
    upstream_closing_idle_connections_never_shows_a_503,
    access_log_shows_requests_in_istio_format_with_flags,
}
