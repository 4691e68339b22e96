//! Helpers for the `mastctl up` tests: a folder of YAML with its own state file, `mastctl
//! up` as a child process whose output is collected, `mastctl exec` through its mesh, and
//! YAML snippets, the sidecar a scenario runs on ([`proxy`]). Every wait is bounded; a dropped [`Up`] kills whatever is left.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mast_test_support::{TempDir, wait_for};
use parking_lot::Mutex;
use rustix::process::{Pid, Signal};
use serde_json::Value;

pub mod canary;
mod proxy;
#[allow(unused_imports)] // Not every test file uses them all.
pub use proxy::{Proxy, admin_stat, listening_ports, on_proxy, table_proxy, with_descendants};

pub fn mastctl_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mastctl"))
}

/// A folder of YAML for one mesh (`<tmp>/mesh`) and its state file (`<tmp>/state/up.json`).
pub struct Dir {
    tmp: TempDir,
}

impl Dir {
    /// A fresh folder, or `None` (test skipped) when mastd or mast-proxy is not built.
    pub fn for_up(name: &str) -> Option<Self> {
        let bin_dir = mastctl_bin().parent().unwrap().to_path_buf();
        for b in ["mastd", "mast-proxy"] {
            if !bin_dir.join(b).is_file() {
                eprintln!("skipped: {b} is not built (cargo build -p mastd -p mast-proxy)");
                return None;
            }
        }
        let tmp = TempDir::new(&format!("mast-up-{name}")).unwrap();
        std::fs::create_dir_all(tmp.join("mesh")).unwrap();
        Some(Self { tmp })
    }

    /// The mesh folder.
    pub fn path(&self) -> PathBuf {
        self.tmp.join("mesh")
    }

    /// A file in the mesh folder.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    /// Writes a file in the mesh folder (atomically, as editors do).
    pub fn write(&self, name: &str, text: &str) {
        let tmp = self.tmp.join(&format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.join(name)).unwrap();
    }

    /// The state file `mastctl up` is told to use.
    pub fn state_file(&self) -> PathBuf {
        self.tmp.join("state/up.json")
    }
}

/// A running `mastctl up`.
pub struct Up {
    child: Child,
    /// Its state file.
    pub state_file: PathBuf,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
    exited: Option<Option<i32>>,
}

fn collect(mut from: impl std::io::Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
}

impl Up {
    /// `mastctl up <dir> --state-file <dir's> <args>`.
    pub fn start(dir: &Dir, args: &[&str]) -> Self {
        Self::start_env(dir, args, &[])
    }

    /// `mastctl up` with its workloads on `proxy` (`--proxy envoy` and `MAST_ENVOY` for Envoy).
    pub fn start_on(dir: &Dir, proxy: &Proxy, args: &[&str]) -> Self {
        let mut all = proxy.up_args();
        all.extend_from_slice(args);
        let env = proxy.env();
        let env: Vec<(&str, &OsStr)> = env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
        Self::start_env(dir, &all, &env)
    }

    /// Like [`Up::start`], with extra environment.
    pub fn start_env(dir: &Dir, args: &[&str], env: &[(&str, &OsStr)]) -> Self {
        let state_file = dir.state_file();
        let mut cmd = Command::new(mastctl_bin());
        cmd.arg("up")
            .arg(dir.path())
            .arg("--state-file")
            .arg(&state_file)
            .args(args);
        // Tests' meshes never take Kiali's 20001: a concurrent test's mastd would grab it
        // the moment one mesh frees it, and the port check after Ctrl-C would fail.
        if !args
            .iter()
            .any(|a| *a == "--dashboard-addr" || *a == "--port-base")
        {
            cmd.args(["--dashboard-addr", "127.0.0.1:0"]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start mastctl up");
        let (out, err) = (Arc::default(), Arc::default());
        collect(child.stdout.take().unwrap(), Arc::clone(&out));
        collect(child.stderr.take().unwrap(), Arc::clone(&err));
        Self {
            child,
            state_file,
            out,
            err,
            exited: None,
        }
    }

    /// The temporary folder of this mesh (every path it uses starts with it).
    pub fn dir_name(&self) -> String {
        self.state_file
            .parent()
            .and_then(std::path::Path::parent)
            .map(|d| d.display().to_string())
            .unwrap_or_default()
    }

    /// The pid of `mastctl up`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.out.lock().clone()
    }

    /// Everything printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.err.lock().clone()
    }

    /// Waits (30 s at most) for the start-up table and "all workloads ready".
    pub fn wait_ready(&mut self) {
        let ok = wait_for(
            || {
                self.stdout().contains("all workloads ready in")
                    || self.child.try_wait().ok().flatten().is_some()
            },
            Duration::from_secs(30),
        );
        assert!(
            ok && self.stdout().contains("all workloads ready in"),
            "not ready:\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
    }

    /// Waits (30 s at most) for the start-up table, followed by "all workloads ready" or
    /// "not ready after …" (a workload that crashes at once may be between two restarts).
    pub fn wait_started(&mut self) {
        let started =
            |out: &str| out.contains("all workloads ready in") || out.contains("not ready after");
        let ok = wait_for(
            || started(&self.stdout()) || self.child.try_wait().ok().flatten().is_some(),
            Duration::from_secs(30),
        );
        assert!(
            ok && started(&self.stdout()),
            "not started:\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
    }

    /// The state file's content.
    pub fn state(&self) -> Value {
        let text = std::fs::read_to_string(&self.state_file).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Workload `name` in the state, if there.
    pub fn workload_opt(&self, name: &str) -> Option<Value> {
        self.state()["workloads"]
            .as_array()?
            .iter()
            .find(|w| w["name"] == name)
            .cloned()
    }

    /// Workload `name` in the state.
    pub fn workload(&self, name: &str) -> Value {
        self.workload_opt(name).unwrap_or(Value::Null)
    }

    /// `mastctl exec --state-file F <workload> -- <cmd>`: its stdout.
    pub fn exec(&self, workload: &str, cmd: &[&str]) -> String {
        let out = Command::new(mastctl_bin())
            .args(["exec", "--state-file"])
            .arg(&self.state_file)
            .arg(workload)
            .arg("--")
            .args(cmd)
            .output()
            .expect("run mastctl exec");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Another `mastctl` verb against this mesh (found through `MAST_STATE_FILE`).
    pub fn mastctl(&self, args: &[&str]) -> String {
        let out = Command::new(mastctl_bin())
            .args(args)
            .env("MAST_STATE_FILE", &self.state_file)
            .env_remove("MAST_MONITORING_ADDR")
            .output()
            .expect("run mastctl");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Every pid (mastd, sidecars, programs) and listening port in the state.
    pub fn pids_and_ports(&self) -> (Vec<u32>, Vec<u16>) {
        let s = self.state();
        let mut pids = vec![s["mastd"]["pid"].as_u64().unwrap() as u32];
        let mut ports: Vec<u16> = ["xds", "monitoring"]
            .iter()
            .filter_map(|k| s["mastd"][*k].as_str()?.rsplit(':').next()?.parse().ok())
            .collect();
        for w in s["workloads"].as_array().unwrap() {
            pids.extend(
                ["pid", "sidecar_pid"]
                    .iter()
                    .filter_map(|k| w[*k].as_u64())
                    .map(|p| p as u32),
            );
            ports.extend(
                ["outbound", "admin", "health"]
                    .iter()
                    .filter_map(|k| w[*k].as_u64())
                    .map(|p| p as u16),
            );
            ports.extend(
                w["inbound"]
                    .as_object()
                    .unwrap()
                    .values()
                    .filter_map(Value::as_u64)
                    .map(|p| p as u16),
            );
        }
        (pids, ports)
    }

    /// Waits (bounded) for `mastctl up` to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status.code());
                std::thread::sleep(Duration::from_millis(50));
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "mastctl up did not exit within {timeout:?}:\n{}",
            self.stderr()
        );
    }

    /// Ctrl-C: SIGINT, then waits (20 s at most) for the exit; its exit code.
    pub fn interrupt(&mut self) -> Option<i32> {
        signal(self.child.id(), Signal::INT, false);
        self.wait_exit(Duration::from_secs(20))
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if self.exited.is_some() {
            return;
        }
        let s = self.state();
        let mut pids: Vec<u64> = s["mastd"]["pid"].as_u64().into_iter().collect();
        for w in s["workloads"].as_array().into_iter().flatten() {
            pids.extend(["pid", "sidecar_pid"].iter().filter_map(|k| w[*k].as_u64()));
        }
        for pid in pids {
            signal(pid as u32, Signal::KILL, true);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, sig: Signal, group: bool) {
    let Some(pid) = Pid::from_raw(pid as i32) else {
        return;
    };
    let _ = if group {
        rustix::process::kill_process_group(pid, sig)
    } else {
        rustix::process::kill_process(pid, sig)
    };
}

/// Whether `pid` runs (exists and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// `VmRSS` of `pid` in KiB (0 when gone).
pub fn rss_kib(pid: u32) -> u64 {
    mast_test_support::procfs::Memory::of(pid)
        .map(|m| m.rss_kib)
        .unwrap_or(0)
}

/// Whether every named workload is `Running` in `state`.
pub fn workloads_running(state: &Value, names: &[&str]) -> bool {
    names.iter().all(|n| {
        state["workloads"].as_array().is_some_and(|ws| {
            ws.iter()
                .any(|w| w["name"] == *n && w["status"] == "Running")
        })
    })
}

/// A Service `name` selecting `selector` (`k: v`), port 80 (`http`) to `target`.
pub fn service(name: &str, selector: &str, target: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {{{selector}}}\n  ports: [{{name: http, port: 80, targetPort: {target}}}]\n"
    )
}

/// A LocalWorkload running `mastctl x echo --message <message>` on `port`.
pub fn echo_workload(name: &str, labels: &str, port: u16, message: &str) -> String {
    format!(
        "apiVersion: mast.dev/v1alpha1\nkind: LocalWorkload\nmetadata:\n  name: {name}\n  labels:\n    {labels}\nspec:\n  command: [{}, x, echo, --message, \"{message}\"]\n  port: {port}\n",
        mastctl_bin().display()
    )
}

/// A LocalWorkload that only sleeps (a client to `exec` in).
pub fn sleeper(name: &str) -> String {
    format!(
        "apiVersion: mast.dev/v1alpha1\nkind: LocalWorkload\nmetadata: {{name: {name}, labels: {{app: {name}}}}}\nspec:\n  command: [sleep, \"3600\"]\n"
    )
}

/// A job (`restartPolicy: Never`) running `script` with sh.
pub fn job_workload(name: &str, script: &str) -> String {
    format!(
        "apiVersion: mast.dev/v1alpha1\nkind: LocalWorkload\nmetadata: {{name: {name}, labels: {{app: {name}}}}}\nspec:\n  command: [sh, -c, '{script}']\n  restartPolicy: Never\n"
    )
}

/// Checks that `path` exists (for messages).
pub fn exists(path: &Path) -> bool {
    path.exists()
}
