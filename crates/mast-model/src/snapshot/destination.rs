//! DestinationRules indexed and looked up as Istio's push context does
//! (`setDestinationRules`, `destinationRule`, `MostSpecificHostMatch`):
//!
//! - each namespace keeps the rules visible inside it (`exportTo` empty, `*`, `.` or its own
//!   name), and separately the rules it exports to others (all but the private-only ones);
//!   the root namespace also keeps its private-only rules for its own proxies;
//! - rules with a `workloadSelector` are private to their namespace;
//! - rules for the same host in one namespace, with the same `exportTo` and selector, are
//!   merged (subsets appended unless the name repeats; the first traffic policy kept);
//! - lookup: the client namespace's visible rules, then the service namespace's exported
//!   rules, then the root namespace's exported rules, the latter two only when exported to
//!   the client; within a namespace an exact host beats wildcards and the longest wildcard
//!   wins.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use mast_config::networking::DestinationRule;
use mast_core::Hostname;

use super::{Config, MeshSnapshot, SnapshotOptions, selector_matches};

/// One (possibly merged) rule under a host.
#[derive(Debug, Clone)]
struct Entry {
    config: Config<DestinationRule>,
    export_to: BTreeSet<String>,
    selector: Option<BTreeMap<String, String>>,
}

impl Entry {
    /// Whether the rule is exported to `client_ns` (from another namespace).
    fn exported_to(&self, client_ns: &str) -> bool {
        self.export_to.is_empty()
            || self.export_to.contains("*")
            || self.export_to.contains(client_ns)
    }
}

/// The rules of one namespace (or one visibility class of it), by host.
#[derive(Debug, Clone, Default)]
struct DrSet {
    by_host: HashMap<Hostname, Vec<Entry>>,
    /// The wildcard keys of `by_host`, so a lookup does not scan every host.
    wildcards: Vec<Hostname>,
}

impl DrSet {
    /// Adds a rule, merging it into an earlier one with the same host, exportTo and selector.
    fn add(&mut self, host: Hostname, entry: Entry) {
        if host.is_wildcard() && !self.by_host.contains_key(&host) {
            self.wildcards.push(host.clone());
        }
        let entries = self.by_host.entry(host).or_default();
        let same = entries
            .iter_mut()
            .find(|e| e.export_to == entry.export_to && e.selector == entry.selector);
        match same {
            Some(existing) => merge(Arc::make_mut(&mut existing.config.spec), &entry.config.spec),
            None => entries.push(entry),
        }
    }

    /// The entries of the most specific host covering `host` that has an entry `keep`
    /// accepts: the host itself, else the longest wildcard whose suffix it has. The caller
    /// filters the entries with `keep` again.
    fn best<'a>(&'a self, host: &Hostname, keep: impl Fn(&Entry) -> bool) -> &'a [Entry] {
        let any_kept = |entries: &&'a Vec<Entry>| entries.iter().any(&keep);
        if let Some(exact) = self.by_host.get(host).filter(any_kept) {
            return exact;
        }
        self.wildcards
            .iter()
            .filter(|h| host.subset_of(h))
            .filter_map(|h| self.by_host.get(h).filter(any_kept).map(|e| (h, e)))
            .max_by_key(|(h, _)| h.as_str().len())
            .map_or(&[], |(_, e)| e.as_slice())
    }
}

/// Adds `from`'s subsets and, when `into` has none, its traffic policy.
fn merge(into: &mut DestinationRule, from: &DestinationRule) {
    for subset in &from.subsets {
        if !into.subsets.iter().any(|s| s.name == subset.name) {
            into.subsets.push(subset.clone());
        }
    }
    if into.traffic_policy.is_none() {
        into.traffic_policy.clone_from(&from.traffic_policy);
    }
}

/// Istio's destination-rule index.
#[derive(Debug, Clone, Default)]
pub(crate) struct DrIndex {
    local: HashMap<String, DrSet>,
    exported: HashMap<String, DrSet>,
    root_local: DrSet,
}

impl DrIndex {
    /// Indexes `rules` (sorted by namespace then name: earlier rules win merges).
    pub(crate) fn build(rules: &[Config<DestinationRule>], options: &SnapshotOptions) -> Self {
        let mut index = DrIndex::default();
        for c in rules {
            let ns = c.namespace.as_str();
            let host =
                Hostname::new_unchecked(c.spec.host.as_str()).resolve(ns, &options.domain_suffix);
            let mut spec = (*c.spec).clone();
            spec.host = host.to_string();
            let selector = c
                .spec
                .workload_selector
                .as_ref()
                .map(|s| s.match_labels.clone());
            let export_to: BTreeSet<String> = match selector {
                Some(_) => BTreeSet::from([".".to_owned()]),
                None => c.spec.export_to.iter().cloned().collect(),
            };
            let own = |e: &BTreeSet<String>| e.contains(".") || e.contains(ns);
            let visible_locally =
                export_to.is_empty() || export_to.contains("*") || own(&export_to);
            let private_only = export_to.len() == 1 && own(&export_to);
            let entry = Entry {
                config: Config {
                    name: c.name.clone(),
                    namespace: c.namespace.clone(),
                    spec: Arc::new(spec),
                },
                export_to,
                selector,
            };
            if visible_locally {
                index
                    .local
                    .entry(ns.to_owned())
                    .or_default()
                    .add(host.clone(), entry.clone());
            }
            if !private_only {
                index
                    .exported
                    .entry(ns.to_owned())
                    .or_default()
                    .add(host, entry);
            } else if ns == options.root_namespace {
                index.root_local.add(host, entry);
            }
        }
        index
    }
}

/// Finds the rule for `host` seen from `client_ns`; `labels` are the proxy's, when known
/// (without them, rules with a workload selector are ignored).
pub(super) fn lookup<'a>(
    snap: &'a MeshSnapshot,
    client_ns: &str,
    labels: Option<&BTreeMap<String, String>>,
    host: &Hostname,
) -> Option<&'a Config<DestinationRule>> {
    let index = &snap.dr_index;
    let root = snap.options.root_namespace.as_str();
    let local = if client_ns == root {
        Some(&index.root_local)
    } else {
        index.local.get(client_ns)
    };
    let keep_local = |e: &Entry| labels.is_some() || e.selector.is_none();
    let found = local.map_or(&[][..], |set| set.best(host, keep_local));
    if !found.is_empty() {
        let chosen = match labels {
            Some(l) => found
                .iter()
                .find(|e| e.selector.as_ref().is_some_and(|s| selector_matches(s, l)))
                .or_else(|| found.iter().find(|e| e.selector.is_none())),
            None => found.iter().find(|e| keep_local(e)),
        };
        return chosen.map(|e| &e.config);
    }
    let exported_from = |ns: &str| -> Option<&'a Config<DestinationRule>> {
        let set = index.exported.get(ns)?;
        set.best(host, |_| true)
            .iter()
            .find(|e| e.exported_to(client_ns))
            .map(|e| &e.config)
    };
    let service_ns = snap.service(host).map(|s| s.namespace.as_str());
    service_ns
        .and_then(exported_from)
        .or_else(|| exported_from(root))
}
