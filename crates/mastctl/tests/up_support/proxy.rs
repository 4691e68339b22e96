//! The sidecar a scenario runs on ([`Proxy`]: mast-proxy, or Envoy through mast-agent when
//! Envoy is found), and what a test reads about sidecars: the PROXY column of the printed
//! table, a sidecar's admin `/stats`, the processes a sidecar started (Envoy under
//! mast-agent) and the ports they listen on, the per-workload `mast.dev/proxy` annotation.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

/// The sidecar of the workloads of one `mastctl up`.
#[derive(Debug, Clone)]
pub enum Proxy {
    /// mast-proxy (the default).
    Mast,
    /// Envoy through mast-agent; the Envoy binary, passed as `MAST_ENVOY`.
    Envoy(PathBuf),
}

impl Proxy {
    /// Envoy, or `None` (and why, printed) when Envoy or mast-agent is missing.
    pub fn envoy() -> Option<Self> {
        let agent = super::mastctl_bin().with_file_name("mast-agent");
        if !agent.is_file() {
            eprintln!("skipped: mast-agent is not built (cargo build -p mast-agent)");
            return None;
        }
        match mast_test_support::envoy_binary() {
            Some(envoy) => Some(Self::Envoy(envoy)),
            None => {
                eprintln!(
                    "skipped: Envoy not found (set MAST_ENVOY, or install it in .venv/bin/envoy, or put envoy on PATH)"
                );
                None
            }
        }
    }

    /// The name `--proxy`, the annotation, the table and the state use.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Mast => "mast",
            Self::Envoy(_) => "envoy",
        }
    }

    /// The `mastctl up` arguments selecting this sidecar (none for the default).
    pub fn up_args(&self) -> Vec<&'static str> {
        match self {
            Self::Mast => Vec::new(),
            Self::Envoy(_) => vec!["--proxy", "envoy"],
        }
    }

    /// The environment `mastctl up` needs for this sidecar.
    pub fn env(&self) -> Vec<(&'static str, PathBuf)> {
        match self {
            Self::Mast => Vec::new(),
            Self::Envoy(envoy) => vec![("MAST_ENVOY", envoy.clone())],
        }
    }
}

/// `workload` (YAML with block-style `metadata:`) annotated to run on `proxy`.
pub fn on_proxy(workload: &str, proxy: &str) -> String {
    assert!(
        workload.contains("metadata:\n"),
        "block metadata: {workload}"
    );
    workload.replacen(
        "metadata:\n",
        &format!("metadata:\n  annotations: {{mast.dev/proxy: {proxy}}}\n"),
        1,
    )
}

/// The PROXY column of `workload`'s row in the last table printed in `stdout`.
pub fn table_proxy(stdout: &str, workload: &str) -> Option<String> {
    let header = stdout.lines().rfind(|l| l.starts_with("WORKLOAD"))?;
    let col = header.split_whitespace().position(|c| c == "PROXY")?;
    let table = &stdout[stdout.rfind(header)?..];
    table
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&workload))
        .and_then(|cells| cells.get(col).map(|c| (*c).to_owned()))
}

/// The sum of the admin `/stats` counters on 127.0.0.1:`admin` whose name contains every
/// one of `parts` (0 when the admin does not answer within 2 s).
pub fn admin_stat(admin: u16, parts: &[&str]) -> u64 {
    let Ok(mut s) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], admin)),
        Duration::from_secs(2),
    ) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(b"GET /stats HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(name, _)| parts.iter().all(|p| name.contains(p)))
        .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
        .sum()
}

/// `pids` and every process below them (children, grandchildren: Envoy under mast-agent).
pub fn with_descendants(pids: &[u32]) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // After "(comm)": state, then the parent pid.
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent_of.push((pid, ppid));
        }
    }
    let mut all = pids.to_vec();
    let mut i = 0;
    while i < all.len() {
        let parent = all[i];
        for (pid, _) in parent_of.iter().filter(|(_, pp)| *pp == parent) {
            if !all.contains(pid) {
                all.push(*pid);
            }
        }
        i += 1;
    }
    all
}

/// The TCP ports `pids` listen on (from `/proc/<pid>/fd` and `/proc/net/tcp{,6}`).
pub fn listening_ports(pids: &[u32]) -> Vec<u16> {
    let mut inodes = Vec::new();
    for pid in pids {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"));
        for fd in fds.into_iter().flatten().flatten() {
            let target = std::fs::read_link(fd.path()).unwrap_or_default();
            let target = target.to_string_lossy();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
            {
                inodes.push(inode.to_owned());
            }
        }
    }
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for row in text.lines().skip(1) {
            let cols: Vec<&str> = row.split_whitespace().collect();
            // local_address is column 1 (ADDR:PORT in hex), st column 3 (0A = LISTEN), inode 9.
            let (Some(local), Some(st), Some(inode)) = (cols.get(1), cols.get(3), cols.get(9))
            else {
                continue;
            };
            if *st == "0A" && inodes.iter().any(|i| i == inode) {
                let port = local.rsplit(':').next().unwrap_or_default();
                ports.extend(u16::from_str_radix(port, 16).ok());
            }
        }
    }
    ports
}
