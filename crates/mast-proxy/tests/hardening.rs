//! Hardening against Envoy's limits, over real 127.0.0.1 sockets (the library route: an
//! HCM served by `hcm::server::serve`, routing to an echo upstream). Each expectation is
//! what Envoy 1.40 answered to the same bytes (`docs/proxy-hardening.md`). Every loop is
//! bounded in count and time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "hardening/fuzz.rs"]
mod fuzz;
#[path = "hardening/support.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{End, exchange, frame, frames, get_block, preface, start, status};

const WAIT: Duration = Duration::from_secs(3);

fn get_with(extra: &str) -> Vec<u8> {
    format!("GET /x HTTP/1.1\r\nhost: a\r\n{extra}\r\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_size_and_count_limits_answer_431_as_envoy() {
    let p = start(json!({})).await;
    let big = |kib: usize| format!("x-big: {}\r\n", "a".repeat(kib * 1024 - 40));
    let (ok, _) = exchange(p.addr, &get_with(&big(59)), Duration::from_millis(500)).await;
    assert_eq!(status(&ok), Some(200));
    let (raw, end) = exchange(p.addr, &get_with(&big(61)), WAIT).await;
    assert_eq!((status(&raw), end), (Some(431), End::Closed));
    let headers = |n: usize| (0..n).map(|i| format!("x-h{i}: v\r\n")).collect::<String>();
    // `/direct` answers locally: the echo upstream (hyper) has a limit of its own.
    let direct = |extra: &str| format!("GET /direct HTTP/1.1\r\nhost: a\r\n{extra}\r\n");
    let (ok, _) = exchange(
        p.addr,
        direct(&headers(99)).as_bytes(),
        Duration::from_millis(500),
    )
    .await;
    assert_eq!(status(&ok), Some(200), "host + 99 = Envoy's 100");
    let (raw, end) = exchange(p.addr, &get_with(&headers(100)), WAIT).await;
    assert_eq!((status(&raw), end), (Some(431), End::Closed));
    assert_eq!(p.upstream.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_framings_get_400_and_are_never_forwarded() {
    let p = start(json!({})).await;
    let cases: [(&str, u16); 7] = [
        ("content-length: 4\r\ntransfer-encoding: chunked\r\n", 400),
        ("transfer-encoding: chunked\r\ncontent-length: 4\r\n", 400),
        ("content-length: 4\r\ncontent-length: 5\r\n", 400),
        ("content-length: 4\r\ncontent-length: 4\r\n", 400),
        ("content-length: 4, 4\r\n", 400),
        ("transfer-encoding: gzip, chunked\r\n", 501),
        (
            "transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n",
            501,
        ),
    ];
    for (headers, want) in cases {
        let req = format!(
            "POST /x HTTP/1.1\r\nhost: a\r\n{headers}\r\n0\r\n\r\nGET /y HTTP/1.1\r\nhost: a\r\n\r\n"
        );
        let (raw, end) = exchange(p.addr, req.as_bytes(), WAIT).await;
        assert_eq!(
            (status(&raw), end),
            (Some(want), End::Closed),
            "{headers:?}"
        );
    }
    for bad in [
        "x-a: v\0v\r\n",
        "x-(a: v\r\n",
        "x-a : v\r\n",
        "x-a: v\x7fv\r\n",
        ": v\r\n",
    ] {
        let (raw, end) = exchange(p.addr, &get_with(bad), WAIT).await;
        assert_eq!((status(&raw), end), (Some(400), End::Closed), "{bad:?}");
    }
    assert_eq!(
        p.upstream.request_count(),
        0,
        "nothing reached the upstream"
    );
    let ok =
        "POST /x HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let (raw, _) = exchange(p.addr, ok.as_bytes(), Duration::from_millis(500)).await;
    assert_eq!(status(&raw), Some(200));
}

async fn h2_flood(payload: Vec<u8>) -> (Vec<(u8, u32, u32)>, End, Duration) {
    let p = start(json!({})).await;
    let mut bytes = preface();
    bytes.extend(payload);
    let t = Instant::now();
    let (raw, end) = exchange(p.addr, &bytes, Duration::from_secs(5)).await;
    (frames(&raw), end, t.elapsed())
}

fn assert_goaway_calm(name: &str, got: &(Vec<(u8, u32, u32)>, End, Duration)) {
    let (frames, end, took) = got;
    assert_eq!(
        *end,
        End::Closed,
        "{name}: the connection must be closed (took {took:?})"
    );
    let goaway = frames.iter().find(|f| f.0 == 7);
    if let Some(g) = goaway {
        assert_eq!(g.2, 0xb, "{name}: GOAWAY ENHANCE_YOUR_CALM");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_floods_close_the_connection() {
    let ping = frame(6, 0, 0, b"12345678");
    let got = h2_flood(ping.repeat(10_000)).await;
    assert_goaway_calm("PING flood", &got);
    let settings = frame(4, 0, 0, b"");
    assert_goaway_calm("SETTINGS flood", &h2_flood(settings.repeat(10_000)).await);
    let mut reset = Vec::new();
    for i in 0..600u32 {
        reset.extend(frame(1, 0x5, 1 + 2 * i, &get_block(&[])));
        reset.extend(frame(3, 0, 1 + 2 * i, &8u32.to_be_bytes()));
    }
    assert_goaway_calm("rapid reset", &h2_flood(reset).await);
    let mut empty = frame(
        1,
        0x4,
        1,
        &support::hpack(&[
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", b"/x"),
            (b":authority", b"a"),
        ]),
    );
    empty.extend(frame(0, 0, 1, b"").repeat(3));
    assert_goaway_calm("empty DATA", &h2_flood(empty).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_under_the_limits_is_served() {
    let p = start(json!({})).await;
    let mut bytes = preface();
    bytes.extend(frame(6, 0, 0, b"12345678").repeat(100));
    bytes.extend(frame(1, 0x5, 1, &get_block(&[])));
    let (raw, end) = exchange(p.addr, &bytes, Duration::from_millis(800)).await;
    assert_eq!(end, End::Open);
    let f = frames(&raw);
    assert!(
        f.iter().any(|f| f.0 == 1 && f.1 == 1),
        "a response on stream 1: {f:?}"
    );
    assert_eq!(
        f.iter().filter(|f| f.0 == 6).count(),
        100,
        "every PING answered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_header_limits_refuse_the_stream() {
    let p = start(json!({})).await;
    let many: Vec<(Vec<u8>, Vec<u8>)> = (0..97)
        .map(|i| (format!("x-h{i}").into_bytes(), b"v".to_vec()))
        .collect();
    let fields: Vec<(&[u8], &[u8])> = many
        .iter()
        .map(|(n, v)| (n.as_slice(), v.as_slice()))
        .collect();
    let mut bytes = preface();
    bytes.extend(frame(1, 0x5, 1, &get_block(&fields[..96])));
    bytes.extend(frame(1, 0x5, 3, &get_block(&fields)));
    let (raw, _) = exchange(p.addr, &bytes, Duration::from_millis(800)).await;
    let f = frames(&raw);
    assert!(
        f.iter().any(|f| f.0 == 1 && f.1 == 1),
        "100 headers are served: {f:?}"
    );
    assert!(
        f.iter().any(|f| f.1 == 3 && (f.0 == 1 || f.0 == 3)),
        "101 refused: {f:?}"
    );
    assert_eq!(p.upstream.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_heads_get_408_after_the_request_headers_timeout() {
    let p = start(json!({"request_headers_timeout": "1s"})).await;
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let t = Instant::now();
    let mut closed = None;
    use tokio::io::AsyncWriteExt;
    for b in b"GET /x HTTP/1.1\r\nhost: a\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        if s.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if t.elapsed() > Duration::from_secs(4) {
            break;
        }
        let (raw, end) = support::read_until_closed(&mut s, Duration::from_millis(1)).await;
        if end == End::Closed || !raw.is_empty() {
            closed = Some((raw, t.elapsed()));
            break;
        }
    }
    let (raw, took) = closed.expect("the slow head was cut");
    assert!(
        raw.is_empty() || status(&raw) == Some(408),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_after_the_idle_timeout_but_keep_alive_is_served() {
    let p = start(json!({"common_http_protocol_options": {"idle_timeout": "1s"}})).await;
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    use tokio::io::AsyncWriteExt;
    for _ in 0..3 {
        s.write_all(&get_with("")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let t = Instant::now();
    let (raw, end) = support::read_until_closed(&mut s, WAIT).await;
    assert_eq!(end, End::Closed);
    assert_eq!(
        String::from_utf8_lossy(&raw)
            .matches("HTTP/1.1 200")
            .count(),
        3
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "closed about 1 s after the last response"
    );
}
