//! What Linux's `/proc` says about a local process, for tests that watch a sidecar from the
//! outside: which process listens on a port ([`pid_listening_on`]: for Envoy under
//! `mast-agent` that is Envoy itself), its memory ([`Memory`]: `VmRSS` and the peak `VmHWM`,
//! which [`reset_peak_rss`] restarts from the current RSS), and where its standard output
//! goes ([`stdout_path`]: the log file a harness redirected it to).

use std::io;
use std::path::PathBuf;

/// A process's resident memory, in KiB, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the peak resident size (since start or [`reset_peak_rss`]).
    pub peak_kib: u64,
}

impl Memory {
    /// Reads `/proc/<pid>/status`.
    pub fn of(pid: u32) -> io::Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        Ok(Self::parse(&status))
    }

    /// Parses the text of a `status` file (absent fields are 0).
    pub fn parse(status: &str) -> Self {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        Self {
            rss_kib: field("VmRSS:"),
            peak_kib: field("VmHWM:"),
        }
    }
}

/// Makes `VmHWM` of `pid` start again from its current RSS (`echo 5 > clear_refs`).
pub fn reset_peak_rss(pid: u32) -> io::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
}

/// The file descriptor 1 of `pid` as a path (the log file its output is redirected to).
pub fn stdout_path(pid: u32) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/fd/1"))
}

/// The process with a listening TCP socket on `port` (any local address), if one is ours to
/// see.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let inodes: Vec<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|table| listening_inodes(&table, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let target = std::fs::read_link(fd.path()).ok();
            if target.is_some_and(|t| wanted.iter().any(|w| t.as_os_str() == w.as_str())) {
                return Some(pid);
            }
        }
    }
    None
}

/// The inodes of the sockets listening (state `0A`) on `port` in a `/proc/net/tcp*` table.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    let suffix = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (cols.get(1)?, cols.get(3)?, cols.get(9)?);
            (local.ends_with(&suffix) && *state == "0A")
                .then(|| inode.parse().ok())
                .flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn parses_status() {
        let m = Memory::parse("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n");
        assert_eq!(
            m,
            Memory {
                rss_kib: 1024,
                peak_kib: 2048
            }
        );
    }

    #[test]
    fn finds_our_own_listener_and_memory() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(pid_listening_on(port), Some(std::process::id()));
        let me = Memory::of(std::process::id()).unwrap();
        assert!(me.rss_kib > 0 && me.peak_kib >= me.rss_kib, "{me:?}");
        drop(listener);
        assert_eq!(pid_listening_on(port), None);
    }
}
