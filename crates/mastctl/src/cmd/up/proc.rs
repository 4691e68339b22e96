//! Child processes of `mastctl up`: each in its own process group (so a stop reaches
//! everything it started and Ctrl-C at the terminal reaches only `mastctl up`), its output
//! copied line by line with a `[name] ` prefix or into a log file, and stopped with SIGTERM
//! then SIGKILL of the whole group.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use rustix::process::{Pid, Signal};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// Where a child's stdout or stderr goes.
pub enum Sink {
    /// Our stdout, each line prefixed.
    Stdout(String),
    /// Our stderr, each line prefixed.
    Stderr(String),
    /// Appended to a file.
    File(std::path::PathBuf),
}

/// A running child, leader of its own process group.
pub struct Proc {
    child: Child,
    /// Its pid (and process group id).
    pub pid: u32,
    /// The tasks copying its output; [`Proc::wait`] lets them finish.
    copies: Vec<tokio::task::JoinHandle<()>>,
}

/// How long [`Proc::wait`] lets the output copies catch up after the process exits (a
/// grandchild may keep the pipe open).
const OUTPUT_DRAIN: Duration = Duration::from_secs(1);

/// Starts `cmd` in a new process group with stdin closed.
pub fn spawn(mut cmd: Command, what: &str, out: Sink, err: Sink) -> anyhow::Result<Proc> {
    cmd.process_group(0).stdin(Stdio::null()).kill_on_drop(true);
    cmd.stdout(stdio_for(&out)?);
    cmd.stderr(stdio_for(&err)?);
    let mut child = cmd.spawn().with_context(|| format!("starting {what}"))?;
    let pid = child.id().context("the child has no pid")?;
    let mut copies = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        copies.push(copy_lines(stdout, out));
    }
    if let Some(stderr) = child.stderr.take() {
        copies.push(copy_lines(stderr, err));
    }
    Ok(Proc { child, pid, copies })
}

fn stdio_for(sink: &Sink) -> anyhow::Result<Stdio> {
    Ok(match sink {
        Sink::File(path) => Stdio::from(open_log(path)?),
        _ => Stdio::piped(),
    })
}

fn open_log(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening the log file {}", path.display()))
}

fn copy_lines(
    from: impl AsyncRead + Unpin + Send + 'static,
    to: Sink,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(from);
        let mut line = Vec::with_capacity(256);
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if line.last() != Some(&b'\n') {
                line.push(b'\n');
            }
            // One write per line, so lines of different programs do not interleave.
            let _ = match &to {
                Sink::Stdout(prefix) => {
                    write_prefixed(&mut std::io::stdout().lock(), prefix, &line)
                }
                Sink::Stderr(prefix) => {
                    write_prefixed(&mut std::io::stderr().lock(), prefix, &line)
                }
                Sink::File(_) => Ok(()),
            };
        }
    })
}

fn write_prefixed(w: &mut impl std::io::Write, prefix: &str, line: &[u8]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(prefix.len() + line.len());
    buf.extend_from_slice(prefix.as_bytes());
    buf.extend_from_slice(line);
    w.write_all(&buf)?;
    w.flush()
}

/// Sends `sig` to the process group `pgid` (a group already gone is fine).
pub fn signal_group(pgid: u32, sig: Signal) {
    if let Some(pid) = i32::try_from(pgid).ok().and_then(Pid::from_raw) {
        let _ = rustix::process::kill_process_group(pid, sig);
    }
}

/// Sends `sig` to process `pid` only.
pub fn signal_one(pid: u32, sig: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

impl Proc {
    /// Waits for the process to exit.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let status = self.child.wait().await;
        // Its last lines are printed before anyone hears that it exited (a job's output
        // must not be cut by the shutdown that follows it).
        for copy in self.copies.drain(..) {
            let _ = tokio::time::timeout(OUTPUT_DRAIN, copy).await;
        }
        status
    }

    /// Stops the process: SIGTERM (to the whole group, or only to the leader when
    /// `leader_only`, which then stops its own children), SIGKILL to the group after
    /// `grace`, and SIGKILL to whatever is left in the group once the leader is gone.
    pub async fn stop(mut self, grace: Duration, leader_only: bool) -> Option<ExitStatus> {
        if leader_only {
            signal_one(self.pid, Signal::TERM);
        } else {
            signal_group(self.pid, Signal::TERM);
        }
        let status = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                signal_group(self.pid, Signal::KILL);
                self.child.wait().await.ok()
            }
        };
        signal_group(self.pid, Signal::KILL);
        status
    }
}

/// An exit status as a shell reports it: the code, or 128 + the signal.
pub fn exit_code(status: &ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// `exited with status 3` / `killed by signal 9`.
pub fn describe(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "exited".into(),
    }
}

/// Prints a line of `mastctl up`'s own on stderr, prefixed `[up] `.
pub fn say(msg: impl std::fmt::Display) {
    let _ = write_prefixed(
        &mut std::io::stderr().lock(),
        "[up] ",
        format!("{msg}\n").as_bytes(),
    );
}
