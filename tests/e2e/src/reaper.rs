//! [`Reaper`]: makes sure a process group started by a test dies with the test process, even
//! when nothing is dropped (a mesh shared by the tests of a file lives in a `static`, and
//! statics are never dropped; a test process may also be killed by its runner).
//!
//! A reaper is a tiny `sh` in a process group of its own that blocks reading a pipe whose
//! only writer is this test process. When the writer goes away (the reaper is dropped, or the
//! test process exits for whatever reason and the kernel closes its descriptors), `read`
//! returns and the shell sends SIGKILL to the watched group.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Kills process group `pgid` when dropped or when this test process ends.
#[derive(Debug)]
pub struct Reaper {
    child: Child,
    pgid: u32,
}

impl Reaper {
    /// Starts a reaper for the process group `pgid` (a [`mast_test_support::ProcessGuard`]'s
    /// pid, which is also its group id).
    pub fn watch(pgid: u32) -> io::Result<Self> {
        Self::watch_and_remove(pgid, &[])
    }

    /// Like [`Reaper::watch`], and then removes the folders `dirs` (temporary folders the
    /// test made, which a never-dropped owner would leave behind).
    pub fn watch_and_remove(pgid: u32, dirs: &[PathBuf]) -> io::Result<Self> {
        let script = r#"read _ignored; kill -s KILL -- "-$1" 2>/dev/null; shift; [ "$#" -gt 0 ] && rm -rf -- "$@"; exit 0"#;
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("mast-e2e-reaper")
            .arg(pgid.to_string())
            .args(dirs)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        Ok(Self { child, pgid })
    }

    /// The watched process group.
    pub fn pgid(&self) -> u32 {
        self.pgid
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        // Closing the pipe wakes the shell, which kills the group (usually already dead:
        // its guard went first) and exits; reap it so it leaves no zombie.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mast_test_support::ProcessGuard;
    use mast_test_support::process::process_alive;
    use std::time::Duration;

    #[test]
    fn dropping_the_reaper_kills_the_group() {
        let mut guard = ProcessGuard::spawn(Command::new("sleep").arg("30")).unwrap();
        let pid = guard.pid();
        let reaper = Reaper::watch(pid).unwrap();
        assert_eq!(reaper.pgid(), pid);
        assert!(process_alive(pid));
        drop(reaper);
        let exited = guard.wait_timeout(Duration::from_secs(5)).unwrap();
        assert!(exited.is_some(), "the reaper did not kill the group");
    }

    #[test]
    fn the_reaper_removes_folders() {
        let guard = ProcessGuard::spawn(Command::new("sleep").arg("30")).unwrap();
        let mut dir = mast_test_support::TempDir::new("mast-e2e-reaper").unwrap();
        let path = dir.keep();
        std::fs::write(path.join("f"), "x").unwrap();
        drop(Reaper::watch_and_remove(guard.pid(), std::slice::from_ref(&path)).unwrap());
        assert!(!path.exists());
    }
}
