//! Starting a sidecar binary for a test and waiting for the ports file it writes when ready:
//! the part [`crate::AgentProcess`] and [`crate::ProxyProcess`] share.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{ProcessGuard, TempDir};

/// How to start a sidecar: the binary, its flags, and where its output goes.
pub(crate) struct Launch<'a> {
    /// The binary.
    pub binary: &'a Path,
    /// Its flags (`--ports-file` is added).
    pub args: &'a [&'a str],
    /// Prefix of the temporary folder's name.
    pub dir_prefix: &'a str,
    /// The file (in the folder) that receives stdout and stderr.
    pub log: &'a str,
    /// Whether to add `--work-dir <folder>/work` (mast-agent).
    pub work_dir: bool,
    /// Extra environment variables.
    pub env: &'a [(&'a str, &'a str)],
}

impl Launch<'_> {
    /// Spawns the binary (as a process group of its own) in a fresh temporary folder.
    pub fn spawn(&self) -> std::io::Result<(ProcessGuard, TempDir)> {
        let dir = TempDir::new(self.dir_prefix)?;
        let log = std::fs::File::create(dir.join(self.log))?;
        let log_err = log.try_clone()?;
        let mut command = Command::new(self.binary);
        command.args(self.args);
        if self.work_dir {
            command.arg("--work-dir").arg(dir.join("work"));
        }
        command
            .arg("--ports-file")
            .arg(dir.join(PORTS_FILE))
            .envs(self.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let guard = ProcessGuard::spawn(&mut command)?;
        Ok((guard, dir))
    }
}

/// The ports file's name inside the folder.
pub(crate) const PORTS_FILE: &str = "ports.json";

/// How waiting for a ports file ended.
pub(crate) enum Waited<T> {
    /// The file said something `read` accepted.
    Ready(T),
    /// The process exited first.
    Exited(ExitStatus),
    /// Neither, within the time allowed.
    TimedOut,
}

/// Re-reads `file` every 25 ms until `read` accepts its text, the process exits, or `timeout`
/// passes.
pub(crate) fn poll_file<T>(
    guard: &mut ProcessGuard,
    file: &Path,
    read: impl Fn(&str) -> Option<T>,
    timeout: Duration,
) -> Waited<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = std::fs::read_to_string(file).ok().and_then(|t| read(&t)) {
            return Waited::Ready(found);
        }
        if let Ok(Some(status)) = guard.try_wait() {
            return Waited::Exited(status);
        }
        if Instant::now() >= deadline {
            return Waited::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The last `lines` lines of the file at `path`, under a `--- <path>` title.
pub(crate) fn titled_tail(path: PathBuf, lines: usize) -> String {
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    format!("--- {}\n{}", path.display(), all[start..].join("\n"))
}
