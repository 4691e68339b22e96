//! Reading the folder a mesh runs: resources, analysis messages (as `mastctl analyze`
//! prints them), and the `LocalWorkload`s and gateways (`LocalGateway`s, and one per Gateway
//! API `Gateway` of class istio/mast with its generated Service) to run. A workload whose
//! definition is broken (a file that no longer parses, a spec that does not validate) is
//! reported, and the running one is kept until the file is fixed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use mast_analyze::{Message, Options, analyze};
use mast_config::{Level, LoadOptions, Resource, load_paths};

use crate::local::gateway;
use crate::local::spec::{self, Key, LocalSpec};

/// istioctl's "namespace is not enabled for injection": every local workload gets a
/// sidecar, so it says nothing useful here.
const NOT_INJECTED: &str = "IST0102";

/// The folder, read once.
pub struct Folder {
    /// Every resource that loaded, plus the Services generated for Gateway API Gateways.
    pub resources: Arc<Vec<Resource>>,
    /// The workloads and gateways to run.
    pub specs: BTreeMap<Key, LocalSpec>,
    /// The Services generated for Gateway API Gateways: file name in the generated folder
    /// → YAML.
    pub gateway_services: BTreeMap<String, String>,
    /// Files that could not be read or parsed at all.
    pub broken_files: BTreeSet<String>,
    /// Workloads defined but not runnable as written (kept as they run).
    pub invalid: BTreeSet<Key>,
    /// Analysis messages (validation included), sorted as istioctl sorts them.
    pub messages: Vec<Message>,
}

impl Folder {
    /// Whether anything is an error (what stops `mastctl up` from starting).
    pub fn has_errors(&self) -> bool {
        !self.broken_files.is_empty() || self.messages.iter().any(|m| m.level() >= Level::Error)
    }
}

/// Loads and analyzes `dir`.
pub fn read(dir: &Path) -> Folder {
    let loaded = load_paths(&[dir.to_path_buf()], &LoadOptions::default());
    let mut messages = analyze(
        &loaded.resources,
        &loaded.diagnostics,
        &Options { namespace: None },
    );
    messages.retain(|m| m.kind.code != NOT_INJECTED);
    let mut broken_files = BTreeSet::new();
    let mut invalid = BTreeSet::new();
    for d in &loaded.diagnostics {
        match (&d.resource, &d.origin) {
            (Some(r), _) if r.kind == "LocalWorkload" || r.kind == "LocalGateway" => {
                invalid.insert(key_of(&r.namespace, &r.name));
            }
            (None, Some(origin)) => {
                broken_files.insert(origin.file.to_string());
            }
            _ => {}
        }
    }
    let mut specs: BTreeMap<Key, LocalSpec> = BTreeMap::new();
    for r in &loaded.resources {
        let Some(parsed) = spec::from_resource(r).or_else(|| gateway::from_resource(r)) else {
            continue;
        };
        let valid = mast_config::validate::validate(r).is_valid();
        match parsed {
            Ok(s) if valid => {
                if let Some(other) = specs.get(&s.key) {
                    crate::cmd::up::proc::say(format!(
                        "{}: {} {}: a {} of the same name runs already; rename one",
                        r.origin,
                        r.kind,
                        s.key,
                        if other.gateway { "gateway" } else { "workload" }
                    ));
                    continue;
                }
                specs.insert(s.key.clone(), s);
            }
            Ok(s) => {
                invalid.insert(s.key);
            }
            Err(why) => {
                invalid.insert(key_of(r.namespace(), r.name()));
                if valid {
                    // Not caught by validation: say why it cannot run.
                    crate::cmd::up::proc::say(format!(
                        "{}: {} {}: {why}",
                        r.origin,
                        r.kind,
                        key_of(r.namespace(), r.name())
                    ));
                }
            }
        }
    }
    let mut resources = loaded.resources;
    let gateway_services = add_auto_gateways(&mut resources, &mut specs);
    Folder {
        resources: Arc::new(resources),
        specs,
        gateway_services,
        broken_files,
        invalid,
        messages,
    }
}

/// Adds a gateway for each Gateway API `Gateway` of class istio/mast to `specs`, and its
/// generated Service to `resources` (so its WorkloadEntry and URLs see it); returns the
/// Services' files.
fn add_auto_gateways(
    resources: &mut Vec<Resource>,
    specs: &mut BTreeMap<Key, LocalSpec>,
) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for auto in gateway::auto_gateways(resources) {
        let auto = match auto {
            Ok(a) => a,
            Err(why) => {
                crate::cmd::up::proc::say(why);
                continue;
            }
        };
        if specs.contains_key(&auto.spec.key) {
            crate::cmd::up::proc::say(format!(
                "Gateway {}: its gateway {} has the name of a workload or gateway of the folder; rename one",
                auto.spec.labels.values().next().map_or("", String::as_str),
                auto.spec.key
            ));
            continue;
        }
        let loaded =
            mast_config::load_str(&auto.service, &auto.service_file, &LoadOptions::default());
        resources.extend(loaded.resources);
        files.insert(auto.service_file, auto.service);
        specs.insert(auto.spec.key.clone(), auto.spec);
    }
    files
}

fn key_of(namespace: &str, name: &str) -> Key {
    Key {
        namespace: if namespace.is_empty() {
            "default"
        } else {
            namespace
        }
        .to_owned(),
        name: name.to_owned(),
    }
}

/// The workloads to run after a change: the folder's runnable ones, plus the running ones
/// whose definition is now broken (kept until fixed).
pub fn desired(folder: &Folder, running: &BTreeMap<Key, LocalSpec>) -> BTreeMap<Key, LocalSpec> {
    let mut out = folder.specs.clone();
    for (key, spec) in running {
        let kept = folder.invalid.contains(key) || folder.broken_files.contains(spec.file.as_ref());
        if kept && !out.contains_key(key) {
            out.insert(key.clone(), spec.clone());
        }
    }
    out
}
