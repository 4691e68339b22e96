//! [`AgentProcess`]: runs the `mast-agent` binary for a test, in a temporary folder, and
//! waits until it reports Envoy ready through its ports file
//! (`{"admin":N,"outbound":N,"inbound":{"<app port>":N},"envoy_pid":N,"node_id":"…"}`,
//! written each time Envoy becomes ready, so again after a restart).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use serde_json::Value;

use crate::launch::{Launch, PORTS_FILE, Waited, poll_file, titled_tail};
use crate::{ProcessGuard, TempDir};

/// Why the agent could not be started or did not report.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The process could not be started (or its folder made).
    #[error("cannot start {binary}: {source}")]
    Spawn {
        /// The agent binary.
        binary: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The agent exited before reporting.
    #[error("mast-agent exited with {status} before reporting ready; its log:\n{log}")]
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// The tail of its output and of Envoy's log.
        log: String,
    },
    /// Nothing was reported in time.
    #[error("mast-agent did not report ready within {timeout:?}; its log:\n{log}")]
    Timeout {
        /// The time allowed.
        timeout: Duration,
        /// The tail of its output and of Envoy's log.
        log: String,
    },
}

/// The ports and process a running agent reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPorts {
    /// Envoy's admin port on 127.0.0.1.
    pub admin: u16,
    /// The outbound listener (ports mode), or 15001 (iptables mode).
    pub outbound: u16,
    /// Application port → inbound listener port (ports mode).
    pub inbound: BTreeMap<u16, u16>,
    /// The running Envoy's process id.
    pub envoy_pid: u32,
    /// The node id Envoy presents to the control plane.
    pub node_id: String,
}

impl AgentPorts {
    /// Parses the agent's ports file.
    pub fn parse(text: &str) -> Option<Self> {
        let v: Value = serde_json::from_str(text).ok()?;
        let port = |key: &str| v.get(key)?.as_u64().and_then(|n| u16::try_from(n).ok());
        let inbound = v
            .get("inbound")?
            .as_object()?
            .iter()
            .map(|(app, listen)| Some((app.parse().ok()?, u16::try_from(listen.as_u64()?).ok()?)))
            .collect::<Option<_>>()?;
        Some(Self {
            admin: port("admin")?,
            outbound: port("outbound")?,
            inbound,
            envoy_pid: v
                .get("envoy_pid")?
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())?,
            node_id: v.get("node_id")?.as_str()?.to_owned(),
        })
    }
}

/// A running `mast-agent`, killed with its Envoy when dropped.
#[derive(Debug)]
pub struct AgentProcess {
    guard: ProcessGuard,
    dir: TempDir,
    ports: AgentPorts,
}

impl AgentProcess {
    /// Starts `binary` with `args` plus `--work-dir` and `--ports-file` in a fresh temporary
    /// folder (output to `agent.log` there), and waits up to `timeout` for it to report ready.
    pub fn start(binary: &Path, args: &[&str], timeout: Duration) -> Result<Self, AgentError> {
        let launch = Launch {
            binary,
            args,
            dir_prefix: "mast-agent-test",
            log: "agent.log",
            work_dir: true,
            env: &[],
        };
        let (guard, dir) = launch.spawn().map_err(|source| AgentError::Spawn {
            binary: binary.to_path_buf(),
            source,
        })?;
        let mut agent = Self {
            guard,
            dir,
            ports: placeholder(),
        };
        agent.ports = agent.wait_ports(|_| true, timeout)?;
        Ok(agent)
    }

    /// The ports reported when the agent last became ready (see [`AgentProcess::wait_ports`]).
    pub fn ports(&self) -> &AgentPorts {
        &self.ports
    }

    /// Envoy's admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.admin))
    }

    /// The outbound listener's address (the HTTP proxy in ports mode).
    pub fn outbound_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.outbound))
    }

    /// The inbound listener for application port `app` (ports mode).
    pub fn inbound_addr(&self, app: u16) -> Option<SocketAddr> {
        self.ports
            .inbound
            .get(&app)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
    }

    /// The folder holding `work/` (bootstrap, Envoy's log), `ports.json` and `agent.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The agent process.
    pub fn guard_mut(&mut self) -> &mut ProcessGuard {
        &mut self.guard
    }

    /// Re-reads the ports file until `accept` likes what it says (for example a new
    /// `envoy_pid` after a restart), up to `timeout`; updates [`AgentProcess::ports`].
    pub fn wait_ports(
        &mut self,
        accept: impl Fn(&AgentPorts) -> bool,
        timeout: Duration,
    ) -> Result<AgentPorts, AgentError> {
        let file = self.dir.join(PORTS_FILE);
        let read = |text: &str| AgentPorts::parse(text).filter(|p| accept(p));
        match poll_file(&mut self.guard, &file, read, timeout) {
            Waited::Ready(ports) => {
                self.ports = ports.clone();
                Ok(ports)
            }
            Waited::Exited(status) => Err(AgentError::Exited {
                status,
                log: self.log_tail(),
            }),
            Waited::TimedOut => Err(AgentError::Timeout {
                timeout,
                log: self.log_tail(),
            }),
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the agent to exit.
    pub fn stop(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let _ = self.guard.signal("TERM");
        self.guard.wait_timeout(timeout).ok().flatten()
    }

    /// The last lines of the agent's output and of Envoy's log, for failure messages.
    pub fn log_tail(&self) -> String {
        format!(
            "{}\n{}",
            titled_tail(self.dir.join("agent.log"), 30),
            titled_tail(self.dir.join("work/envoy.log"), 30)
        )
    }

    /// Keeps the temporary folder after the test (to read logs); returns its path.
    pub fn keep_dir(&mut self) -> PathBuf {
        self.dir.keep()
    }
}

fn placeholder() -> AgentPorts {
    AgentPorts {
        admin: 0,
        outbound: 0,
        inbound: BTreeMap::new(),
        envoy_pid: 0,
        node_id: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_ports_file() {
        let text = r#"{"admin":15000,"outbound":15101,"inbound":{"9080":15106},"envoy_pid":42,"node_id":"n","capture_mode":"ports"}"#;
        let p = AgentPorts::parse(text).unwrap();
        assert_eq!(p.admin, 15000);
        assert_eq!(p.inbound, BTreeMap::from([(9080, 15106)]));
        assert_eq!(p.envoy_pid, 42);
        assert!(AgentPorts::parse(r#"{"admin":1}"#).is_none());
    }
}
