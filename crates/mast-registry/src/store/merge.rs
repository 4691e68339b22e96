//! Validation of one file's resources and the merge of all files into a [`StoreState`]:
//! which resources are valid, which are duplicates, and the counts for metrics.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use mast_config::validate::validate;
use mast_config::{Diagnostic, Level, LoadOutput, Origin, Resource};

use super::StoreState;

/// Where a file sorts when merging: its source's rank, then its name.
pub(super) type FileKey = (usize, String);

/// One file after validation.
#[derive(Debug, Default)]
pub(super) struct FileEntry {
    /// Resources that loaded and have no validation error, in file order.
    pub(super) valid: Vec<Resource>,
    /// Load failures and validation messages, in line order.
    pub(super) diagnostics: Vec<Diagnostic>,
    /// Documents that failed to load plus resources with validation errors.
    pub(super) rejected: usize,
}

impl FileEntry {
    /// Validates every loaded resource of a file and keeps the valid ones.
    pub(super) fn new(loaded: LoadOutput) -> Self {
        let mut entry = FileEntry {
            rejected: loaded
                .diagnostics
                .iter()
                .filter(|d| d.level == Level::Error)
                .count(),
            diagnostics: loaded.diagnostics,
            valid: Vec::new(),
        };
        for resource in loaded.resources {
            let report = validate(&resource);
            let ok = report.is_valid();
            entry.diagnostics.extend(report.into_diagnostics(&resource));
            if ok {
                entry.valid.push(resource);
            } else {
                entry.rejected += 1;
            }
        }
        entry
            .diagnostics
            .sort_by_key(|d| d.origin.as_ref().map_or(0, |o| o.line));
        entry
    }
}

/// What identifies a resource: API group, kind, namespace, name. Two API versions of the
/// same group are the same resource.
type Identity<'a> = (&'a str, &'a str, &'a str, &'a str);

fn identity(r: &Resource) -> Identity<'_> {
    (group(r), &r.kind, r.namespace(), r.name())
}

fn group(r: &Resource) -> &str {
    r.api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// All files merged.
#[derive(Debug, Default)]
pub(super) struct Merged {
    resources: Vec<Resource>,
    diagnostics: Vec<Diagnostic>,
    rejected: usize,
    /// The duplicate diagnostics alone (also in `diagnostics`).
    pub(super) duplicates: Vec<Diagnostic>,
}

impl Merged {
    /// Merges files in (source rank, name) order; the first definition of a resource wins.
    pub(super) fn of(files: &BTreeMap<FileKey, FileEntry>) -> Self {
        let mut out = Merged::default();
        let mut seen: HashMap<Identity, &Origin> = HashMap::new();
        for entry in files.values() {
            out.diagnostics.extend(entry.diagnostics.iter().cloned());
            out.rejected += entry.rejected;
            for r in &entry.valid {
                match seen.entry(identity(r)) {
                    Entry::Occupied(first) => {
                        let d = duplicate(r, first.get());
                        out.duplicates.push(d.clone());
                        out.diagnostics.push(d);
                        out.rejected += 1;
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(&r.origin);
                        out.resources.push(r.clone());
                    }
                }
            }
        }
        out.resources.sort_by(|a, b| {
            (&a.kind, a.namespace(), a.name(), group(a)).cmp(&(
                &b.kind,
                b.namespace(),
                b.name(),
                group(b),
            ))
        });
        out
    }

    /// The state to publish as `generation`.
    pub(super) fn into_state(self, generation: u64) -> StoreState {
        let mut by_kind = BTreeMap::new();
        for r in &self.resources {
            *by_kind.entry(r.kind.clone()).or_insert(0) += 1;
        }
        StoreState {
            generation,
            resources: self.resources,
            diagnostics: self.diagnostics,
            rejected: self.rejected,
            by_kind,
        }
    }
}

/// The error for a second definition of a resource first defined at `first`.
fn duplicate(r: &Resource, first: &Origin) -> Diagnostic {
    Diagnostic {
        level: Level::Error,
        origin: Some(r.origin.clone()),
        resource: Some(r.reference()),
        field: None,
        message: format!(
            "duplicate {}: also defined at {first}, which wins; this definition in {} is ignored",
            r.reference(),
            r.origin
        ),
    }
}
