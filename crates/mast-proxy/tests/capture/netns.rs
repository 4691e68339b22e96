//! The network the capture test builds, and takes down again whatever happens:
//!
//! ```text
//!  netns mcw<pid> ("the pod")                       netns mcr<pid> ("the network")
//!  lo 127.0.0.1                                     lo
//!  mcw<pid> 10.99.0.1/24  <------ veth ------>      mcr<pid> 10.99.0.2/24, 10.99.0.3/24
//!  default via 10.99.0.2                            (upstreams and the inbound client)
//!  iptables nat: written by the sidecar binary
//! ```
//!
//! The pod's nat table is written by the sidecar binary itself (`mast-proxy init` or
//! `mast-agent iptables` with [`SIDECAR_FLAGS`]), as the `istio-init` container does:
//! PREROUTING → ISTIO_INBOUND → REDIRECT to 15006; OUTPUT → ISTIO_OUTPUT: traffic from
//! 127.0.0.6 and the proxy's own uid/gid returns (except the proxy calling its own pod
//! address, which goes to 15006), other loopback traffic returns, the rest → REDIRECT to 15001.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The proxy's uid and gid (Istio's).
pub const PROXY_UID: u32 = 1337;
/// The pod's address.
pub const POD_IP: &str = "10.99.0.1";
/// The network side's addresses.
pub const REMOTE_IPS: [&str; 2] = ["10.99.0.2", "10.99.0.3"];

/// istio-iptables' flags as Istio's injector passes them to `istio-init` (sidecar
/// capturing all inbound ports but the proxy's own, all outbound destinations).
pub const SIDECAR_FLAGS: [&str; 16] = mast_iptables::config::SIDECAR_INIT_FLAGS;

/// Why the test cannot run here, if it cannot.
pub fn unavailable(binaries: &[&str]) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0");
    if !root {
        return Some("not root (network namespaces and iptables need it)".into());
    }
    for program in ["ip", "iptables", "iptables-save", "iptables-restore"] {
        if find_program(program).is_none() {
            return Some(format!(
                "`{program}` is not installed (apt-get install iptables iproute2)"
            ));
        }
    }
    for binary in binaries {
        if mast_test_support::cargo_bin(binary).is_none() {
            return Some(format!(
                "{binary} is not built (cargo build --workspace --bins)"
            ));
        }
    }
    None
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Runs `ip <args>`, returning its error output on failure.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "ip {}: {}: {}",
            args.join(" "),
            out.status,
            stderr.trim()
        ))
    }
}

/// `ip netns exec <ns> <program>`.
pub fn in_ns(ns: &str, program: &Path) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", ns]).arg(program);
    command
}

/// The two namespaces and the veth between them; deleted on drop (with anything still
/// running inside, by process id).
pub struct Sandbox {
    /// The pod's namespace.
    pub pod: String,
    /// The network side's namespace.
    pub remote: String,
    created: Vec<String>,
}

impl Sandbox {
    /// Creates the namespaces. `Err` from the very first step means the machine does not
    /// allow network namespaces (a container without CAP_SYS_ADMIN).
    pub fn create(tag: char) -> Result<Self, (bool, String)> {
        let id = std::process::id();
        let mut sandbox = Self {
            pod: format!("mcw{id}{tag}"),
            remote: format!("mcr{id}{tag}"),
            created: Vec::new(),
        };
        ip(&["netns", "add", &sandbox.pod]).map_err(|e| (true, e))?;
        sandbox.created.push(sandbox.pod.clone());
        sandbox.build().map_err(|e| (false, e))?;
        Ok(sandbox)
    }

    fn build(&mut self) -> Result<(), String> {
        let (pod, remote) = (self.pod.clone(), self.remote.clone());
        ip(&["netns", "add", &remote])?;
        self.created.push(remote.clone());
        ip(&["link", "add", &pod, "type", "veth", "peer", "name", &remote])?;
        ip(&["link", "set", &pod, "netns", &pod])?;
        ip(&["link", "set", &remote, "netns", &remote])?;
        let pod_addr = format!("{POD_IP}/24");
        let steps: Vec<(&str, Vec<&str>)> = vec![
            (&pod, vec!["link", "set", "lo", "up"]),
            (&pod, vec!["addr", "add", &pod_addr, "dev", &pod]),
            (&pod, vec!["link", "set", &pod, "up"]),
            (&pod, vec!["route", "add", "default", "via", REMOTE_IPS[0]]),
            (&remote, vec!["link", "set", "lo", "up"]),
            (&remote, vec!["link", "set", &remote, "up"]),
        ];
        for (ns, args) in steps {
            let mut all = vec!["-n", ns];
            all.extend(args);
            ip(&all)?;
        }
        for addr in REMOTE_IPS {
            ip(&[
                "-n",
                &remote,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                &remote,
            ])?;
        }
        Ok(())
    }

    /// Runs `program args` in the pod's namespace; its output, or why it failed.
    pub fn exec(&self, program: &Path, args: &[&str]) -> Result<String, String> {
        let shown = format!("{} {}", program.display(), args.join(" "));
        let out = in_ns(&self.pod, program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{shown}: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "{shown}: {}\n{stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// The pod's nat table as `iptables -S` prints it (for failure messages).
    pub fn nat_rules(&self) -> String {
        Command::new("ip")
            .args(["netns", "exec", &self.pod, "iptables", "-t", "nat", "-S"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Still in the host namespace only if moving it failed.
        let _ = ip(&["link", "del", &self.pod]);
        for ns in self.created.iter().rev() {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = mast_test_support::process::send_signal("KILL", pid);
                }
            }
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("capture test cleanup: {e}");
            }
        }
    }
}
