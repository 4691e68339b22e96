//! [`MastdProcess`]: the control plane as a real process for a test (the `mastd` binary built
//! in the cargo target dir), serving a config folder on ports picked free at run time, so a
//! sidecar ([`crate::ProxyProcess`]) can be pointed at it.
//!
//! ```text
//! let config = TempDir::new("my-test")?;
//! std::fs::write(config.join("svc.yaml"), yaml)?;
//! let mastd = MastdProcess::start(&MastdOptions::new(config.path())?).await?;
//! let proxy = ProxyProcess::start(ProxyOptions::new(ProxyKind::Mast, mastd.xds_addr()))?;
//! let syncz = mastd.debug_json("/debug/syncz").await?;
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::launch::titled_tail;
use crate::{ProcessGuard, cargo_bin, free_port, http_get_direct};

/// Why mastd could not be started, did not answer, or answered something else.
#[derive(Debug, thiserror::Error)]
pub enum MastdError {
    /// The binary is not built.
    #[error("mastd is not built: run `cargo build -p mastd` (or `cargo build --workspace --bins`)")]
    NotBuilt,
    /// The process or its log could not be started or opened.
    #[error("cannot start mastd: {0}")]
    Spawn(#[from] std::io::Error),
    /// It exited before answering.
    #[error("mastd exited with {status} before answering; its log:\n{log}")]
    Exited {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The end of its log.
        log: String,
    },
    /// It did not answer in time.
    #[error("mastd did not answer on {addr} within {timeout:?}; its log:\n{log}")]
    Timeout {
        /// The monitoring address.
        addr: SocketAddr,
        /// The time allowed.
        timeout: Duration,
        /// The end of its log.
        log: String,
    },
    /// A monitoring request failed.
    #[error("GET {path} from mastd: {reason}")]
    Monitoring {
        /// The path asked for.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// Where a mastd listens and what it serves.
#[derive(Debug, Clone)]
pub struct MastdOptions {
    /// The `mastd` binary.
    pub binary: PathBuf,
    /// The watched config folder (`--config-dir`).
    pub config_dir: PathBuf,
    /// The xDS address (`--xds-addr`).
    pub xds_addr: SocketAddr,
    /// The monitoring address (`--monitoring-addr`).
    pub monitoring_addr: SocketAddr,
    /// mastd's output goes here (appended, so a restart keeps the first run's log).
    pub log: PathBuf,
    /// More arguments. By default `--dashboard-addr off`: tests that run at the same time do
    /// not compete for the dashboard's port 20001 (nor send spans to one another's
    /// collector); a test of the dashboard or tracing replaces it.
    pub extra_args: Vec<String>,
}

impl MastdOptions {
    /// The built mastd serving `config_dir` on two free ports, logging to `mastd.log` next
    /// to the folder (in its parent).
    pub fn new(config_dir: &Path) -> Result<Self, MastdError> {
        let binary = cargo_bin("mastd").ok_or(MastdError::NotBuilt)?;
        let [xds, monitoring] = free_ports();
        let log = config_dir.parent().unwrap_or(config_dir).join("mastd.log");
        Ok(Self {
            binary,
            config_dir: config_dir.to_path_buf(),
            xds_addr: SocketAddr::from(([127, 0, 0, 1], xds)),
            monitoring_addr: SocketAddr::from(([127, 0, 0, 1], monitoring)),
            log,
            extra_args: vec!["--dashboard-addr".into(), "off".into()],
        })
    }
}

impl MastdOptions {
    /// The CA directory given to mastd (`--ca-dir`): `mastd-ca` next to the config folder
    /// (in its parent), so every test mesh has its own root, kept across restarts.
    pub fn ca_dir(&self) -> PathBuf {
        self.config_dir
            .parent()
            .unwrap_or(&self.config_dir)
            .join("mastd-ca")
    }
}

/// Two distinct ports that were free a moment ago.
fn free_ports() -> [u16; 2] {
    let first = free_port();
    let mut second = free_port();
    for _ in 0..10 {
        if second != first {
            break;
        }
        second = free_port();
    }
    [first, second]
}

/// A running mastd, killed (with its process group) when dropped.
#[derive(Debug)]
pub struct MastdProcess {
    guard: ProcessGuard,
    options: MastdOptions,
}

impl MastdProcess {
    /// How long mastd may take to answer on its monitoring port.
    pub const START_TIMEOUT: Duration = Duration::from_secs(15);

    /// Starts mastd (`MAST_LOG=info`) and waits until its monitoring API answers `/version`.
    pub async fn start(options: &MastdOptions) -> Result<Self, MastdError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&options.log)?;
        let log_err = log.try_clone()?;
        let mut command = Command::new(&options.binary);
        command
            .arg("--config-dir")
            .arg(&options.config_dir)
            .arg("--xds-addr")
            .arg(options.xds_addr.to_string())
            .arg("--monitoring-addr")
            .arg(options.monitoring_addr.to_string())
            .arg("--ca-dir")
            .arg(options.ca_dir())
            .args(&options.extra_args)
            .env("MAST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let guard = ProcessGuard::spawn(&mut command)?;
        let mut mastd = Self {
            guard,
            options: options.clone(),
        };
        mastd.wait_answering().await?;
        Ok(mastd)
    }

    async fn wait_answering(&mut self) -> Result<(), MastdError> {
        let addr = self.options.monitoring_addr;
        let deadline = Instant::now() + Self::START_TIMEOUT;
        loop {
            if let Ok(r) = http_get_direct(addr, "/version", &[]).await
                && r.status == 200
            {
                return Ok(());
            }
            if let Some(status) = self.guard.try_wait()? {
                let log = self.log_tail(40);
                return Err(MastdError::Exited { status, log });
            }
            if Instant::now() >= deadline {
                let (timeout, log) = (Self::START_TIMEOUT, self.log_tail(40));
                return Err(MastdError::Timeout { addr, timeout, log });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The options it was started with.
    pub fn options(&self) -> &MastdOptions {
        &self.options
    }

    /// The xDS address (give it to a sidecar).
    pub fn xds_addr(&self) -> SocketAddr {
        self.options.xds_addr
    }

    /// The CA address (`IstioCertificateService`, served on the xDS port).
    pub fn ca_addr(&self) -> SocketAddr {
        self.options.xds_addr
    }

    /// The CA's trust bundle (`root-cert.pem` in its CA directory).
    pub fn root_cert_pem(&self) -> Result<String, MastdError> {
        Ok(std::fs::read_to_string(
            self.options.ca_dir().join("root-cert.pem"),
        )?)
    }

    /// Writes a CA token for `namespace`/`service_account` (made by `mastd token` with this
    /// mastd's CA directory) to `mastd-tokens/<namespace>/<service_account>.token` next to the
    /// config folder, mode 0600, and returns its path (give it to `--ca-token-file`).
    pub fn token_file(
        &self,
        namespace: &str,
        service_account: &str,
    ) -> Result<PathBuf, MastdError> {
        use std::os::unix::fs::PermissionsExt as _;
        let out = Command::new(&self.options.binary)
            .arg("token")
            .arg("--ca-dir")
            .arg(self.options.ca_dir())
            .args([
                "--namespace",
                namespace,
                "--service-account",
                service_account,
            ])
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            return Err(MastdError::Spawn(std::io::Error::other(format!(
                "mastd token failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))));
        }
        let parent = self
            .options
            .config_dir
            .parent()
            .unwrap_or(&self.options.config_dir);
        let dir = parent.join("mastd-tokens").join(namespace);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{service_account}.token"));
        std::fs::write(&path, &out.stdout)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(path)
    }

    /// The monitoring address (`/debug/syncz`, `/debug/configz`, `/version`).
    pub fn monitoring_addr(&self) -> SocketAddr {
        self.options.monitoring_addr
    }

    /// The process (also its process group).
    pub fn guard_mut(&mut self) -> &mut ProcessGuard {
        &mut self.guard
    }

    /// GETs `path` from the monitoring API and parses the JSON answer (e.g. `/debug/syncz`,
    /// where a proxy's NACKs show).
    pub async fn debug_json(&self, path: &str) -> Result<Value, MastdError> {
        let error = |reason: String| MastdError::Monitoring {
            path: path.to_owned(),
            reason,
        };
        let r = http_get_direct(self.monitoring_addr(), path, &[])
            .await
            .map_err(|e| error(e.to_string()))?;
        if r.status != 200 {
            return Err(error(format!("status {}: {}", r.status, r.text())));
        }
        serde_json::from_slice(&r.body).map_err(|e| error(format!("not JSON: {e}")))
    }

    /// Kills mastd at once (SIGKILL), as a crash would; start it again on the same addresses
    /// with [`MastdProcess::start`] and [`MastdProcess::options`].
    pub fn kill(mut self) {
        self.guard.kill();
    }

    /// The last `lines` lines of its log, under a title naming the file.
    pub fn log_tail(&self, lines: usize) -> String {
        titled_tail(self.options.log.clone(), lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TempDir;

    #[tokio::test]
    async fn serves_a_folder_and_answers_monitoring() {
        let root = TempDir::new("mast-ts-mastd").unwrap();
        let config = root.join("config");
        std::fs::create_dir_all(&config).unwrap();
        let options = match MastdOptions::new(&config) {
            Ok(o) => o,
            Err(MastdError::NotBuilt) => {
                eprintln!("skipped: mastd is not built (cargo build -p mastd)");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        assert_ne!(options.xds_addr, options.monitoring_addr);
        assert_eq!(options.log, root.join("mastd.log"));
        let mastd = MastdProcess::start(&options).await.unwrap();
        let configz = mastd.debug_json("/debug/configz").await.unwrap();
        assert!(configz.get("snapshotVersion").is_some(), "{configz}");
        let missing = mastd.debug_json("/no-such-page").await;
        assert!(matches!(missing, Err(MastdError::Monitoring { .. })));
        mastd.kill();
        assert!(crate::wait_for(
            || std::net::TcpStream::connect(options.monitoring_addr).is_err(),
            Duration::from_secs(5)
        ));
    }
}
