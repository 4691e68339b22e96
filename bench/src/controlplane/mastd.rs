//! The mastd under test: the real release binary, started on given ports with the generated
//! folder, stopped with SIGTERM (SIGKILL after a grace period), and measured through
//! `/proc/<pid>` (resident memory, its peak, CPU time) and its monitoring endpoint.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use mast_test_support::{ClientError, HttpRequest, HttpResponse, ProcessGuard, workspace_root};

/// How long a request to mastd's monitoring endpoint may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(3);

/// Where `cargo build --release -p mastd` puts the binary.
pub fn release_binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from);
    target.join("release").join(name)
}

/// Memory and CPU of a process, from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStats {
    /// Resident set size (VmRSS), KiB.
    pub rss_kb: u64,
    /// Peak resident set size so far (VmHWM), KiB.
    pub hwm_kb: u64,
    /// User + system CPU time so far.
    pub cpu: Duration,
}

/// Reads `/proc/<pid>/status` and `/proc/<pid>/stat`; `ticks` is the clock-tick rate.
pub fn proc_stats(pid: u32, ticks: u64) -> ProcStats {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is the 3rd field overall,
    // utime and stime the 14th and 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let jiffies = fields.get(10).copied().unwrap_or(0) + fields.get(11).copied().unwrap_or(0);
    ProcStats {
        rss_kb: field("VmRSS:"),
        hwm_kb: field("VmHWM:"),
        cpu: Duration::from_millis(jiffies * 1000 / ticks.max(1)),
    }
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`, 100 if that fails).
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100)
}

/// A running mastd.
pub struct Mastd {
    guard: ProcessGuard,
    /// Its xDS address.
    pub xds: SocketAddr,
    /// Its monitoring address.
    pub monitoring: SocketAddr,
    /// When it was spawned.
    pub spawned: Instant,
}

impl Mastd {
    /// Spawns `binary` serving `config_dir`, logging (warnings and up) to `log`.
    pub fn spawn(
        binary: &Path,
        config_dir: &Path,
        xds: SocketAddr,
        monitoring: SocketAddr,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut command = Command::new(binary);
        command
            .arg("--config-dir")
            .arg(config_dir)
            .arg("--xds-addr")
            .arg(xds.to_string())
            .arg("--monitoring-addr")
            .arg(monitoring.to_string())
            .env(
                "MAST_LOG",
                std::env::var("MAST_BENCH_MASTD_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let guard = ProcessGuard::spawn(&mut command)
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self {
            guard,
            xds,
            monitoring,
            spawned: Instant::now(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Waits until the xDS port accepts connections; returns when it first did.
    pub async fn wait_listening(&mut self, timeout: Duration) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if tokio::net::TcpStream::connect(self.xds).await.is_ok() {
                return Ok(Instant::now());
            }
            if let Ok(Some(status)) = self.guard.try_wait() {
                bail!("mastd exited with {status} before listening");
            }
            if Instant::now() >= deadline {
                bail!("mastd did not listen on {} within {timeout:?}", self.xds);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until the served snapshot holds `services` services (the `mast_services`
    /// gauge on `/metrics`); returns when it first did.
    pub async fn wait_services(
        &self,
        services: usize,
        timeout: Duration,
    ) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + timeout;
        let mut seen = None;
        loop {
            seen = self.metric("mast_services").await.or(seen);
            if seen == Some(services as f64) {
                return Ok(Instant::now());
            }
            if Instant::now() >= deadline {
                bail!(
                    "mastd's snapshot did not reach {services} services within {timeout:?} (last seen: {seen:?})"
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A gauge or counter without labels from `/metrics`.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let body = self.get("/metrics").await.ok()?.text();
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }

    /// GET a monitoring path and parse it as JSON.
    pub async fn json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let response = self
            .get(path)
            .await
            .with_context(|| format!("GET {path}"))?;
        serde_json::from_slice(&response.body).with_context(|| format!("GET {path}: not JSON"))
    }

    /// GET a monitoring path, giving up after [`HTTP_TIMEOUT`] (an overloaded mastd may not
    /// answer in time).
    async fn get(&self, path: &str) -> Result<HttpResponse, ClientError> {
        HttpRequest::get(path)
            .timeout(HTTP_TIMEOUT)
            .direct(self.monitoring)
            .await
    }

    /// SIGTERM, then SIGKILL after `grace`; returns how long it took to end and whether it
    /// exited by itself.
    pub fn stop(&mut self, grace: Duration) -> (Duration, bool) {
        let start = Instant::now();
        let _ = self.guard.signal("TERM");
        let exited = matches!(self.guard.wait_timeout(grace), Ok(Some(_)));
        if !exited {
            self.guard.kill();
        }
        (start.elapsed(), exited)
    }
}
