//! The ADS client against a real mastd (the binary built by `cargo build --workspace --bins`)
//! on free ports with a temporary config folder, in both protocols: the four types arrive in
//! Envoy's order, a folder edit arrives as an update, a handler error is a NACK that mastd
//! shows in `/debug/syncz` and the next good version is ACKed, and a killed and restarted
//! mastd is reconnected to and resynced. Also `mastctl proxy-config` against the admin
//! interface of a client fed by mastd.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mast_proxy::admin::{AdminState, serve_admin};
use mast_proxy::bootstrap::{Args, Bootstrap};
use mast_proxy::signals::Signals;
use mast_proxy::xds::{CLUSTER_TYPE, Handler, TYPES, Update, XdsClient};
use mast_test_support::{
    ProcessGuard, TempDir, cargo_bin, free_port, http_get_direct, wait_for_async,
};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(20);

/// Records every update; refuses CDS while `fail_cds` is set.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(String, Update)>>,
    fail_cds: AtomicBool,
}

impl Handler for Recorder {
    fn apply(&self, type_url: &str, update: &Update) -> Result<(), String> {
        if type_url == CLUSTER_TYPE && self.fail_cds.load(Ordering::SeqCst) {
            return Err("test handler refuses these clusters".into());
        }
        self.seen.lock().push((type_url.to_owned(), update.clone()));
        Ok(())
    }
}

struct Mastd {
    guard: Option<ProcessGuard>,
    dir: TempDir,
    xds: SocketAddr,
    monitoring: SocketAddr,
}

impl Mastd {
    async fn start() -> Self {
        let dir = TempDir::new("mast-proxy-xds").unwrap();
        std::fs::create_dir_all(dir.join("config")).unwrap();
        let mut mastd = Self {
            guard: None,
            xds: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
            monitoring: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
            dir,
        };
        mastd.add_service("alpha");
        mastd.restart().await;
        mastd
    }

    fn config(&self) -> PathBuf {
        self.dir.join("config")
    }

    /// A Service with one WorkloadEntry on 127.0.0.1.
    fn add_service(&self, name: &str) {
        let yaml = format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n\
             spec:\n  selector:\n    app: {name}\n  ports:\n  - name: http\n    port: 80\n---\n\
             apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: {name}-v1\n  \
             namespace: default\nspec:\n  address: 127.0.0.1\n  labels:\n    app: {name}\n  ports:\n    http: 18080\n"
        );
        write_atomic(&self.config().join(format!("{name}.yaml")), &yaml);
    }

    async fn restart(&mut self) {
        let bin = cargo_bin("mastd").expect("mastd is built (cargo build --workspace --bins)");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("mastd.log"))
            .unwrap();
        let mut command = Command::new(bin);
        command
            .arg("--config-dir")
            .arg(self.config())
            .arg("--xds-addr")
            .arg(self.xds.to_string())
            .arg("--monitoring-addr")
            .arg(self.monitoring.to_string())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.guard = Some(ProcessGuard::spawn(&mut command).unwrap());
        let monitoring = self.monitoring;
        let up = wait_for_async(
            || async move {
                http_get_direct(monitoring, "/version", &[])
                    .await
                    .is_ok_and(|r| r.status == 200)
            },
            WAIT,
        )
        .await;
        assert!(up, "mastd did not start: {}", self.log());
    }

    fn kill(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            guard.kill();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mastd.log")).unwrap_or_default()
    }

    async fn syncz(&self, node_id: &str) -> Option<Value> {
        let r = http_get_direct(self.monitoring, "/debug/syncz", &[])
            .await
            .ok()?;
        let all: Value = serde_json::from_str(&r.text()).ok()?;
        all.as_array()?
            .iter()
            .rev()
            .find(|e| e["proxy_id"] == node_id)
            .cloned()
    }
}

fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn has_cluster(client: &XdsClient, service: &str) -> bool {
    let host = format!("|{service}.default.svc.cluster.local");
    client
        .resources(CLUSTER_TYPE)
        .iter()
        .any(|(name, _)| name.ends_with(&host))
}

async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let ok = wait_for_async(|| std::future::ready(condition()), WAIT).await;
    assert!(ok, "timed out waiting until {what}");
}

fn start_client(
    mastd: &Mastd,
    delta: bool,
    recorder: Arc<Recorder>,
) -> (Arc<XdsClient>, watch::Sender<bool>, Bootstrap) {
    let mut args = vec![
        "mast-proxy",
        "--workload",
        "client",
        "--capture-mode",
        "ports",
        "--admin-port",
        "0",
        "--health-port",
        "0",
    ];
    if !delta {
        args.push("--sotw");
    }
    let bootstrap = <Args as clap::Parser>::parse_from(args).resolve().unwrap();
    let client = Arc::new(XdsClient::new(
        mastd.xds.to_string(),
        bootstrap.node.clone(),
        bootstrap.delta,
        recorder,
    ));
    let (tx, rx) = watch::channel(false);
    tokio::spawn(client.clone().run(rx));
    (client, tx, bootstrap)
}

async fn scenario(delta: bool) {
    let mut mastd = Mastd::start().await;
    let recorder = Arc::new(Recorder::default());
    let (client, stop, _) = start_client(&mastd, delta, recorder.clone());
    let node_id = client.node().id.clone();
    until("the initial fetch is done", || client.initial_fetch_done()).await;
    let order: Vec<String> = recorder
        .seen
        .lock()
        .iter()
        .take(4)
        .map(|(t, _)| t.clone())
        .collect();
    assert_eq!(
        order,
        TYPES.map(str::to_owned),
        "types arrive in Envoy's order"
    );
    assert!(
        has_cluster(&client, "alpha"),
        "{:?}",
        client.resources(CLUSTER_TYPE)
    );

    mastd.add_service("beta");
    until("an edit arrives", || has_cluster(&client, "beta")).await;

    recorder.fail_cds.store(true, Ordering::SeqCst);
    mastd.add_service("gamma");
    let nacked = wait_for_async(
        || async {
            let entry = mastd.syncz(&node_id).await;
            let nack = entry.as_ref().and_then(|e| {
                e["detail"]["types"][CLUSTER_TYPE]["last_nack"]["error"]
                    .as_str()
                    .map(str::to_owned)
            });
            nack.is_some_and(|n| n.contains("test handler refuses"))
        },
        WAIT,
    )
    .await;
    assert!(
        nacked,
        "mastd shows the NACK: {:?}",
        mastd.syncz(&node_id).await
    );
    assert!(
        !has_cluster(&client, "gamma"),
        "a NACKed response changes nothing"
    );
    let cds = client.cache();
    assert!(cds.get(CLUSTER_TYPE).unwrap().status.last_nack.is_some());

    recorder.fail_cds.store(false, Ordering::SeqCst);
    mastd.add_service("delta");
    // SotW: the next response holds every cluster. Delta: mastd does not re-send a NACKed
    // resource until its content changes (as for Envoy), so only the new one arrives.
    until("the next good version arrives", || {
        has_cluster(&client, "delta") && (delta || has_cluster(&client, "gamma"))
    })
    .await;
    let synced = wait_for_async(
        || async {
            mastd
                .syncz(&node_id)
                .await
                .is_some_and(|e| e["cds"] == "SYNCED")
        },
        WAIT,
    )
    .await;
    assert!(
        synced,
        "the next version is ACKed: {:?}",
        mastd.syncz(&node_id).await
    );

    mastd.kill();
    until("the client sees the stream end", || !client.is_connected()).await;
    mastd.add_service("epsilon");
    mastd.restart().await;
    until("the client resyncs after the restart", || {
        client.is_connected() && has_cluster(&client, "epsilon")
    })
    .await;
    assert!(has_cluster(&client, "alpha"), "kept what it had");
    let synced = wait_for_async(
        || async {
            mastd
                .syncz(&node_id)
                .await
                .is_some_and(|e| e["cds"] == "SYNCED" && e["lds"] == "SYNCED")
        },
        WAIT,
    )
    .await;
    assert!(synced, "resynced: {:?}", mastd.syncz(&node_id).await);
    stop.send_replace(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_against_mastd() {
    scenario(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_against_mastd() {
    scenario(false).await;
}

async fn mastctl(args: &[&str]) -> String {
    let bin = cargo_bin("mastctl").expect("mastctl is built (cargo build --workspace --bins)");
    let out = tokio::process::Command::new(bin)
        .args(args)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "mastctl {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `mastctl proxy-config` finds the admin interface through mastd (the node metadata's
/// MAST_ADMIN_ADDRESS) and reads clusters, endpoints, listeners and routes from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mastctl_proxy_config_reads_the_admin() {
    let mastd = Mastd::start().await;
    let (client, stop, bootstrap) = start_client(&mastd, true, Arc::new(Recorder::default()));
    let admin = bootstrap.admin;
    let state = AdminState::new(
        client.clone(),
        Signals::new(),
        Arc::new(prometheus_client::registry::Registry::default()),
        Arc::new(bootstrap),
    );
    tokio::spawn(serve_admin(admin, state));
    until("the initial fetch is done", || client.initial_fetch_done()).await;
    let monitoring = mastd.monitoring.to_string();
    let run = |section: &'static str| {
        let monitoring = monitoring.clone();
        async move {
            mastctl(&[
                "proxy-config",
                section,
                "client.default",
                "--mastd",
                &monitoring,
            ])
            .await
        }
    };
    let clusters = run("cluster").await;
    assert!(
        clusters.contains("alpha.default.svc.cluster.local"),
        "{clusters}"
    );
    let endpoints = run("endpoint").await;
    assert!(endpoints.contains("127.0.0.1:18080"), "{endpoints}");
    assert!(endpoints.contains("HEALTHY"), "{endpoints}");
    let listeners = run("listener").await;
    assert!(listeners.lines().count() > 1, "{listeners}");
    let routes = run("route").await;
    assert!(
        routes.contains("alpha.default.svc.cluster.local"),
        "{routes}"
    );
    let all = run("all").await;
    assert!(all.contains("alpha.default.svc.cluster.local"), "{all}");
    let json = mastctl(&[
        "proxy-config",
        "bootstrap",
        "--admin",
        &admin.to_string(),
        "-o",
        "json",
    ])
    .await;
    assert!(json.contains("client.default"), "{json}");
    stop.send_replace(true);
}
