//! Running Envoy: the command line the agent uses (`--disable-hot-restart`, so several
//! Envoys share a host), the running process (wait, signal, kill), offline validation
//! (`--mode validate`) and reading the end of Envoy's log.
//!
//! Signals other than SIGKILL are sent with the system's `kill` command: the workspace
//! forbids `unsafe`, and std has no safe call for them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

/// Why Envoy could not be started, signalled or validated.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    /// The binary could not be started.
    #[error("cannot start Envoy {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file for Envoy's output could not be opened.
    #[error("cannot open {path}: {source}")]
    Output {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A signal could not be delivered.
    #[error("cannot send SIG{signal} to Envoy (pid {pid}): {detail}")]
    Signal {
        /// The signal name.
        signal: String,
        /// The process.
        pid: u32,
        /// What went wrong.
        detail: String,
    },
    /// `--mode validate` rejected the configuration.
    #[error("Envoy rejected {config}:\n{output}")]
    Invalid {
        /// The configuration file.
        config: PathBuf,
        /// Envoy's output.
        output: String,
    },
}

/// How the agent runs Envoy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvoyCommand {
    /// The Envoy binary.
    pub binary: PathBuf,
    /// The bootstrap file.
    pub config: PathBuf,
    /// Envoy's log (`--log-path`).
    pub log_path: PathBuf,
    /// Where Envoy's stderr goes (appended). Its stdout — the access log, when mastd
    /// configures one on `/dev/stdout` — is the agent's own, as pilot-agent passes Envoy's
    /// output through to the container's.
    pub stdio_path: PathBuf,
    /// Worker threads (`--concurrency`).
    pub concurrency: u16,
    /// Envoy's log level (`-l`).
    pub log_level: String,
    /// How long a graceful drain lasts (`--drain-time-s`, at least 1 s).
    pub drain_time: Duration,
}

impl EnvoyCommand {
    /// The arguments: `--disable-hot-restart --concurrency N -c <config> --log-path <log>
    /// -l <level> --drain-time-s S --drain-strategy immediate`.
    pub fn args(&self) -> Vec<OsString> {
        let drain = self.drain_time.as_secs_f64().ceil().max(1.0).to_string();
        let mut args: Vec<OsString> = ["--disable-hot-restart", "--concurrency"]
            .map(OsString::from)
            .into();
        args.push(self.concurrency.to_string().into());
        args.push("-c".into());
        args.push(self.config.clone().into());
        args.push("--log-path".into());
        args.push(self.log_path.clone().into());
        args.extend(
            [
                "-l",
                &self.log_level,
                "--drain-time-s",
                &drain,
                "--drain-strategy",
                "immediate",
            ]
            .map(OsString::from),
        );
        args
    }

    /// Starts Envoy. It stays in the agent's process group (so whoever kills the agent's
    /// group kills Envoy too) and is killed if the agent drops it.
    pub fn spawn(&self) -> Result<EnvoyProcess, EnvoyError> {
        let output_error = |source| EnvoyError::Output {
            path: self.stdio_path.clone(),
            source,
        };
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stdio_path)
            .map_err(output_error)?;
        let spawn_error = |source| EnvoyError::Spawn {
            binary: self.binary.clone(),
            source,
        };
        let child = tokio::process::Command::new(&self.binary)
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn_error)?;
        let pid = child
            .id()
            .ok_or_else(|| spawn_error(std::io::Error::other("exited at once")))?;
        Ok(EnvoyProcess { child, pid })
    }
}

/// A running Envoy.
#[derive(Debug)]
pub struct EnvoyProcess {
    child: tokio::process::Child,
    pid: u32,
}

impl EnvoyProcess {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for it to exit (cancel-safe).
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Sends signal `name` (`TERM`, `INT`, …) with the `kill` command.
    pub async fn signal(&self, name: &str) -> Result<(), EnvoyError> {
        let failed = |detail: String| EnvoyError::Signal {
            signal: name.to_owned(),
            pid: self.pid,
            detail,
        };
        let status = tokio::process::Command::new("kill")
            .args(["-s", name, &self.pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if status.success() {
            Ok(())
        } else {
            Err(failed(status.to_string()))
        }
    }

    /// Kills it (SIGKILL) and reaps it.
    pub async fn kill(&mut self) -> std::io::Result<()> {
        self.child.kill().await
    }
}

/// Checks `config` offline with `envoy --mode validate`.
pub fn validate(binary: &Path, config: &Path) -> Result<(), EnvoyError> {
    let output = std::process::Command::new(binary)
        .args([
            "--mode",
            "validate",
            "--disable-hot-restart",
            "-l",
            "warning",
            "-c",
        ])
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| EnvoyError::Spawn {
            binary: binary.to_path_buf(),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Err(EnvoyError::Invalid {
        config: config.to_path_buf(),
        output: text,
    })
}

/// The last `lines` lines of a log file (empty when it cannot be read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line() {
        let cmd = EnvoyCommand {
            binary: "envoy".into(),
            config: "/w/bootstrap.yaml".into(),
            log_path: "/w/envoy.log".into(),
            stdio_path: "/w/envoy.stdio.log".into(),
            concurrency: 2,
            log_level: "info".into(),
            drain_time: Duration::from_millis(200),
        };
        let args: Vec<String> = cmd
            .args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args.join(" "),
            "--disable-hot-restart --concurrency 2 -c /w/bootstrap.yaml --log-path /w/envoy.log -l info \
             --drain-time-s 1 --drain-strategy immediate"
        );
    }
}
