//! DestinationRule traffic policies as a client sees them: round robin spreads requests over
//! three endpoints, a consistent hash on a header keeps a user on one endpoint, a tiny
//! connection pool overflows into 503s marked `x-envoy-overloaded` (Envoy's UO, which
//! mast-proxy follows), and outlier detection ejects an endpoint that fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use mast_e2e::{Proxy, SharedMesh, shared, yaml};
use mast_test_support::{Behaviour, EchoServer, HttpRequest};

static MESH: SharedMesh = SharedMesh::const_new();

/// A DestinationRule for `host` with `policy` (YAML lines under `trafficPolicy:`).
fn rule(host: &str, policy: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {host}\n  \
         namespace: default\nspec:\n  host: {host}\n  trafficPolicy:\n{policy}"
    )
}

fn three() -> [EchoServer; 3] {
    ["v1", "v2", "v3"].map(|v| EchoServer::start(v).unwrap())
}

async fn round_robin_spreads_over_three_endpoints(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let [a, b, c] = three();
    let policy = "    loadBalancer: {simple: ROUND_ROBIN}\n";
    let files = yaml::docs(&[
        yaml::http_service("rr-svc", &[&a, &b, &c]),
        rule("rr-svc", policy),
    ]);
    mesh.apply("rr.yaml", &files).await.unwrap();
    let tally = mesh.tally_get("http://rr-svc/", &[], 300).await;
    // Each proxy worker cycles over the three endpoints: every one gets close to a third.
    let ok = ["v1", "v2", "v3"]
        .iter()
        .all(|v| (80..=120).contains(&tally.count(v)));
    assert!(ok, "{tally}{}", mesh.explain().await);
}

async fn consistent_hash_on_a_header_sticks(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let [a, b, c] = three();
    let policy = "    loadBalancer: {consistentHash: {httpHeaderName: x-user}}\n";
    let files = yaml::docs(&[
        yaml::http_service("hash-svc", &[&a, &b, &c]),
        rule("hash-svc", policy),
    ]);
    mesh.apply("hash.yaml", &files).await.unwrap();
    let mut homes = Vec::new();
    for user in 0..12 {
        let name = format!("user-{user}");
        let tally = mesh
            .tally_get("http://hash-svc/", &[("x-user", &name)], 15)
            .await;
        let sticky = tally.counts.len() == 1
            && tally.total() == 15
            && tally.count("v1") + tally.count("v2") + tally.count("v3") == 15;
        assert!(
            sticky,
            "{name} was not sticky: {tally}{}",
            mesh.explain().await
        );
        homes.push(tally.counts.keys().next().cloned().unwrap_or_default());
    }
    // Stickiness is not "everything on one endpoint": twelve users land on several.
    let distinct: BTreeSet<&String> = homes.iter().collect();
    assert!(
        distinct.len() >= 2,
        "every user hashed to {distinct:?}{}",
        mesh.explain().await
    );
}

async fn connection_pool_overflow_is_refused_with_503_uo(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let slow = EchoServer::start_with("v1", Behaviour::default().delay(Duration::from_millis(800)))
        .unwrap();
    let policy = "    connectionPool:\n      tcp: {maxConnections: 1}\n      http: {http1MaxPendingRequests: 1, http2MaxRequests: 1}\n";
    let files = yaml::docs(&[
        yaml::http_service("pool-svc", &[&slow]),
        rule("pool-svc", policy),
    ]);
    mesh.apply("pool.yaml", &files).await.unwrap();
    // Ten requests at once: one in flight, one pending, the rest overflow.
    let tally = mesh
        .tally(10, |_| HttpRequest::get("http://pool-svc/"))
        .await;
    let overflowed = tally
        .responses
        .iter()
        .filter(|r| r.status == 503 && r.header("x-envoy-overloaded") == Some("true"))
        .count();
    let ok =
        tally.count("v1") >= 1 && overflowed >= 5 && tally.count("v1") + tally.count("503") == 10;
    assert!(
        ok,
        "{tally}; {overflowed} marked x-envoy-overloaded{}",
        mesh.explain().await
    );
}

async fn outlier_detection_ejects_the_failing_endpoint(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let healthy = EchoServer::start("v1").unwrap();
    let failing = EchoServer::start_with("v2", Behaviour::default().status(500)).unwrap();
    let policy = "    loadBalancer: {simple: ROUND_ROBIN}\n    outlierDetection:\n      consecutive5xxErrors: 1\n      interval: 1s\n      baseEjectionTime: 30s\n      maxEjectionPercent: 100\n";
    let files = yaml::docs(&[
        yaml::http_service("outlier-svc", &[&healthy, &failing]),
        rule("outlier-svc", policy),
    ]);
    mesh.apply("outlier.yaml", &files).await.unwrap();
    // One at a time, so each answer is seen by outlier detection before the next request.
    let mut seen = Vec::new();
    for _ in 0..20 {
        let r = mesh.get("http://outlier-svc/", &[]).await.unwrap();
        seen.push(if r.status == 200 {
            r.trimmed()
        } else {
            r.status.to_string()
        });
    }
    let last = &seen[10..];
    let ok = last.iter().all(|s| s == "v1") && (1..=4).contains(&failing.request_count());
    assert!(
        ok,
        "answers in order: {seen:?}; the failing endpoint got {}{}",
        failing.request_count(),
        mesh.explain().await
    );
}

mast_e2e::both! {
    round_robin_spreads_over_three_endpoints,
    consistent_hash_on_a_header_sticks,
    connection_pool_overflow_is_refused_with_503_uo,
    outlier_detection_ejects_the_failing_endpoint,
}
