//! The control plane under change and failure, each scenario on a mesh of its own:
//! - a VirtualService edited while traffic flows moves the split with no failed request, and
//!   `/debug/syncz` (and `mastctl proxy-status`) show the proxy SYNCED at the new version
//!   within a second of the write;
//! - broken files next to good ones are reported in `/debug/configz` and change nothing;
//! - killing mastd leaves the proxy serving its last config, and a restarted mastd on the
//!   same xDS port resynchronises it, including a change made while it was down.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mast_e2e::traffic::outcome_key;
use mast_e2e::{Mesh, Proxy, write_atomic, yaml};
use mast_test_support::{EchoServer, HttpRequest, wait_for_async};
use parking_lot::Mutex;
use serde_json::Value;

/// A mesh with service `name` (endpoints v1 and v2, one DestinationRule subset per version)
/// and a VirtualService `<name>-vs.yaml` sending everything to v1.
struct SplitMesh {
    mesh: Mesh,
    name: &'static str,
    _upstreams: [EchoServer; 2],
}

impl SplitMesh {
    async fn start(proxy: Proxy, name: &'static str) -> Self {
        let [v1, v2] = ["v1", "v2"].map(|v| EchoServer::start(v).unwrap());
        let rule = format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {name}\n  \
             namespace: default\nspec:\n  host: {name}\n  subsets:\n  - name: v1\n    labels: {{version: v1}}\n  \
             - name: v2\n    labels: {{version: v2}}\n"
        );
        let service = yaml::docs(&[yaml::http_service(name, &[&v1, &v2]), rule]);
        let files = [
            (format!("{name}.yaml"), service),
            (Self::vs_file(name), split(name, 100, 0)),
        ];
        let files: Vec<(&str, &str)> = files
            .iter()
            .map(|(f, y)| (f.as_str(), y.as_str()))
            .collect();
        let mesh = Mesh::start(proxy, &files).await.unwrap();
        Self {
            mesh,
            name,
            _upstreams: [v1, v2],
        }
    }

    fn vs_file(name: &str) -> String {
        format!("{name}-vs.yaml")
    }

    fn url(&self) -> String {
        format!("http://{}/", self.name)
    }
}

/// A VirtualService splitting `name` between its subsets v1 and v2 by weight.
fn split(name: &str, v1: u32, v2: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\n  \
         namespace: default\nspec:\n  hosts: [{name}]\n  http:\n  - route:\n    \
         - destination: {{host: {name}, subset: v1}}\n      weight: {v1}\n    \
         - destination: {{host: {name}, subset: v2}}\n      weight: {v2}\n"
    )
}

/// A client sending requests one at a time (with a 1 ms pause) in the background, logging
/// each outcome in order.
struct Background {
    log: Arc<Mutex<Vec<String>>>,
    done: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Background {
    fn start(proxy: SocketAddr, url: String, count: usize) -> Self {
        let (log, done) = (
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(AtomicUsize::new(0)),
        );
        let (l, d) = (log.clone(), done.clone());
        let task = tokio::spawn(async move {
            for _ in 0..count {
                let r = HttpRequest::get(&url)
                    .timeout(Duration::from_secs(5))
                    .via_proxy(proxy)
                    .await;
                let key = outcome_key(&r.map_err(|e| e.to_string()));
                let key = if key == "v1" || key == "v2" {
                    key
                } else {
                    format!("{key}@{}ms", unix_ms())
                };
                l.lock().push(key);
                d.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        Self { log, done, task }
    }

    fn sent(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    async fn wait_sent(&self, count: usize) -> bool {
        wait_for_async(|| async { self.sent() >= count }, Duration::from_secs(20)).await
    }

    /// Waits for the loop to end (bounded), or stops it when `stop`; returns the log.
    async fn finish(self, stop: bool) -> Vec<String> {
        if stop {
            self.task.abort();
        } else {
            let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
        }
        self.log.lock().clone()
    }
}

/// Milliseconds since the Unix epoch, to place failures against the test's events.
fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

fn failures(log: &[String]) -> Vec<&String> {
    log.iter().filter(|k| *k != "v1" && *k != "v2").collect()
}

async fn live_split_change_fails_no_request(proxy: Proxy) {
    let split_mesh = SplitMesh::start(proxy, "live-svc").await;
    let mesh = &split_mesh.mesh;
    let client = Background::start(mesh.outbound(), split_mesh.url(), 1_500);
    assert!(
        client.wait_sent(500).await,
        "client too slow: {}",
        client.sent()
    );

    let written_at = client.sent();
    let vs_file = SplitMesh::vs_file("live-svc");
    mesh.write(&vs_file, &split("live-svc", 0, 100))
        .await
        .unwrap();
    let took = mesh.wait_synced().await.unwrap();
    let version = mesh.monitoring().snapshot_version().await.unwrap();
    let sync = mesh
        .monitoring()
        .proxy_sync(mesh.node_id())
        .await
        .unwrap()
        .unwrap();
    let status = proxy_status_row(mesh).await;
    let log = client.finish(false).await;

    let failed = failures(&log);
    let before_ok = log[..written_at].iter().all(|k| k == "v1");
    let after_ok = log.len() == 1_500 && log[1_200..].iter().all(|k| k == "v2");
    let first_v2 = log.iter().position(|k| k == "v2");
    let synced_ok = sync.all_synced()
        && sync.acked("RDS") == Some(version)
        && status.matches("SYNCED").count() == 4;
    let summary = format!(
        "{} requests, {} failed {:?}; all v1 before the write (at request {written_at}): \
         {before_ok}; all v2 in the last 300: {after_ok}; first v2 at {first_v2:?}; SYNCED at \
         version {version} {took:?} after the write: {synced_ok} ({}; mastctl proxy-status: {status})",
        log.len(),
        failed.len(),
        failed.iter().take(5).collect::<Vec<_>>(),
        sync.summary(),
    );
    println!("live change ({proxy}): {summary}");
    let ok =
        failed.is_empty() && before_ok && after_ok && synced_ok && took < Duration::from_secs(1);
    assert!(ok, "{summary}{}", mesh.explain().await);
}

/// The client's row of `mastctl proxy-status` (istioctl's columns).
async fn proxy_status_row(mesh: &Mesh) -> String {
    let mastd = mesh.monitoring().addr.to_string();
    let out = mesh
        .mastctl_output(&["proxy-status", "client.default", "--mastd", &mastd])
        .await;
    out.lines()
        .find(|l| l.starts_with("client.default"))
        .map_or(out.clone(), str::to_owned)
}

/// Not YAML at all.
const BROKEN_SYNTAX: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\n\
                             metadata:\n  name: broken\nspec:\n  hosts: [bad-svc\n";

/// A VirtualService that would send everything to v2, but whose regex does not compile.
const BROKEN_INVALID: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: invalid, namespace: default}
spec:
  hosts: [bad-svc]
  http:
  - match: [{uri: {regex: "/api/(v1|v2"}}]
    route: [{destination: {host: bad-svc, subset: v2}}]
"#;

/// Whether configz reports a diagnostic naming `file`.
fn reports(configz: &Value, file: &str) -> bool {
    configz
        .get("diagnostics")
        .and_then(Value::as_array)
        .is_some_and(|d| d.iter().any(|x| x.to_string().contains(file)))
}

async fn broken_files_leave_the_mesh_routing(proxy: Proxy) {
    let split_mesh = SplitMesh::start(proxy, "bad-svc").await;
    let mesh = &split_mesh.mesh;
    let dir = mesh.config_dir();
    write_atomic(&dir.join("broken-syntax.yaml"), BROKEN_SYNTAX).unwrap();
    write_atomic(&dir.join("broken-invalid.yaml"), BROKEN_INVALID).unwrap();
    let monitoring = mesh.monitoring();
    let both = |c: &Value| reports(c, "broken-syntax.yaml") && reports(c, "broken-invalid.yaml");
    let reported = wait_for_async(
        || async { monitoring.configz().await.is_ok_and(|c| both(&c)) },
        Duration::from_secs(5),
    )
    .await;
    assert!(
        reported,
        "configz does not report both files{}",
        mesh.explain().await
    );
    let configz = monitoring.configz().await.unwrap();
    let rejected = configz.get("rejected").and_then(Value::as_u64).unwrap_or(0);
    assert!(rejected >= 2, "{configz}");

    let during = mesh.tally_get("http://bad-svc/api/v2", &[], 50).await;
    assert_eq!(
        during.count("v1"),
        50,
        "routing changed: {during}{}",
        mesh.explain().await
    );
    // The mesh still takes good changes while the broken files stay.
    let vs_file = SplitMesh::vs_file("bad-svc");
    mesh.apply(&vs_file, &split("bad-svc", 0, 100))
        .await
        .unwrap();
    let after = mesh.tally_get("http://bad-svc/", &[], 50).await;
    assert_eq!(
        after.count("v2"),
        50,
        "a good change did not apply: {after}{}",
        mesh.explain().await
    );
}

/// Kills mastd, checks the proxy still routes by its last config, and edits the
/// VirtualService (v1 → v2) while mastd is down: the proxy, not told, keeps routing to v1.
async fn crash_and_edit_offline(mesh: &Mesh) {
    println!("event: kill mastd @{}ms", unix_ms());
    mesh.kill_mastd();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let down = mesh.tally_get("http://crash-svc/", &[], 50).await;
    assert_eq!(
        down.count("v1"),
        50,
        "the proxy lost its config: {down}{}",
        mesh.explain().await
    );
    // A change made while mastd is down takes effect once it is back.
    let vs_path = mesh.config_dir().join(SplitMesh::vs_file("crash-svc"));
    write_atomic(&vs_path, &split("crash-svc", 0, 100)).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        mesh.tally_get("http://crash-svc/", &[], 20)
            .await
            .count("v1"),
        20
    );
}

async fn proxy_keeps_its_config_while_mastd_is_down_and_resyncs_after_restart(proxy: Proxy) {
    let split_mesh = SplitMesh::start(proxy, "crash-svc").await;
    let mesh = &split_mesh.mesh;
    // Traffic flows through the crash, the outage and the restart.
    let client = Background::start(mesh.outbound(), split_mesh.url(), 100_000);

    crash_and_edit_offline(mesh).await;

    let restarted = Instant::now();
    println!("event: restart mastd @{}ms", unix_ms());
    mesh.restart_mastd().await.unwrap();
    println!("event: mastd restarted @{}ms", unix_ms());
    let sync = match mesh.wait_current(Duration::from_secs(40)).await {
        Ok(s) => s,
        Err(e) => panic!("{e:#}{}", mesh.explain().await),
    };
    let resync = restarted.elapsed();
    assert!(sync.all_synced(), "{}", sync.summary());
    let after = mesh.tally_get("http://crash-svc/", &[], 50).await;
    assert_eq!(
        after.count("v2"),
        50,
        "the change did not apply: {after}{}",
        mesh.explain().await
    );

    let log = client.finish(true).await;
    let failed = failures(&log);
    println!(
        "mastd restart ({proxy}): resynced in {resync:?}; {} background requests, {} failed; {}",
        log.len(),
        failed.len(),
        sync.summary()
    );
    assert!(
        failed.is_empty(),
        "{} of {} background requests failed during the outage and resync: {:?}{}",
        failed.len(),
        log.len(),
        failed.iter().take(5).collect::<Vec<_>>(),
        mesh.explain().await
    );
}

mast_e2e::both! {
    live_split_change_fails_no_request(multi_thread),
    broken_files_leave_the_mesh_routing,
    proxy_keeps_its_config_while_mastd_is_down_and_resyncs_after_restart(multi_thread),
}
