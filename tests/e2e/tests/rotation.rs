//! Certificates rotate under load without a failed request, and a restarted mastd (its root
//! kept on disk) keeps existing and new connections working: sidecars with a 4 s certificate
//! lifetime rotate about every 2 s while a client sends a steady stream of requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use mast_e2e::{Mesh, Proxy, Workload, WorkloadSpec, yaml};
use mast_test_support::EchoServer;

/// Requests sent one after another, 25 ms apart, until `count` or `limit`; returns the
/// failures (status or error) and calls `tick` between requests.
async fn steady_load(
    client: &Workload,
    url: &str,
    count: usize,
    limit: Duration,
    mut tick: impl AsyncFnMut(),
) -> (usize, Vec<String>) {
    let deadline = Instant::now() + limit;
    let mut failures = Vec::new();
    let mut sent = 0;
    while sent < count && Instant::now() < deadline {
        match client.get(url, &[]).await {
            Ok(r) if r.status == 200 => {}
            Ok(r) => failures.push(format!("#{sent}: status {} {}", r.status, r.text())),
            Err(e) => failures.push(format!("#{sent}: {e:#}")),
        }
        sent += 1;
        tick().await;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    (sent, failures)
}

async fn start(proxy: Proxy, ttl: &str) -> (Mesh, EchoServer, Workload, Workload) {
    let mesh = Mesh::start(proxy, &[]).await.unwrap();
    let app = EchoServer::start("rot-svc").unwrap();
    let mut server = WorkloadSpec::server("rot-svc", "rot-svc", app.port());
    server.args = vec!["--cert-ttl".into(), ttl.into()];
    let server = Workload::start(&mesh, server).await.unwrap();
    let mut client = WorkloadSpec::client("rot-client", "rot-client");
    client.args = vec!["--cert-ttl".into(), ttl.into()];
    let client = Workload::start(&mesh, client).await.unwrap();
    let strict = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  \
                  namespace: default\nspec:\n  mtls:\n    mode: STRICT\n";
    let files = yaml::docs(&[
        yaml::service("rot-svc", &[("http", 80)]),
        server.entry("rot-svc", "http"),
        strict.to_owned(),
    ]);
    mesh.apply("rot.yaml", &files).await.unwrap();
    (mesh, app, server, client)
}

async fn rotation_under_load_fails_nothing(proxy: Proxy) {
    let (mesh, _app, server, client) = start(proxy, "4s").await;
    let first = client.get("http://rot-svc/", &[]).await.unwrap();
    assert_eq!(
        first.status,
        200,
        "{}{}",
        first.text(),
        mesh.explain().await
    );
    let mut seen = BTreeSet::new();
    let (sent, failures) = steady_load(
        &client,
        "http://rot-svc/",
        400,
        Duration::from_secs(12),
        async || {
            if let Some(c) = server.certificate().await {
                seen.insert(c);
            }
        },
    )
    .await;
    assert!(
        failures.is_empty(),
        "{} of {sent} requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        seen.len() >= 3,
        "the server's certificate rotated only {} times in {sent} requests",
        seen.len().saturating_sub(1)
    );
}

async fn mastd_restart_keeps_mtls_working(proxy: Proxy) {
    let (mesh, _app, _server, client) = start(proxy, "24h").await;
    let r = client.get("http://rot-svc/", &[]).await.unwrap();
    assert_eq!(r.status, 200, "{}{}", r.text(), mesh.explain().await);
    mesh.kill_mastd();
    let (sent, failures) = steady_load(
        &client,
        "http://rot-svc/",
        40,
        Duration::from_secs(5),
        async || {},
    )
    .await;
    assert!(failures.is_empty(), "without mastd: {failures:?} of {sent}");
    mesh.restart_mastd().await.unwrap();
    mesh.wait_synced().await.unwrap();
    // A new client after the restart gets a certificate from the same root and gets through.
    let late = Workload::start(&mesh, WorkloadSpec::client("late-client", "late-client"))
        .await
        .unwrap();
    let r = late.get("http://rot-svc/", &[]).await.unwrap();
    assert_eq!(
        r.status,
        200,
        "new client after restart: {}{}",
        r.text(),
        late.log()
    );
    let (sent, failures) = steady_load(
        &client,
        "http://rot-svc/",
        40,
        Duration::from_secs(5),
        async || {},
    )
    .await;
    assert!(
        failures.is_empty(),
        "after the restart: {failures:?} of {sent}"
    );
}

/// Runs `mastd ca rotate-root --phase <phase>` on the mesh's CA folder.
fn rotate_root(mesh: &Mesh, phase: &str) {
    let mastd = mast_test_support::cargo_bin("mastd").expect("mastd is built");
    let ca_dir = mesh.dir().join("mastd-ca");
    let out = std::process::Command::new(mastd)
        .args(["ca", "rotate-root", "--phase", phase, "--ca-dir"])
        .arg(&ca_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rotate-root {phase}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn root_rotation_with_an_overlap_bundle_fails_nothing(proxy: Proxy) {
    let (mesh, _app, _server, client) = start(proxy, "4s").await;
    let first = client.get("http://rot-svc/", &[]).await.unwrap();
    assert_eq!(
        first.status,
        200,
        "{}{}",
        first.text(),
        mesh.explain().await
    );
    let old_root = std::fs::read_to_string(mesh.dir().join("mastd-ca/root-cert.pem")).unwrap();
    // add: both roots trusted, old one signs; switch: new one signs; drop: only the new one.
    // Each phase lasts over two refreshes of every certificate (4 s lifetime, refresh at 2 s).
    let mut failures = Vec::new();
    let mut sent = 0;
    for phase in ["add", "switch", "drop"] {
        rotate_root(&mesh, phase);
        let (n, f) = steady_load(
            &client,
            "http://rot-svc/",
            400,
            Duration::from_secs(7),
            async || {},
        )
        .await;
        sent += n;
        failures.extend(f.into_iter().map(|f| format!("{phase}: {f}")));
    }
    assert!(
        failures.is_empty(),
        "{} of {sent} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let new_root = std::fs::read_to_string(mesh.dir().join("mastd-ca/root-cert.pem")).unwrap();
    assert_ne!(old_root, new_root, "the root changed");
    // A workload started now trusts only the new root and still reaches the server.
    let late = Workload::start(&mesh, WorkloadSpec::client("late-client", "late-client"))
        .await
        .unwrap();
    let r = late.get("http://rot-svc/", &[]).await.unwrap();
    assert_eq!(r.status, 200, "{}{}", r.text(), late.log());
}

mast_e2e::both! {
    rotation_under_load_fails_nothing,
    mastd_restart_keeps_mtls_working,
    root_rotation_with_an_overlap_bundle_fails_nothing,
}
