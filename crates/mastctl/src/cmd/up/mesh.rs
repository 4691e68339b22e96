//! What every part of a running `mastctl up` shares: the state (written to the state file on
//! every change, for `exec` and the other verbs), the generated WorkloadEntries (one file per
//! running workload or gateway in the generated folder mastd watches), the Services
//! generated for Gateway API Gateways, and the printed table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mast_config::Resource;
use parking_lot::Mutex;

use super::proc::say;
use crate::cmd::table::Table;
use crate::local::spec::{Key, LocalSpec};
use crate::local::state::{self, State, WorkloadState};
use crate::local::{entry, gateway};

/// A running workload's entry as written.
struct Entry {
    spec: LocalSpec,
    /// Its sidecar's inbound listener (the program's own port in a pod).
    inbound: u16,
    /// The `ports:` written.
    ports: BTreeMap<String, u16>,
    /// Its address.
    address: String,
    /// Whether its status says `Healthy` (it then gets traffic): once its program listens.
    healthy: bool,
}

/// A workload's address in ports mode.
const LOOPBACK: &str = "127.0.0.1";

/// The shared state of a running mesh.
pub struct Mesh {
    state: Mutex<State>,
    /// Running workloads' entries.
    entries: Mutex<BTreeMap<Key, Entry>>,
    /// The state file.
    pub state_file: PathBuf,
    /// The run folder (logs, ports files).
    pub run_dir: PathBuf,
    /// The generated folder (WorkloadEntries) mastd watches.
    pub generated: PathBuf,
}

impl Mesh {
    /// A mesh whose state starts as `initial`.
    pub fn new(initial: State, state_file: PathBuf, run_dir: PathBuf) -> Self {
        Self {
            generated: initial.generated.clone(),
            state: Mutex::new(initial),
            entries: Mutex::new(BTreeMap::new()),
            state_file,
            run_dir,
        }
    }

    /// Changes the state and writes the state file.
    pub fn with_state(&self, f: impl FnOnce(&mut State)) {
        // Written under the lock: writes of the same file never race.
        let mut s = self.state.lock();
        f(&mut s);
        if let Err(e) = state::write(&self.state_file, &s) {
            say(format!("{e:#}"));
        }
    }

    /// Changes workload `key`'s state (adding it when new) and writes the state file.
    pub fn update(&self, key: &Key, f: impl FnOnce(&mut WorkloadState)) {
        self.with_state(|s| {
            let pos = s
                .workloads
                .iter()
                .position(|w| w.namespace == key.namespace && w.name == key.name);
            let w = match pos {
                Some(i) => &mut s.workloads[i],
                None => {
                    s.workloads.push(WorkloadState {
                        name: key.name.clone(),
                        namespace: key.namespace.clone(),
                        ..WorkloadState::default()
                    });
                    s.workloads
                        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
                    let i = s
                        .workloads
                        .iter()
                        .position(|w| w.namespace == key.namespace && w.name == key.name)
                        .unwrap_or(0);
                    &mut s.workloads[i]
                }
            };
            f(w);
        });
    }

    /// Forgets workload `key`.
    pub fn remove(&self, key: &Key) {
        self.with_state(|s| {
            s.workloads
                .retain(|w| !(w.namespace == key.namespace && w.name == key.name));
        });
    }

    /// A copy of the state.
    pub fn snapshot(&self) -> State {
        self.state.lock().clone()
    }

    fn entry_file(&self, key: &Key) -> PathBuf {
        self.generated
            .join(format!("{}.{}.yaml", key.namespace, key.name))
    }

    /// Writes the WorkloadEntry of a running workload whose sidecar listens on `inbound`.
    pub fn write_entry(&self, spec: &LocalSpec, inbound: u16, resources: &[Resource]) {
        self.write_entry_at(spec, inbound, LOOPBACK, resources);
    }

    /// Writes the WorkloadEntry of a running workload at `address` whose Services' ports
    /// lead to `inbound` (in a pod: the program's own port). A new entry is not healthy
    /// (it gets no traffic) until [`Mesh::set_healthy`]; a rewritten one keeps its health.
    pub fn write_entry_at(
        &self,
        spec: &LocalSpec,
        inbound: u16,
        address: &str,
        resources: &[Resource],
    ) {
        let ports = entry::entry_ports(spec, resources, inbound);
        let mut entries = self.entries.lock();
        let healthy = entries.get(&spec.key).is_some_and(|e| e.healthy);
        self.write_entry_file(spec, &ports, address, healthy);
        entries.insert(
            spec.key.clone(),
            Entry {
                spec: spec.clone(),
                inbound,
                ports,
                address: address.to_owned(),
                healthy,
            },
        );
        drop(entries);
        if spec.gateway {
            let urls = gateway::urls(spec, resources, address);
            self.update(&spec.key, |w| w.urls = urls);
        }
    }

    /// Marks a running workload's entry healthy (its program listens: it gets traffic) or
    /// not (its program exited), rewriting the entry when that changes.
    pub fn set_healthy(&self, key: &Key, healthy: bool) {
        let mut entries = self.entries.lock();
        if let Some(e) = entries.get_mut(key)
            && e.healthy != healthy
        {
            e.healthy = healthy;
            self.write_entry_file(&e.spec, &e.ports, &e.address, healthy);
        }
    }

    fn write_entry_file(
        &self,
        spec: &LocalSpec,
        ports: &BTreeMap<String, u16>,
        address: &str,
        healthy: bool,
    ) {
        let text = entry::workload_entry_at(spec, ports, address, healthy);
        // Written beside the folder then renamed in, so mastd never reads half a file.
        let tmp = self.run_dir.join(format!(
            ".{}.{}.yaml.tmp",
            spec.key.namespace, spec.key.name
        ));
        let result = std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, self.entry_file(&spec.key)));
        if let Err(e) = result {
            say(format!("writing the WorkloadEntry of {}: {e}", spec.key));
        }
    }

    /// The sidecar listeners that healthy WorkloadEntries point at (entries some Service
    /// uses): the endpoints every sidecar is sent.
    pub fn entry_listeners(&self) -> Vec<u16> {
        self.entries
            .lock()
            .values()
            .filter(|e| {
                e.healthy && !e.spec.gateway && !e.ports.is_empty() && e.address == LOOPBACK
            })
            .map(|e| e.inbound)
            .collect()
    }

    /// Removes a workload's WorkloadEntry.
    pub fn remove_entry(&self, key: &Key) {
        self.entries.lock().remove(key);
        let _ = std::fs::remove_file(self.entry_file(key));
    }

    /// Rewrites the entries whose `ports:` change with the folder's new `resources` (a
    /// Service added, edited or removed).
    pub fn refresh_entries(&self, resources: &[Resource]) {
        let mut urls = Vec::new();
        {
            let mut entries = self.entries.lock();
            for e in entries.values_mut() {
                let now = entry::entry_ports(&e.spec, resources, e.inbound);
                if now != e.ports {
                    self.write_entry_file(&e.spec, &now, &e.address, e.healthy);
                    e.ports = now;
                }
                if e.spec.gateway {
                    urls.push((
                        e.spec.key.clone(),
                        gateway::urls(&e.spec, resources, &e.address),
                    ));
                }
            }
        }
        for (key, now) in urls {
            self.update(&key, |w| w.urls = now);
        }
    }

    /// Makes the generated folder hold exactly `services` (file name → YAML), the Services
    /// of Gateway API Gateways' gateways (`svc_*.yaml`; no namespace has `_`).
    pub fn sync_gateway_services(&self, services: &BTreeMap<String, String>) {
        for e in std::fs::read_dir(&self.generated)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("svc_") && !services.contains_key(&name) {
                let _ = std::fs::remove_file(e.path());
            }
        }
        for (name, text) in services {
            let path = self.generated.join(name);
            if std::fs::read_to_string(&path).is_ok_and(|t| t == *text) {
                continue;
            }
            let tmp = self.run_dir.join(format!(".{name}.tmp"));
            let result = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path));
            if let Err(e) = result {
                say(format!("writing the generated Service {name}: {e}"));
            }
        }
    }

    /// The table of workloads and the addresses, as printed.
    pub fn table(&self) -> String {
        let s = self.snapshot();
        // The ADDRESS column only with --capture namespaces (ports mode's table unchanged).
        let pods = s.workloads.iter().any(|w| w.address.is_some());
        // The KIND column only when gateways run (a workload-only table is unchanged).
        let kinds = s.workloads.iter().any(|w| w.is_gateway());
        let mut headers = vec!["WORKLOAD", "NAMESPACE"];
        if kinds {
            headers.push("KIND");
        }
        if pods {
            headers.push("ADDRESS");
        }
        headers.extend(["PROXY", "PID", "OUTBOUND", "INBOUND", "ADMIN", "STATUS"]);
        let mut t = Table::new(&headers);
        let opt = |p: Option<u16>| p.map_or_else(|| "-".to_owned(), |p| p.to_string());
        for w in &s.workloads {
            let inbound: Vec<String> = w.inbound.iter().map(|(a, l)| format!("{l}->{a}")).collect();
            let mut row = vec![w.name.clone(), w.namespace.clone()];
            if kinds {
                row.push(w.kind.clone().unwrap_or_else(|| "workload".into()));
            }
            if pods {
                row.push(w.address.clone().unwrap_or_else(|| "-".into()));
            }
            row.extend([
                w.proxy.clone(),
                // A gateway has no program: its proxy's pid.
                w.pid
                    .or(w.sidecar_pid.filter(|_| w.is_gateway()))
                    .map_or_else(|| "-".to_owned(), |p| p.to_string()),
                opt(w.outbound),
                if inbound.is_empty() {
                    "-".into()
                } else {
                    inbound.join(",")
                },
                opt(w.admin),
                w.status.clone(),
            ]);
            t.row(row);
        }
        let dashboard = if s.dashboard.is_empty() {
            "(none: mastd could not open it; see its log)"
        } else {
            s.dashboard.as_str()
        };
        let prometheus = s
            .prometheus
            .as_ref()
            .map(|u| format!("prometheus: {u}\n"))
            .unwrap_or_default();
        let gateways: String = s
            .workloads
            .iter()
            .filter(|w| w.is_gateway())
            .map(|w| {
                let urls = if w.urls.is_empty() {
                    "(no Service selects it)".to_owned()
                } else {
                    w.urls.join("  ")
                };
                format!("gateway:   {}.{}  {urls}\n", w.name, w.namespace)
            })
            .collect();
        format!(
            "{}\n{gateways}mastd:     xDS {}  monitoring http://{}/metrics\ndashboard: {dashboard}\n{prometheus}state:     {}\n",
            t.render(),
            s.mastd.xds,
            s.mastd.monitoring,
            self.state_file.display()
        )
    }

    /// Removes the state file and the generated folder (the mesh has stopped).
    pub fn clean_up(&self) {
        let _ = std::fs::remove_file(&self.state_file);
        let _ = std::fs::remove_dir_all(&self.generated);
        remove_matching(&self.run_dir, ".ports.json");
    }
}

fn remove_matching(dir: &Path, suffix: &str) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().ends_with(suffix) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
