//! [`Mesh`]: one mastd serving a folder of YAML, and one client sidecar in ports mode
//! (workload `client` in namespace `default`) that the test sends its requests through, as a
//! local program with `HTTP_PROXY` set would. The sidecar is either kind of [`Proxy`]: real
//! Envoy bootstrapped by `mast-agent`, or `mast-proxy`.
//!
//! Starting a mesh waits until the sidecar is SYNCED for CDS, EDS, LDS and RDS in mastd's
//! `/debug/syncz` and the proxy's admin `/ready` answers. Config changes are written atomically (temp
//! file + rename) and [`Mesh::wait_synced`] waits until the proxy has ACKed the snapshot that
//! contains them. Everything is killed when the mesh is dropped, and also when the test
//! process ends (see [`crate::reaper`]), so a mesh shared by the tests of a file through
//! [`shared`] cannot outlive them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mast_test_support::{
    HttpRequest, HttpResponse, ProxyOptions, ProxyProcess, TempDir, cargo_bin, http_get_direct,
};
use parking_lot::Mutex;

use crate::mastd::{Mastd, MastdConfig, Monitoring};
use crate::reaper::Reaper;
use crate::sides::{PerProxy, Proxy};
use crate::sync::ProxySync;
use crate::traffic::{self, RequestFactory, Tally};

/// The client workload's name and namespace.
pub const CLIENT: (&str, &str) = ("client", "default");

/// The client workload's service account: its identity is
/// `spiffe://cluster.local/ns/default/sa/client`.
pub const CLIENT_SERVICE_ACCOUNT: &str = "client";

/// How long a config change may take to reach the proxy (file event, snapshot, debounce,
/// push, ACK), before a wait gives up.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(15);

/// How long the sidecar may take to start and sync.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long after a new snapshot appears with nothing pushed at its version that the change
/// is taken as not touching the proxy (mastd's debounce waits at most 1 s).
pub const NO_PUSH_GRACE: Duration = Duration::from_millis(1_500);

/// How many requests [`Mesh::tally`] keeps in flight.
pub const CONCURRENCY: usize = 8;

/// The meshes shared by the tests of one file, one per proxy kind (see [`shared`]).
pub type SharedMesh = PerProxy<Result<Mesh, String>>;

/// The `proxy` mesh in `meshes`, started (with only [`baseline`]) by the first test that
/// asks. Scenarios sharing it write files and hosts of their own, so they can run in
/// parallel.
///
/// # Panics
/// When the mesh cannot start: every test sharing it fails with the same reason.
pub async fn shared(meshes: &'static SharedMesh, proxy: Proxy) -> &'static Mesh {
    let started = meshes
        .get_or_init(proxy, || async {
            let baseline = baseline();
            Mesh::start(proxy, &[("baseline.yaml", &baseline)])
                .await
                .map_err(|e| format!("{e:#}"))
        })
        .await;
    match started {
        Ok(mesh) => mesh,
        Err(e) => panic!("the shared {proxy} mesh did not start: {e}"),
    }
}

/// A service that is never called, so that a mesh always has one cluster with endpoints:
/// its sidecar is then SYNCED for all four types (EDS included) from the start.
pub fn baseline() -> String {
    crate::yaml::docs(&[
        crate::yaml::service("e2e-baseline", &[("http", 80)]),
        crate::yaml::workload("e2e-baseline", "v0", &[("http", 9)]),
    ])
}

/// A running mesh: mastd plus the client's sidecar.
#[derive(Debug)]
pub struct Mesh {
    mastd: Mutex<Option<Mastd>>,
    kind: Proxy,
    sidecar: Mutex<ProxyProcess>,
    _sidecar_reaper: Reaper,
    mastd_config: MastdConfig,
    monitoring: Monitoring,
    outbound: SocketAddr,
    admin: SocketAddr,
    node_id: String,
    mastctl: Option<PathBuf>,
    /// Serialises apply (write + wait) so that a wait sees its own change.
    apply_lock: tokio::sync::Mutex<()>,
    /// Snapshot version before the first write not yet waited for, and when it was written.
    pending: Mutex<Option<(u64, Instant)>>,
    /// Other sidecars' node ids ([`crate::workloads::Workload`]): waits cover them too.
    extra_nodes: Arc<Mutex<Vec<String>>>,
    root: TempDir,
}

impl Mesh {
    /// Writes `files` (name, YAML) into a new config folder, starts mastd on free ports and
    /// the client sidecar of kind `proxy`, and waits until the sidecar runs mastd's current
    /// configuration.
    pub async fn start(proxy: Proxy, files: &[(&str, &str)]) -> anyhow::Result<Self> {
        let binaries = Binaries::find(proxy)?;
        let root = TempDir::new("mast-e2e")?;
        let config_dir = root.join("config");
        std::fs::create_dir_all(&config_dir)?;
        for (name, yaml) in files {
            write_atomic(&config_dir.join(name), yaml)?;
        }
        let mut mastd_config = MastdConfig::new(&config_dir)?;
        mastd_config.log = root.join("mastd.log");
        let mastd = Mastd::start(&mastd_config).await?;
        let mut client = binaries.sidecar;
        client.ca_token_file = Some(mastd.token_file(CLIENT.1, CLIENT_SERVICE_ACCOUNT)?);
        let mut sidecar = start_sidecar(client, mastd_config.xds_addr).await?;
        // At exit, kill the sidecar and remove its folder and ours, even if never dropped.
        let sidecar_reaper = Reaper::watch_and_remove(
            sidecar.guard_mut().pid(),
            &[sidecar.dir().to_path_buf(), root.path().to_path_buf()],
        )?;
        let ports = sidecar.ports().clone();
        let mesh = Self {
            mastd: Mutex::new(Some(mastd)),
            kind: proxy,
            _sidecar_reaper: sidecar_reaper,
            monitoring: Monitoring {
                addr: mastd_config.monitoring_addr,
            },
            mastd_config,
            outbound: SocketAddr::from(([127, 0, 0, 1], ports.outbound)),
            admin: SocketAddr::from(([127, 0, 0, 1], ports.admin)),
            node_id: ports.node_id,
            sidecar: Mutex::new(sidecar),
            mastctl: binaries.mastctl,
            apply_lock: tokio::sync::Mutex::new(()),
            pending: Mutex::new(None),
            extra_nodes: Arc::default(),
            root,
        };
        if let Err(e) = mesh.wait_current(START_TIMEOUT).await {
            bail!("{e:#}\n{}", mesh.proxy_log());
        }
        mesh.wait_proxy_ready(Duration::from_secs(10)).await?;
        Ok(mesh)
    }

    /// Which proxy the sidecar runs.
    pub fn proxy(&self) -> Proxy {
        self.kind
    }

    /// The sidecar's outbound listener: an HTTP proxy for absolute-form requests.
    pub fn outbound(&self) -> SocketAddr {
        self.outbound
    }

    /// The proxy's admin address.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// The sidecar's node id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// mastd's monitoring API.
    pub fn monitoring(&self) -> Monitoring {
        self.monitoring
    }

    /// The watched config folder.
    pub fn config_dir(&self) -> &Path {
        &self.mastd_config.config_dir
    }

    /// The `mastctl` binary, when built.
    pub fn mastctl(&self) -> Option<&Path> {
        self.mastctl.as_deref()
    }

    /// The mesh's temporary folder (config, mastd's log).
    pub fn dir(&self) -> &Path {
        self.root.path()
    }

    /// mastd's xDS (and CA) address.
    pub fn xds_addr(&self) -> SocketAddr {
        self.mastd_config.xds_addr
    }

    /// A CA token file for service account `sa` of namespace `ns`.
    pub fn token_file(&self, ns: &str, sa: &str) -> anyhow::Result<PathBuf> {
        let mastd = self.mastd.lock();
        let mastd = mastd.as_ref().context("mastd is not running")?;
        mastd.token_file(ns, sa)
    }

    /// Makes [`Mesh::wait_synced`] and [`Mesh::apply`] also wait for sidecar `node_id`, until
    /// the returned guard is dropped.
    pub fn track_node(&self, node_id: &str) -> NodeTracking {
        self.extra_nodes.lock().push(node_id.to_owned());
        NodeTracking {
            nodes: Arc::clone(&self.extra_nodes),
            node_id: node_id.to_owned(),
        }
    }

    /// Writes `yaml` as config file `file` (atomically) without waiting for it to apply; see
    /// [`Mesh::wait_synced`].
    pub async fn write(&self, file: &str, yaml: &str) -> anyhow::Result<()> {
        let before = self.monitoring.snapshot_version().await?;
        self.pending.lock().get_or_insert((before, Instant::now()));
        write_atomic(&self.config_dir().join(file), yaml)
    }

    /// Deletes config file `file` without waiting; see [`Mesh::wait_synced`].
    pub async fn remove(&self, file: &str) -> anyhow::Result<()> {
        let before = self.monitoring.snapshot_version().await?;
        self.pending.lock().get_or_insert((before, Instant::now()));
        std::fs::remove_file(self.config_dir().join(file))
            .with_context(|| format!("removing config file {file}"))
    }

    /// Waits until mastd has built a snapshot containing the writes made since the last wait
    /// and the sidecar has ACKed it (all four types SYNCED at that version or newer). Returns
    /// the time from the first of those writes.
    pub async fn wait_synced(&self) -> anyhow::Result<Duration> {
        let Some((before, written)) = self.pending.lock().take() else {
            self.wait_current(SYNC_TIMEOUT).await?;
            return Ok(Duration::ZERO);
        };
        self.wait_snapshot_after(before, SYNC_TIMEOUT).await?;
        self.wait_current(SYNC_TIMEOUT).await?;
        let extra = self.extra_nodes.lock().clone();
        for node in extra {
            self.wait_node(&node, SYNC_TIMEOUT, true).await?;
        }
        Ok(written.elapsed())
    }

    /// Writes `file` and waits until the sidecar runs it; concurrent applies (tests sharing a
    /// mesh) take turns. Writing a file's current content again does nothing.
    pub async fn apply(&self, file: &str, yaml: &str) -> anyhow::Result<()> {
        let _turn = self.apply_lock.lock().await;
        let path = self.config_dir().join(file);
        if std::fs::read_to_string(&path).is_ok_and(|current| current == yaml) {
            return Ok(());
        }
        self.write(file, yaml).await?;
        self.wait_synced()
            .await
            .with_context(|| format!("applying {file}"))?;
        Ok(())
    }

    /// Waits until mastd serves a snapshot newer than `before`.
    async fn wait_snapshot_after(&self, before: u64, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.monitoring.snapshot_version().await?;
            if now > before {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "mastd still serves snapshot {now} (not newer than {before}) after {timeout:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until the sidecar runs mastd's current snapshot: nothing in flight and the
    /// snapshot's version ACKed (seen on two polls in a row, so a push of several types is
    /// fully ACKed), or nothing sent at that version [`NO_PUSH_GRACE`] after it appeared
    /// (the change did not touch this proxy: mastd pushes only what changed).
    pub async fn wait_current(&self, timeout: Duration) -> anyhow::Result<ProxySync> {
        self.wait_node_current(&self.node_id, timeout).await
    }

    /// [`Mesh::wait_current`] for another sidecar of this mesh.
    pub async fn wait_node_current(
        &self,
        node_id: &str,
        timeout: Duration,
    ) -> anyhow::Result<ProxySync> {
        self.wait_node(node_id, timeout, false)
            .await?
            .with_context(|| format!("{node_id} is no longer part of the mesh"))
    }

    /// Waits for `node_id` as [`Mesh::wait_current`] does; with `tracked`, stops (with
    /// `None`) once the node is no longer tracked (its sidecar was stopped meanwhile).
    async fn wait_node(
        &self,
        node_id: &str,
        timeout: Duration,
        tracked: bool,
    ) -> anyhow::Result<Option<ProxySync>> {
        let deadline = Instant::now() + timeout;
        let (mut streak, mut last, mut target) = (0, None, (0, Instant::now()));
        loop {
            let version = self.monitoring.snapshot_version().await.unwrap_or(0);
            if version != target.0 {
                target = (version, Instant::now());
            }
            let sync = self.monitoring.proxy_sync(node_id).await.ok().flatten();
            if let Some(s) = &sync {
                streak = if s.synced_at(version) { streak + 1 } else { 0 };
                let unpushed = s.newest_sent().is_none_or(|v| v < version);
                let quiet = target.1.elapsed() >= NO_PUSH_GRACE;
                if streak >= 2 || (s.settled() && unpushed && quiet) {
                    return Ok(Some(s.clone()));
                }
            }
            last = sync.map(|s| s.summary()).or(last);
            if tracked && !self.extra_nodes.lock().iter().any(|n| n == node_id) {
                return Ok(None);
            }
            if Instant::now() >= deadline {
                bail!(
                    "proxy {} did not sync snapshot {} within {timeout:?}; last seen: {}",
                    node_id,
                    target.0,
                    last.unwrap_or_else(|| "not connected".into())
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the proxy's admin `/ready` answers 200 (LIVE).
    pub async fn wait_proxy_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let admin = self.admin;
        let ready = mast_test_support::wait_for_async(
            || async move {
                http_get_direct(admin, "/ready", &[])
                    .await
                    .is_ok_and(|r| r.status == 200)
            },
            timeout,
        )
        .await;
        if !ready {
            bail!(
                "{}'s /ready did not answer 200 within {timeout:?}\n{}",
                self.kind,
                self.proxy_log()
            );
        }
        Ok(())
    }

    /// Sends `request` (absolute URL) through the sidecar.
    pub async fn send(&self, request: HttpRequest) -> anyhow::Result<HttpResponse> {
        Ok(request.via_proxy(self.outbound).await?)
    }

    /// GETs `url` (absolute: `http://host[:port]/path`) through the sidecar with `headers`.
    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> anyhow::Result<HttpResponse> {
        self.send(HttpRequest::get(url).headers(headers)).await
    }

    /// Sends `count` requests built by `make`, [`CONCURRENCY`] at a time, and counts what came
    /// back.
    pub async fn tally(
        &self,
        count: usize,
        make: impl Fn(usize) -> HttpRequest + Send + Sync + 'static,
    ) -> Tally {
        let make: RequestFactory = Arc::new(make);
        traffic::run(self.outbound, make, count, CONCURRENCY).await
    }

    /// GETs `url` `count` times (with `headers`) and counts what came back.
    pub async fn tally_get(&self, url: &str, headers: &[(&str, &str)], count: usize) -> Tally {
        let url = url.to_owned();
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.tally(count, move |_| {
            headers
                .iter()
                .fold(HttpRequest::get(&url), |r, (k, v)| r.header(k, v))
        })
        .await
    }

    /// Kills mastd (SIGKILL), as a crash would; the sidecar keeps running.
    pub fn kill_mastd(&self) {
        if let Some(mastd) = self.mastd.lock().take() {
            mastd.kill();
        }
    }

    /// Starts mastd again on the same addresses and config folder (after
    /// [`Mesh::kill_mastd`]).
    pub async fn restart_mastd(&self) -> anyhow::Result<()> {
        if self.mastd.lock().is_some() {
            bail!("mastd is still running");
        }
        let mastd = Mastd::start(&self.mastd_config).await?;
        *self.mastd.lock() = Some(mastd);
        Ok(())
    }

    /// The last lines of mastd's log.
    pub fn mastd_log(&self, lines: usize) -> String {
        crate::mastd::tail(&self.mastd_config.log, lines)
    }

    /// The last lines of the sidecar's own log, and the proxy's last warnings and errors.
    pub fn proxy_log(&self) -> String {
        let sidecar = self.sidecar.lock();
        format!(
            "{}\n--- {} warnings and errors\n{}",
            sidecar.log_tail(),
            self.kind,
            sidecar.problems(40)
        )
    }

    /// The counter `name` in the proxy's admin `/stats` (Envoy's plain text form,
    /// `cluster.X.upstream_rq_total: 3`), 0 when absent.
    pub async fn proxy_counter(&self, name: &str) -> u64 {
        let path = format!("/stats?filter=^{}$", name.replace('.', "\\."));
        let Ok(r) = http_get_direct(self.admin, &path, &[]).await else {
            return 0;
        };
        let prefix = format!("{name}: ");
        r.text()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// While alive, a sidecar's node id is among those a [`Mesh`] waits for.
#[derive(Debug)]
pub struct NodeTracking {
    nodes: Arc<Mutex<Vec<String>>>,
    node_id: String,
}

impl Drop for NodeTracking {
    fn drop(&mut self) {
        let mut nodes = self.nodes.lock();
        if let Some(i) = nodes.iter().position(|n| *n == self.node_id) {
            nodes.remove(i);
        }
    }
}

/// The binaries a mesh runs.
struct Binaries {
    mastctl: Option<PathBuf>,
    /// The sidecar, its binaries checked before anything starts.
    sidecar: ProxyOptions,
}

impl Binaries {
    fn find(proxy: Proxy) -> anyhow::Result<Self> {
        let mut sidecar = ProxyOptions::new(proxy, "")
            .label("app", CLIENT.0)
            .workload(CLIENT.0, CLIENT.1)
            .args(["--service-account", CLIENT_SERVICE_ACCOUNT])
            .timeout(START_TIMEOUT);
        if proxy == Proxy::Envoy {
            sidecar = sidecar.args(["--drain-duration", "0s"]);
        }
        let (binary, envoy) = sidecar.resolve_binaries()?;
        sidecar.binary = Some(binary);
        sidecar.envoy = envoy;
        Ok(Self {
            mastctl: cargo_bin("mastctl"),
            sidecar,
        })
    }
}

async fn start_sidecar(mut options: ProxyOptions, xds: SocketAddr) -> anyhow::Result<ProxyProcess> {
    options.xds = xds.to_string();
    let kind = options.kind;
    tokio::task::spawn_blocking(move || ProxyProcess::start(options))
        .await?
        .with_context(|| format!("starting the client sidecar ({kind})"))
}

/// Writes `text` to `path` through a hidden temp file and a rename, so the watcher never
/// reads a half-written file.
pub fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .context("config file without a name")?;
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
