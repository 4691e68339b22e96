//! `mastctl x load` against a local echo server and a stand-in proxy: the rate kept, the
//! percentiles and statuses reported, failures counted, absolute-form requests through a proxy.

#![allow(clippy::unwrap_used)]

use super::*;

/// Parses `mastctl x load ARGS…` (never taking a proxy from the environment) and runs it.
async fn load(args: &[&str]) -> crate::cmd::x::stats::Stats {
    let mut argv = vec!["mastctl", "load"];
    argv.extend_from_slice(args);
    if !args.contains(&"--proxy") {
        argv.extend_from_slice(&["--proxy", ""]);
    }
    let crate::cmd::x::Program::Load(a) = Cli::try_parse_from(argv).unwrap().program else {
        panic!("not load")
    };
    let (plan, target) = a.plan_and_target().unwrap();
    let run = crate::cmd::x::load::execute(
        plan,
        Arc::new(target),
        crate::cmd::x::load::Progress::Off,
        std::future::pending(),
    );
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("load ends within 30s")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_keeps_the_rate_and_reports_percentiles() {
    let server = start(echo("hello")).await;
    let url = format!("http://{}/", server.addr);
    let stats = load(&[
        &url,
        "--rate",
        "100",
        "--duration",
        "2s",
        "--connections",
        "4",
    ])
    .await;
    assert_eq!(stats.total(), 200);
    let rate = stats.total() as f64 / stats.elapsed().as_secs_f64();
    assert!(
        (90.0..=110.0).contains(&rate),
        "{rate}/s over {:?}",
        stats.elapsed()
    );
    let summary = stats.summary();
    assert!(
        summary.starts_with("total      200 requests in 2."),
        "{summary}"
    );
    assert!(summary.contains("\nstatus     200: 200\n"), "{summary}");
    for p in ["p50 ", "p90 ", "p99 ", "p99.9 ", "max "] {
        assert!(summary.contains(p), "{p} missing: {summary}");
    }
    assert!(
        summary.ends_with("result     all 200 succeeded\n"),
        "{summary}"
    );
    assert!(stats.latency(0.5).unwrap() < Duration::from_millis(100));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_over_h2c_and_grpc() {
    let server = start(echo("hello")).await;
    let url = format!("http://{}/", server.addr);
    let stats = load(&[&url, "--rate", "200", "--requests", "60", "--http2"]).await;
    assert_eq!(stats.failed(), 0, "{}", stats.summary());
    assert!(stats.summary().contains("status     200: 60\n"));
    let stats = load(&[&url, "--rate", "200", "--requests", "60", "--grpc"]).await;
    assert_eq!(stats.failed(), 0, "{}", stats.summary());
    assert!(
        stats.summary().contains("grpc       0 OK: 60\n"),
        "{}",
        stats.summary()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_counts_failures() {
    let mut e = echo("down");
    e.error_rate = 1.0;
    let server = start(e).await;
    let url = format!("http://{}/", server.addr);
    let stats = load(&[&url, "--rate", "200", "--requests", "20"]).await;
    let summary = stats.summary();
    assert!(summary.contains("status     503: 20\n"), "{summary}");
    assert!(
        summary.ends_with("result     20 of 20 failed\n"),
        "{summary}"
    );
    let stats = load(&[&url, "--rate", "200", "--requests", "10", "--grpc"]).await;
    assert!(
        stats.summary().contains("grpc       14 UNAVAILABLE: 10\n"),
        "{}",
        stats.summary()
    );
    let addr = server.addr;
    server.stop().await;

    let url = format!("http://{addr}/");
    let stats = load(&[&url, "--rate", "200", "--requests", "5"]).await;
    assert!(
        stats.summary().contains("errors     connect error: 5\n"),
        "{}",
        stats.summary()
    );
    assert!(stats.summary().contains("latency    - (no answers)\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_counts_timeouts() {
    let mut e = echo("slow");
    e.delay = Duration::from_secs(3);
    let server = start(e).await;
    let url = format!("http://{}/", server.addr);
    let t = Instant::now();
    let stats = load(&[
        &url,
        "--rate",
        "100",
        "--requests",
        "3",
        "--timeout",
        "200ms",
    ])
    .await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(
        stats.summary().contains("errors     timeout: 3\n"),
        "{}",
        stats.summary()
    );
    server.stop().await;
}

/// A stand-in HTTP proxy: answers `ok` to every request and reports each request head;
/// with `close`, it closes each connection after one answer (without saying so).
async fn proxy_double(
    close: bool,
) -> (
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<String>,
    tokio::task::JoinHandle<()>,
) {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                loop {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push_str(&line);
                    }
                    let _ = tx.send(head);
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n";
                    if stream.get_mut().write_all(reply).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_through_a_proxy_sends_absolute_form() {
    let (proxy, mut heads, task) = proxy_double(false).await;
    let proxy_url = format!("http://{proxy}");
    let stats = load(&[
        "http://nginx-svc/path?x=1",
        "--requests",
        "3",
        "--rate",
        "100",
        "--proxy",
        &proxy_url,
        "-H",
        "vs-user: jicki",
    ])
    .await;
    assert_eq!(stats.failed(), 0, "{}", stats.summary());
    for _ in 0..3 {
        let head = heads.recv().await.unwrap();
        let lower = head.to_ascii_lowercase();
        assert!(
            head.starts_with("GET http://nginx-svc/path?x=1 HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(lower.contains("host: nginx-svc\r\n"), "{head}");
        assert!(lower.contains("vs-user: jicki\r\n"), "{head}");
    }
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_replaces_a_kept_alive_connection_the_server_closed() {
    let (proxy, _heads, task) = proxy_double(true).await;
    let proxy_url = format!("http://{proxy}");
    let stats = load(&[
        "http://nginx-svc/",
        "--requests",
        "20",
        "--rate",
        "200",
        "--connections",
        "1",
        "--proxy",
        &proxy_url,
    ])
    .await;
    assert_eq!(stats.failed(), 0, "{}", stats.summary());
    task.abort();
}

#[test]
fn load_flags_make_the_target() {
    let parse = |args: &[&str]| {
        let mut argv = vec!["mastctl", "load"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).map(|c| c.program) {
            Ok(crate::cmd::x::Program::Load(a)) => a.plan_and_target(),
            Ok(_) => panic!("not load"),
            Err(e) => Err(anyhow::anyhow!("{e}")),
        }
    };
    let (_, t) = parse(&["http://nginx-svc/", "--proxy", "http://127.0.0.1:15001"]).unwrap();
    assert_eq!(t.connect, "127.0.0.1:15001");
    let (_, t) = parse(&["http://127.0.0.1:8080/x", "--proxy", ""]).unwrap();
    assert_eq!((t.connect.as_str(), t.proxy), ("127.0.0.1:8080", None));
    let (plan, _) = parse(&["http://a/", "--proxy", "", "--requests", "5"]).unwrap();
    assert!(matches!(plan.stop, crate::cmd::x::load::Stop::Count(5)));
    assert!(parse(&["https://a/", "--proxy", ""]).is_err());
    assert!(parse(&["http://a/", "--duration", "1s", "--requests", "5"]).is_err());
    assert!(parse(&["http://a/", "--rate", "0", "--proxy", ""]).is_err());
    assert!(parse(&["http://a/", "-H", "no colon"]).is_err());
}
