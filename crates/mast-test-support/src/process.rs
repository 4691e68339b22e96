//! [`ProcessGuard`]: a child process started in a process group of its own, killed with
//! everything it started (for `mast-agent`, its Envoy) when the guard is dropped, so a
//! failing test leaves nothing running.
//!
//! Signals are sent with the system's `kill` command: the workspace forbids `unsafe`, and
//! std has no safe way to send a signal other than SIGKILL.

use std::io;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Owns a child process and its process group; kills the whole group on drop.
#[derive(Debug)]
pub struct ProcessGuard {
    child: Child,
    pid: u32,
}

impl ProcessGuard {
    /// Spawns `command` as the leader of a new process group.
    pub fn spawn(command: &mut Command) -> io::Result<Self> {
        use std::os::unix::process::CommandExt;
        let child = command.process_group(0).spawn()?;
        let pid = child.id();
        Ok(Self { child, pid })
    }

    /// The child's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal` (a name such as `"TERM"`, `"INT"`, `"KILL"`) to the child only.
    pub fn signal(&self, signal: &str) -> io::Result<()> {
        send_signal(signal, &self.pid.to_string())
    }

    /// Sends `signal` to every process in the child's group.
    pub fn signal_group(&self, signal: &str) -> io::Result<()> {
        send_signal(signal, &format!("-{}", self.pid))
    }

    /// The child's exit status if it has exited.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Waits up to `timeout` for the child to exit (polling every 20 ms).
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The child, for its pipes.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Kills the whole group now (SIGKILL) and reaps the child.
    pub fn kill(&mut self) {
        let _ = self.signal_group("KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `signal` to `target` (a pid, or `-<pgid>` for a group) with the `kill` command.
pub fn send_signal(signal: &str, target: &str) -> io::Result<()> {
    let status = Command::new("kill")
        .args(["-s", signal, "--", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "kill -s {signal} {target} failed: {status}"
        )))
    }
}

/// Whether a process with this id is running (a zombie awaiting its parent counts as gone).
pub fn process_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may contain spaces.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_kills_the_group_including_grandchildren() {
        // A shell that starts a long sleep in the background, prints its pid and waits.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 30 & echo $!; wait"])
            .stdout(Stdio::piped());
        let mut guard = ProcessGuard::spawn(&mut cmd).unwrap();
        let mut out = guard.child_mut().stdout.take().unwrap();
        let mut line = String::new();
        use std::io::Read;
        let mut byte = [0u8; 1];
        while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
            line.push(byte[0] as char);
        }
        let grandchild: u32 = line.trim().parse().unwrap();
        assert!(process_alive(grandchild));
        drop(guard);
        // The grandchild was re-parented and reaped by init once killed.
        assert!(crate::wait_for(
            || !process_alive(grandchild),
            Duration::from_secs(5)
        ));
    }

    #[test]
    fn signal_and_wait() {
        let mut guard = ProcessGuard::spawn(Command::new("sleep").arg("30")).unwrap();
        assert!(guard.try_wait().unwrap().is_none());
        guard.signal("TERM").unwrap();
        let status = guard.wait_timeout(Duration::from_secs(5)).unwrap().unwrap();
        assert!(!status.success());
    }
}
