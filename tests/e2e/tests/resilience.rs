//! Resilience as a client sees it: retries (a flaky upstream recovers; `attempts: 0` shows the
//! failure), route and per-try timeouts against a slow upstream, and fault injection (abort
//! at 100% and 50%, fixed delay).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use mast_e2e::{Proxy, SharedMesh, shared, within, yaml};
use mast_test_support::{Behaviour, EchoServer, HttpRequest};

static MESH: SharedMesh = SharedMesh::const_new();

/// A VirtualService `name` routing everything to `name` with the extra rule fields `extra`
/// (YAML lines indented under the rule).
fn vs(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\n  \
         namespace: default\nspec:\n  hosts: [{name}]\n  http:\n  - route: [{{destination: {{host: {name}}}}}]\n{extra}"
    )
}

async fn retries_hide_two_failures(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let flaky = EchoServer::start("v1").unwrap();
    let rule = "    retries: {attempts: 3, retryOn: \"5xx\"}\n";
    let files = yaml::docs(&[
        yaml::http_service("retry-svc", &[&flaky]),
        vs("retry-svc", rule),
    ]);
    mesh.apply("retry.yaml", &files).await.unwrap();
    flaky.set_behaviour(Behaviour::default().fail_first(2, 503));
    flaky.reset();
    let r = mesh.get("http://retry-svc/", &[]).await.unwrap();
    let ok = r.status == 200 && r.trimmed() == "v1" && flaky.request_count() == 3;
    assert!(
        ok,
        "status {} body {:?}; upstream saw {} requests{}",
        r.status,
        r.text(),
        flaky.request_count(),
        mesh.explain().await
    );
}

async fn zero_retry_attempts_show_the_failure(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let flaky = EchoServer::start("v1").unwrap();
    let rule = "    retries: {attempts: 0}\n";
    let files = yaml::docs(&[
        yaml::http_service("noretry-svc", &[&flaky]),
        vs("noretry-svc", rule),
    ]);
    mesh.apply("noretry.yaml", &files).await.unwrap();
    flaky.set_behaviour(Behaviour::default().fail_first(1, 503));
    flaky.reset();
    let r = mesh.get("http://noretry-svc/", &[]).await.unwrap();
    let ok = r.status == 503 && flaky.request_count() == 1;
    assert!(
        ok,
        "status {}; upstream saw {} requests{}",
        r.status,
        flaky.request_count(),
        mesh.explain().await
    );
    let next = mesh.get("http://noretry-svc/", &[]).await.unwrap();
    assert_eq!(next.status, 200, "the upstream recovered");
}

async fn route_timeout_answers_504(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let slow =
        EchoServer::start_with("v1", Behaviour::default().delay(Duration::from_secs(5))).unwrap();
    let rule = "    timeout: 0.5s\n";
    let files = yaml::docs(&[
        yaml::http_service("timeout-svc", &[&slow]),
        vs("timeout-svc", rule),
    ]);
    mesh.apply("timeout.yaml", &files).await.unwrap();
    let started = Instant::now();
    let r = mesh.get("http://timeout-svc/", &[]).await.unwrap();
    let took = started.elapsed();
    let ok = r.status == 504
        && took >= Duration::from_millis(450)
        && took < Duration::from_millis(2_500);
    assert!(
        ok,
        "status {} after {took:?}{}",
        r.status,
        mesh.explain().await
    );
}

async fn per_try_timeout_cuts_each_attempt(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let slow =
        EchoServer::start_with("v1", Behaviour::default().delay(Duration::from_secs(4))).unwrap();
    let rule =
        "    timeout: 10s\n    retries: {attempts: 2, perTryTimeout: 0.3s, retryOn: \"5xx\"}\n";
    let files = yaml::docs(&[
        yaml::http_service("pertry-svc", &[&slow]),
        vs("pertry-svc", rule),
    ]);
    mesh.apply("pertry.yaml", &files).await.unwrap();
    slow.reset();
    let started = Instant::now();
    let r = mesh.get("http://pertry-svc/", &[]).await.unwrap();
    let took = started.elapsed();
    // Three tries of 0.3 s each (plus the short back-off between them), far below the
    // 4 s the upstream needs and the 10 s route timeout.
    let ok = r.status == 504
        && slow.request_count() == 3
        && took >= Duration::from_millis(850)
        && took < Duration::from_millis(3_000);
    assert!(
        ok,
        "status {} after {took:?}; upstream saw {} tries{}",
        r.status,
        slow.request_count(),
        mesh.explain().await
    );
}

async fn fault_abort_at_100_percent(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let echo = EchoServer::start("v1").unwrap();
    let rule = "    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}\n";
    let files = yaml::docs(&[
        yaml::http_service("abort-svc", &[&echo]),
        vs("abort-svc", rule),
    ]);
    mesh.apply("abort.yaml", &files).await.unwrap();
    let tally = mesh.tally_get("http://abort-svc/", &[], 50).await;
    let ok = tally.count("418") == 50 && echo.request_count() == 0;
    assert!(
        ok,
        "{tally}; upstream saw {}{}",
        echo.request_count(),
        mesh.explain().await
    );
}

async fn fault_abort_at_50_percent(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let echo = EchoServer::start("v1").unwrap();
    let rule = "    fault: {abort: {httpStatus: 503, percentage: {value: 50}}}\n";
    let files = yaml::docs(&[
        yaml::http_service("abort-half-svc", &[&echo]),
        vs("abort-half-svc", rule),
    ]);
    mesh.apply("abort-half.yaml", &files).await.unwrap();
    let tally = mesh.tally_get("http://abort-half-svc/", &[], 400).await;
    // Binomial(400, 0.5): σ = 2.5%; ±10% is four σ. Faults disable retries, so every
    // aborted request is seen.
    let aborted = tally.share("503");
    let ok = tally.count("503") + tally.count("v1") == 400 && within(aborted, 0.5, 0.10);
    assert!(ok, "{tally}{}", mesh.explain().await);
    assert_eq!(echo.request_count() as usize, tally.count("v1"));
}

async fn fault_delay_adds_latency(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let echo = EchoServer::start("v1").unwrap();
    let rule = "    fault: {delay: {fixedDelay: 0.6s, percentage: {value: 100}}}\n";
    let files = yaml::docs(&[
        yaml::http_service("delay-svc", &[&echo]),
        vs("delay-svc", rule),
    ]);
    mesh.apply("delay.yaml", &files).await.unwrap();
    let mut latencies = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let r = mesh
            .send(HttpRequest::get("http://delay-svc/"))
            .await
            .unwrap();
        latencies.push((r.status, started.elapsed()));
    }
    let ok = latencies.iter().all(|(status, took)| {
        *status == 200
            && *took >= Duration::from_millis(580)
            && *took < Duration::from_millis(3_000)
    });
    assert!(
        ok,
        "status and latency per request: {latencies:?}{}",
        mesh.explain().await
    );
}

mast_e2e::both! {
    retries_hide_two_failures,
    zero_retry_attempts_show_the_failure,
    route_timeout_answers_504,
    per_try_timeout_cuts_each_attempt,
    fault_abort_at_100_percent,
    fault_abort_at_50_percent,
    fault_delay_adds_latency,
}
