//! `mastctl up --capture namespaces` (root): the pod model on one machine. Owns the
//! [`Network`]: a bridge `mastbr<id>` on the host at [`BRIDGE_IP`] (10.213.0.1/24, where
//! mastd's xDS listens), and per workload a [`Pod`]: a network namespace `mast-<id>-<n>`
//! joined to the bridge by a veth pair (`eth0` inside, address 10.213.0.<n+1>, default route
//! via the bridge), Istio's nat rules written by the sidecar binary's own init command (as
//! `istio-init` does), an `/etc/netns/<ns>/hosts` that resolves Services' names, and a
//! folder the sidecar (uid 1337) may write. `<id>` comes from the state file's path, so the
//! next start of the same folder removes what a crashed run left. Everything is removed on
//! drop. Parts: [`cmd`] builds the commands run inside a pod, [`hosts`] the name mapping.

pub mod cmd;
pub mod hosts;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use mast_config::Resource;
use parking_lot::Mutex;

use crate::cmd::up::proc::say;
use crate::local::spec::{LocalSpec, ProxyKind};

/// The bridge's address: the pods' gateway, where mastd's xDS listens.
pub const BRIDGE_IP: &str = "10.213.0.1";
/// The pods' network (a /24): pod n gets `<PREFIX>.<n+1>`.
const PREFIX: &str = "10.213.0";
/// The proxy's uid and gid (Istio's).
pub const PROXY_UID: u32 = 1337;
/// Where `ip netns exec` finds a namespace's own `/etc` files.
const ETC_NETNS: &str = "/etc/netns";

/// The host side of a namespaces-mode mesh; torn down on drop.
pub struct Network {
    id: String,
    bridge: String,
    /// Files the sidecars read and write (per pod, owned by uid 1337).
    dir: PathBuf,
    slots: Mutex<BTreeSet<u16>>,
    /// Service host → the VIP its name resolves to.
    pub(crate) vips: Mutex<BTreeMap<String, String>>,
    /// Running pods by namespace name, with their workload's namespace and name.
    pods: Mutex<BTreeMap<String, (Pod, String, String)>>,
}

/// One workload's network namespace.
#[derive(Debug, Clone)]
pub struct Pod {
    /// The namespace's name (`mast-<id>-<n>`).
    pub ns: String,
    /// Its address.
    pub ip: String,
    /// A folder uid 1337 owns (ports file, Envoy's work folder, CA token).
    pub dir: PathBuf,
    slot: u16,
    veth: String,
}

/// Runs `ip <args>`; the error names the command and what it printed.
pub fn ip(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running ip {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Why namespaces mode cannot run here (not root, a tool missing), if it cannot.
pub fn unavailable() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("--capture namespaces needs root (network namespaces and iptables)".into());
    }
    for tool in ["ip", "iptables-restore", "iptables-save", "setpriv"] {
        if crate::cmd::up::sidecar::which(tool).is_none() {
            return Some(format!(
                "--capture namespaces needs `{tool}` (apt-get install iproute2 iptables util-linux)"
            ));
        }
    }
    None
}

impl Network {
    /// Removes what an earlier run of the same mesh left, then creates the bridge.
    pub fn create(state_file: &Path, run_dir: &Path) -> anyhow::Result<Self> {
        if let Some(why) = unavailable() {
            bail!(why);
        }
        let id = format!(
            "{:04x}",
            fnv(state_file.as_os_str().as_encoded_bytes()) & 0xffff
        );
        let net = Self {
            bridge: format!("mastbr{id}"),
            dir: run_dir.join("netns"),
            id,
            slots: Mutex::new(BTreeSet::new()),
            vips: Mutex::new(BTreeMap::new()),
            pods: Mutex::new(BTreeMap::new()),
        };
        net.sweep();
        let taken = ip(&["-o", "-4", "addr", "show"])?;
        if let Some(line) = taken
            .lines()
            .find(|l| l.contains(&format!(" {BRIDGE_IP}/")))
        {
            bail!(
                "{BRIDGE_IP} is already in use on this machine (another mastctl up --capture namespaces?): {}",
                line.trim()
            );
        }
        let b = net.bridge.as_str();
        // A fixed MAC: a bridge without one takes the lowest of its ports' and changes it as
        // pods join, and a pod that had already resolved the bridge's address then sends to
        // a MAC the host drops (as another host's) until its ARP entry goes stale, 15-45 s
        // later: its sidecar got no xDS and was not ready in time.
        let mac = bridge_mac(&net.id);
        ip(&["link", "add", b, "address", &mac, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{BRIDGE_IP}/24"), "dev", b])?;
        ip(&["link", "set", b, "up"])?;
        std::fs::create_dir_all(&net.dir)
            .with_context(|| format!("creating {}", net.dir.display()))?;
        open_up(&net.dir, 0o755)?;
        Ok(net)
    }

    /// The prefix of this mesh's namespaces.
    fn prefix(&self) -> String {
        format!("mast-{}-", self.id)
    }

    /// Creates workload `spec`'s namespace, wires it to the bridge and writes Istio's nat
    /// rules with the `kind` sidecar's init command.
    pub fn add_pod(
        &self,
        spec: &LocalSpec,
        kind: ProxyKind,
        resources: &[Resource],
    ) -> anyhow::Result<Pod> {
        let slot = {
            let mut slots = self.slots.lock();
            let slot = (1..=250u16)
                .find(|s| !slots.contains(s))
                .context("no address left in 10.213.0.0/24")?;
            slots.insert(slot);
            slot
        };
        let pod = Pod {
            ns: format!("{}{slot}", self.prefix()),
            ip: format!("{PREFIX}.{}", slot + 1),
            dir: self
                .dir
                .join(format!("{}.{}", spec.key.namespace, spec.key.name)),
            veth: format!("mv{}h{slot}", self.id),
            slot,
        };
        if let Err(e) = self.wire(&pod).and_then(|()| cmd::init_rules(&pod, kind)) {
            self.remove_pod(&pod);
            return Err(e.context(format!("building the network namespace of {}", spec.key)));
        }
        let (namespace, name) = (spec.key.namespace.clone(), spec.key.name.clone());
        hosts::write(self, &pod, &namespace, &name, resources);
        self.pods
            .lock()
            .insert(pod.ns.clone(), (pod.clone(), namespace, name));
        Ok(pod)
    }

    /// Rewrites every pod's hosts file for the folder's new `resources`.
    pub fn refresh_hosts(&self, resources: &[Resource]) {
        let pods: Vec<_> = self.pods.lock().values().cloned().collect();
        for (pod, namespace, name) in pods {
            hosts::write(self, &pod, &namespace, &name, resources);
        }
    }

    fn wire(&self, pod: &Pod) -> anyhow::Result<()> {
        let (ns, host) = (pod.ns.as_str(), pod.veth.as_str());
        let peer = format!("mv{}p{}", self.id, pod.slot);
        ip(&["netns", "add", ns])?;
        ip(&["link", "add", host, "type", "veth", "peer", "name", &peer])?;
        ip(&["link", "set", &peer, "netns", ns])?;
        ip(&["link", "set", host, "master", &self.bridge])?;
        ip(&["link", "set", host, "up"])?;
        let addr = format!("{}/24", pod.ip);
        for args in [
            vec!["link", "set", "lo", "up"],
            vec!["link", "set", &peer, "name", "eth0"],
            vec!["addr", "add", &addr, "dev", "eth0"],
            vec!["link", "set", "eth0", "up"],
            vec!["route", "add", "default", "via", BRIDGE_IP],
        ] {
            let mut all = vec!["-n", ns];
            all.extend(args);
            ip(&all)?;
        }
        let _ = std::fs::remove_dir_all(&pod.dir);
        std::fs::create_dir_all(&pod.dir)
            .with_context(|| format!("creating {}", pod.dir.display()))?;
        std::os::unix::fs::chown(&pod.dir, Some(PROXY_UID), Some(PROXY_UID))
            .with_context(|| format!("giving {} to uid {PROXY_UID}", pod.dir.display()))?;
        std::fs::create_dir_all(Path::new(ETC_NETNS).join(ns))
            .with_context(|| format!("creating {ETC_NETNS}/{ns}"))?;
        Ok(())
    }

    /// Deletes a pod's namespace (killing what still runs in it), veth, hosts file and
    /// folder, and frees its address.
    pub fn remove_pod(&self, pod: &Pod) {
        self.pods.lock().remove(&pod.ns);
        delete_ns(&pod.ns);
        let _ = ip(&["link", "del", &pod.veth]);
        let _ = std::fs::remove_dir_all(&pod.dir);
        self.slots.lock().remove(&pod.slot);
    }

    /// Removes every namespace, `/etc/netns` entry and the bridge of this mesh.
    fn sweep(&self) {
        let prefix = self.prefix();
        let list = ip(&["netns", "list"]).unwrap_or_default();
        for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if ns.starts_with(&prefix) {
                delete_ns(ns);
            }
        }
        for e in std::fs::read_dir(ETC_NETNS).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let links = ip(&["-o", "link", "show"]).unwrap_or_default();
        let veth = format!("mv{}h", self.id);
        for name in links.lines().filter_map(|l| l.split(": ").nth(1)) {
            let name = name.split('@').next().unwrap_or(name);
            if name.starts_with(&veth) || name == self.bridge {
                let _ = ip(&["link", "del", name]);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The bridge's MAC: locally administered (`02:`), from the mesh's id (`02:6d:73:74:<id>`).
fn bridge_mac(id: &str) -> String {
    let id = u16::from_str_radix(id, 16).unwrap_or(0);
    format!("02:6d:73:74:{:02x}:{:02x}", id >> 8, id & 0xff)
}

impl Drop for Network {
    fn drop(&mut self) {
        self.sweep();
    }
}

/// Kills what runs in namespace `ns`, deletes it and its `/etc/netns` entry.
fn delete_ns(ns: &str) {
    let pids = ip(&["netns", "pids", ns]).unwrap_or_default();
    for pid in pids
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
    {
        crate::cmd::up::proc::signal_one(pid, rustix::process::Signal::KILL);
    }
    if let Err(e) = ip(&["netns", "del", ns]) {
        say(format!("removing network namespace {ns}: {e:#}"));
    }
    let _ = std::fs::remove_dir_all(Path::new(ETC_NETNS).join(ns));
}

/// Lets others into `dir` and its parents (uid 1337 reaches its pod folder).
fn open_up(dir: &Path, mode: u32) -> anyhow::Result<()> {
    for d in dir.ancestors().take(3) {
        let Ok(meta) = d.metadata() else { continue };
        let now = meta.permissions().mode() & 0o7777;
        if now & 0o001 == 0 {
            let wanted = if d == dir { mode } else { now | 0o001 };
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(wanted))
                .with_context(|| format!("letting uid {PROXY_UID} into {}", d.display()))?;
        }
    }
    Ok(())
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
