//! The config store: the current valid resources of every source file, the diagnostics
//! about them, and the publication of each new state through a `tokio::sync::watch`
//! channel.
//!
//! Sources hand the store whole files ([`Change::Set`] with what
//! [`mast_config::load_str`] produced, or [`Change::Remove`]); the store validates each
//! resource with [`mast_config::validate::validate`], merges all files and publishes one
//! immutable [`StoreState`] per batch of changes. Rules:
//! - a document that fails to load, or a resource whose validation reports an error, is
//!   left out and reported; validation warnings keep the resource;
//! - the good documents of a file stay served when another document of the same file is
//!   broken (even a YAML syntax error only costs the document it is in);
//! - the same resource (API group, kind, namespace, name) defined twice: the definition in
//!   the source of lowest rank (see [`ConfigStore::update_source`]; several watched folders
//!   feed one store), then in the file whose name sorts first, then the earlier one in that
//!   file wins; the other is left out and reported as an error naming both places.

mod merge;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use mast_config::{Diagnostic, Level, LoadOutput, Resource};
use parking_lot::Mutex;
use tokio::sync::watch;

use merge::{FileEntry, FileKey, Merged};

/// One published state of the store. Immutable: a change publishes a new one.
#[derive(Debug, Clone, Default)]
pub struct StoreState {
    /// Increases by one with every published change; 0 before the first.
    pub generation: u64,
    /// The valid resources, sorted by kind, namespace, name (then API group).
    pub resources: Vec<Resource>,
    /// Every message about the current files: load failures, validation errors and
    /// warnings, duplicates; in file-name order, then line order within a file.
    pub diagnostics: Vec<Diagnostic>,
    /// How many resources are left out: documents that failed to load (a file that cannot
    /// be read counts as one), resources with validation errors, and duplicates.
    pub rejected: usize,
    /// How many valid resources there are of each kind (`kind` as written, e.g.
    /// `VirtualService`), for metrics.
    pub by_kind: BTreeMap<String, usize>,
}

impl StoreState {
    /// How many valid resources of `kind` there are.
    pub fn count(&self, kind: &str) -> usize {
        self.by_kind.get(kind).copied().unwrap_or(0)
    }

    /// The error-level diagnostics (each one left something out).
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.level == Level::Error)
    }

    /// The valid resource with this kind, namespace and name, if any.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<&Resource> {
        self.resources
            .iter()
            .find(|r| r.kind == kind && r.namespace() == namespace && r.name() == name)
    }
}

/// A change to one source file.
#[derive(Debug)]
pub enum Change {
    /// The file now holds what loading it produced (replacing whatever it held before).
    Set {
        /// The file's name, as used in diagnostics; it also orders files for duplicates.
        file: String,
        /// What [`mast_config::load_str`] produced for the file's current content.
        loaded: LoadOutput,
    },
    /// The file is gone: its resources and diagnostics go with it.
    Remove {
        /// The file's name.
        file: String,
    },
}

/// The config store. Cheap to clone: clones share the same state.
#[derive(Debug, Clone)]
pub struct ConfigStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    inner: Mutex<Inner>,
    tx: watch::Sender<Arc<StoreState>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Every file by (source rank, name): the merge order.
    files: BTreeMap<FileKey, FileEntry>,
    /// The duplicate diagnostics of the last state, to log only new ones.
    duplicates: Vec<Diagnostic>,
}

impl Default for ConfigStore {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigStore {
    /// An empty store (generation 0, no resources).
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(Arc::new(StoreState::default()));
        Self {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner::default()),
                tx,
            }),
        }
    }

    /// A receiver that sees every state published from now on (and the current one).
    pub fn subscribe(&self) -> watch::Receiver<Arc<StoreState>> {
        self.shared.tx.subscribe()
    }

    /// The current state.
    pub fn current(&self) -> Arc<StoreState> {
        self.shared.tx.borrow().clone()
    }

    /// The names of the files the store holds, by source rank then name.
    pub fn files(&self) -> Vec<String> {
        self.shared
            .inner
            .lock()
            .files
            .keys()
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// The names of the files one source (see [`ConfigStore::update_source`]) holds, sorted.
    pub fn files_of(&self, source: usize) -> Vec<String> {
        self.shared
            .inner
            .lock()
            .files
            .keys()
            .filter(|(s, _)| *s == source)
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// Sets one file's content; see [`ConfigStore::update`].
    pub fn set_file(&self, file: impl Into<String>, loaded: LoadOutput) -> Arc<StoreState> {
        self.update([Change::Set {
            file: file.into(),
            loaded,
        }])
    }

    /// Removes one file; see [`ConfigStore::update`].
    pub fn remove_file(&self, file: impl Into<String>) -> Arc<StoreState> {
        self.update([Change::Remove { file: file.into() }])
    }

    /// Applies a batch of changes to the files of source 0; see
    /// [`ConfigStore::update_source`].
    pub fn update(&self, changes: impl IntoIterator<Item = Change>) -> Arc<StoreState> {
        self.update_source(0, changes)
    }

    /// Applies a batch of changes to the files of one source and publishes one new state,
    /// which it returns. `source` ranks the source among those feeding the store (one per
    /// watched folder): a resource defined by two sources is taken from the lower rank.
    /// Nothing is published (and the current state is returned) when the batch changes
    /// nothing, such as removing a file the store does not hold. Rejected resources and
    /// new duplicates are logged once here, with `tracing::warn!`.
    pub fn update_source(
        &self,
        source: usize,
        changes: impl IntoIterator<Item = Change>,
    ) -> Arc<StoreState> {
        // Validation runs before taking the lock.
        let prepared: Vec<(String, Option<FileEntry>)> = changes
            .into_iter()
            .map(|c| match c {
                Change::Set { file, loaded } => (file, Some(FileEntry::new(loaded))),
                Change::Remove { file } => (file, None),
            })
            .collect();
        let mut inner = self.shared.inner.lock();
        let mut changed = false;
        for (file, entry) in prepared {
            match entry {
                Some(entry) => {
                    log_file(&file, &entry);
                    inner.files.insert((source, file), entry);
                    changed = true;
                }
                None => changed |= inner.files.remove(&(source, file)).is_some(),
            }
        }
        if !changed {
            return self.current();
        }
        let merged = Merged::of(&inner.files);
        for d in &merged.duplicates {
            if !inner.duplicates.contains(d) {
                tracing::warn!("rejected: {d}");
            }
        }
        inner.duplicates.clone_from(&merged.duplicates);
        let generation = self.shared.tx.borrow().generation + 1;
        let state = Arc::new(merged.into_state(generation));
        tracing::debug!(
            generation,
            resources = state.resources.len(),
            rejected = state.rejected,
            "config store updated"
        );
        let previous = self.shared.tx.send_replace(state.clone());
        drop(inner);
        // The previous state is freed here, outside the lock, unless a subscriber holds it.
        drop(previous);
        state
    }
}

/// Logs what a newly set file rejects (once per change of that file).
fn log_file(file: &str, entry: &FileEntry) {
    for d in &entry.diagnostics {
        match d.level {
            Level::Error => tracing::warn!("rejected: {d}"),
            Level::Warning => tracing::info!("warning: {d}"),
            Level::Info => tracing::debug!("{d}"),
        }
    }
    tracing::debug!(
        file,
        valid = entry.valid.len(),
        rejected = entry.rejected,
        "config file loaded"
    );
}
