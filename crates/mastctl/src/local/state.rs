//! The state file of a running `mastctl up`: where it lives (one per folder, under
//! `$XDG_RUNTIME_DIR/mast/` or `/tmp/mast-<uid>/`), what it holds (mastd's addresses, every
//! workload's sidecar ports, pids, status and environment), and how the other verbs find
//! the running mesh (`--state-file`, `$MAST_STATE_FILE`, else the most recent live one).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

/// Environment variable naming the state file (as `--state-file` does).
pub const STATE_FILE_ENV: &str = "MAST_STATE_FILE";

/// mastd's default monitoring address when no local mesh runs.
const DEFAULT_MASTD: &str = "127.0.0.1:15014";

/// What a running `mastctl up` writes down.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// The folder it runs (absolute).
    pub dir: PathBuf,
    /// The `mastctl up` process.
    pub pid: u32,
    /// The control plane.
    pub mastd: MastdState,
    /// The dashboard URL (empty until mastd reports it, or when it runs none).
    pub dashboard: String,
    /// The Prometheus URL, with `mastctl up --prometheus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<String>,
    /// The folder of generated WorkloadEntries.
    pub generated: PathBuf,
    /// Every workload, by `name.namespace`.
    pub workloads: Vec<WorkloadState>,
}

/// mastd's process and addresses.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MastdState {
    /// Its pid, once started.
    pub pid: Option<u32>,
    /// The xDS (ADS) address, `127.0.0.1:N`.
    pub xds: String,
    /// The monitoring address (`/metrics`, `/debug/*`), `127.0.0.1:N`.
    pub monitoring: String,
}

/// One workload: its sidecar, its program and their ports.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WorkloadState {
    /// The name.
    pub name: String,
    /// The namespace.
    pub namespace: String,
    /// `mast` or `envoy`.
    pub proxy: String,
    /// The sidecar's pid (its process group).
    pub sidecar_pid: Option<u32>,
    /// The program's pid (its process group).
    pub pid: Option<u32>,
    /// The sidecar's outbound listener (the program's HTTP proxy).
    pub outbound: Option<u16>,
    /// The sidecar's inbound listeners, by application port.
    pub inbound: BTreeMap<String, u16>,
    /// The sidecar's admin port.
    pub admin: Option<u16>,
    /// The sidecar's health port (mast-proxy only).
    pub health: Option<u16>,
    /// `Starting`, `Running`, `Restarting`, `Completed`, `Failed (…)`, …
    pub status: String,
    /// How many times the program was restarted.
    pub restarts: u32,
    /// The program's environment as `up` sets it (what `exec` sets too).
    pub env: BTreeMap<String, String>,
    /// Its network namespace (`--capture namespaces`), where `exec` runs commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// Its address (`--capture namespaces`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `gateway` for a gateway (a `router` proxy with no program; `sidecar_pid` is the
    /// proxy's); absent for workloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// A gateway's addresses on this machine, from the Services that select it
    /// (`http://127.0.0.1:18080`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

impl WorkloadState {
    /// Whether this is a gateway.
    pub fn is_gateway(&self) -> bool {
        self.kind.as_deref() == Some(GATEWAY_KIND)
    }
}

/// [`WorkloadState::kind`] of gateways.
pub const GATEWAY_KIND: &str = "gateway";

impl State {
    /// The workload called `name` or `name.namespace`.
    pub fn workload(&self, wanted: &str) -> anyhow::Result<&WorkloadState> {
        let found = self
            .workloads
            .iter()
            .find(|w| w.name == wanted || format!("{}.{}", w.name, w.namespace) == wanted);
        match found {
            Some(w) => Ok(w),
            None => {
                let names: Vec<String> = self
                    .workloads
                    .iter()
                    .map(|w| format!("{}.{}", w.name, w.namespace))
                    .collect();
                bail!(
                    "no workload {wanted:?} in the mesh of {}; workloads: {}",
                    self.dir.display(),
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                )
            }
        }
    }
}

/// The folder of state files: `$XDG_RUNTIME_DIR/mast`, else `/tmp/mast-<uid>`.
pub fn state_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("mast"),
        None => std::env::temp_dir().join(format!("mast-{}", rustix::process::getuid().as_raw())),
    }
}

/// The default state file for the folder `dir` (absolute): `up-<folder name>-<hash>.json`,
/// so two meshes run from different folders have their own.
pub fn default_path(dir: &Path) -> PathBuf {
    let base: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let hash = fnv1a(dir.as_os_str().as_encoded_bytes());
    state_dir().join(format!("up-{base}-{:08x}.json", hash as u32))
}

/// The folder next to a state file for what belongs to its run (generated entries, logs,
/// ports files): the state file's path without `.json`.
pub fn run_dir(state_file: &Path) -> PathBuf {
    let stem = state_file.with_extension("");
    if stem == state_file {
        let mut s = state_file.as_os_str().to_owned();
        s.push(".d");
        PathBuf::from(s)
    } else {
        stem
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Writes `state` to `path` atomically (a temporary file renamed over it).
pub fn write(path: &Path, state: &State) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let text = serde_json::to_string_pretty(state)?;
    std::fs::write(&tmp, text + "\n").with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Reads a state file.
pub fn read(path: &Path) -> anyhow::Result<State> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the state file {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a mastctl up state file", path.display()))
}

/// Whether process `pid` exists.
pub fn is_alive(pid: u32) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
}

/// The most recently written state file of a live `mastctl up`, if any.
pub fn latest() -> Option<(PathBuf, State)> {
    let entries = std::fs::read_dir(state_dir()).ok()?;
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("up-") && name.ends_with(".json")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    found.sort();
    found
        .into_iter()
        .rev()
        .filter_map(|(_, p)| read(&p).ok().map(|s| (p, s)))
        .find(|(_, s)| is_alive(s.pid))
}

/// The state of the mesh to talk to: `explicit` (or `$MAST_STATE_FILE`), else the most
/// recent live one.
pub fn find(explicit: Option<&Path>) -> anyhow::Result<(PathBuf, State)> {
    let named = explicit.map(Path::to_path_buf).or_else(|| {
        std::env::var_os(STATE_FILE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    if let Some(path) = named {
        let state = read(&path)?;
        return Ok((path, state));
    }
    latest().with_context(|| {
        format!(
            "no local mesh is running (no live state file in {}): start one with `mastctl up DIR`",
            state_dir().display()
        )
    })
}

/// mastd's monitoring address: `flag` when given (flag or `$MAST_MONITORING_ADDR`), else the
/// running local mesh's, else 127.0.0.1:15014.
pub fn mastd_address(flag: Option<&str>) -> String {
    if let Some(addr) = flag {
        return addr.to_owned();
    }
    let from_state = match std::env::var_os(STATE_FILE_ENV).filter(|v| !v.is_empty()) {
        Some(path) => read(Path::new(&path)).ok(),
        None => latest().map(|(_, s)| s),
    };
    from_state
        .map(|s| s.mastd.monitoring)
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| DEFAULT_MASTD.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_differ_per_folder() {
        let a = default_path(Path::new("/x/canary"));
        let b = default_path(Path::new("/y/canary"));
        assert_ne!(a, b);
        assert!(
            a.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("up-canary-")
        );
        assert_eq!(run_dir(Path::new("/s/up.json")), Path::new("/s/up"));
        assert_eq!(run_dir(Path::new("/s/state")), Path::new("/s/state.d"));
    }

    #[test]
    fn finds_workloads_by_name_or_qualified_name() {
        let state = State {
            dir: "/d".into(),
            pid: 1,
            mastd: MastdState::default(),
            dashboard: String::new(),
            prometheus: None,
            generated: "/g".into(),
            workloads: vec![WorkloadState {
                name: "client".into(),
                namespace: "ns".into(),
                ..WorkloadState::default()
            }],
        };
        assert!(state.workload("client").is_ok());
        assert!(state.workload("client.ns").is_ok());
        let err = state.workload("other").unwrap_err().to_string();
        assert!(err.contains("client.ns"), "{err}");
    }
}
