//! What the files source knows about the folder: the config files it has loaded (with a
//! hash of their bytes) and how a batch of changed paths turns into store changes by
//! comparing with the disk.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{DefaultHasher, Hasher};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use mast_config::load::EXTENSIONS;
use mast_config::{Diagnostic, Level, LoadOptions, LoadOutput, Origin, load_str};

use crate::store::{Change, ConfigStore, StoreState};

/// The paths touched by a burst of events.
#[derive(Debug, Default)]
pub(super) struct Batch {
    /// Paths named by the events (files or folders, existing or gone).
    pub(super) paths: BTreeSet<PathBuf>,
    /// Whether the whole folder must be read again (event queue overflow, watch error).
    pub(super) rescan: bool,
}

impl Batch {
    /// Whether there is nothing to do.
    pub(super) fn is_empty(&self) -> bool {
        !self.rescan && self.paths.is_empty()
    }
}

/// The loaded files and the way to the store.
pub(super) struct Tracker {
    /// The folder, canonical (event paths start with it).
    root: PathBuf,
    /// The folder as the user gave it (file names in diagnostics start with it).
    shown: PathBuf,
    load: LoadOptions,
    store: ConfigStore,
    /// The folder's rank among the sources of the store.
    source: usize,
    /// Every config file loaded, with the hash of its bytes (`None`: could not be read).
    known: HashMap<PathBuf, Option<u64>>,
}

impl Tracker {
    pub(super) fn new(
        root: PathBuf,
        shown: PathBuf,
        load: LoadOptions,
        (store, source): (ConfigStore, usize),
    ) -> Self {
        Self {
            root,
            shown,
            load,
            store,
            source,
            known: HashMap::new(),
        }
    }

    /// Loads the whole folder as one store update.
    pub(super) fn initial_load(&mut self) -> Arc<StoreState> {
        let changes = self.sync_under(&self.root.clone());
        self.store.update_source(self.source, changes)
    }

    /// Applies a batch as one store update (none when nothing changed on disk).
    pub(super) fn apply(&mut self, batch: Batch) {
        let changes = if batch.rescan || batch.paths.iter().any(|p| self.triggers_rescan(p)) {
            self.sync_under(&self.root.clone())
        } else {
            let mut changes = Vec::new();
            for path in &batch.paths {
                changes.extend(self.changes_for(path));
            }
            changes
        };
        if !changes.is_empty() {
            self.store.update_source(self.source, changes);
        }
    }

    /// What one visible path's current state on disk means for the store.
    fn changes_for(&mut self, path: &Path) -> Vec<Change> {
        if self.hidden(path).is_none_or(|hidden| hidden) {
            return Vec::new();
        }
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => self.sync_under(path),
            Ok(_) if is_config_file(path) => self.reload(path).into_iter().collect(),
            Ok(_) => Vec::new(),
            Err(_) => self.forget_under(path),
        }
    }

    /// `Some(true)` when a component of `path` below the root is hidden; `None` when the
    /// path is outside the folder.
    fn hidden(&self, path: &Path) -> Option<bool> {
        let rel = path.strip_prefix(&self.root).ok()?;
        Some(rel.components().any(is_hidden))
    }

    /// A hidden folder or symlink that is itself the changed entry, under visible folders
    /// (Kubernetes' `..data` swap, say): its targets may have changed under visible names.
    fn triggers_rescan(&self, path: &Path) -> bool {
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return false;
        };
        let mut comps: Vec<Component> = rel.components().collect();
        let Some(last) = comps.pop() else {
            return false;
        };
        is_hidden(last)
            && !comps.into_iter().any(is_hidden)
            && std::fs::symlink_metadata(path)
                .is_ok_and(|m| m.is_dir() || m.file_type().is_symlink())
    }

    /// Reloads every config file under `dir` and forgets the known ones that are gone.
    fn sync_under(&mut self, dir: &Path) -> Vec<Change> {
        let mut found = BTreeSet::new();
        walk(dir, &mut found, &mut HashSet::new());
        let mut changes: Vec<Change> = found.iter().filter_map(|p| self.reload(p)).collect();
        let gone: Vec<PathBuf> = self
            .known
            .keys()
            .filter(|k| k.starts_with(dir) && !found.contains(*k))
            .cloned()
            .collect();
        changes.extend(gone.iter().filter_map(|p| self.forget(p)));
        changes
    }

    /// Forgets `path` and every known file under it.
    fn forget_under(&mut self, path: &Path) -> Vec<Change> {
        let gone: Vec<PathBuf> = self
            .known
            .keys()
            .filter(|k| k.starts_with(path))
            .cloned()
            .collect();
        gone.iter().filter_map(|p| self.forget(p)).collect()
    }

    fn forget(&mut self, path: &Path) -> Option<Change> {
        self.known.remove(path).map(|_| Change::Remove {
            file: self.name(path),
        })
    }

    /// Reads a file; a change when its bytes differ from what was last loaded.
    fn reload(&mut self, path: &Path) -> Option<Change> {
        let name = self.name(path);
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return self.forget(path),
            Err(e) => {
                self.known.insert(path.to_path_buf(), None);
                let loaded = file_error(&name, format!("cannot read file: {e}"));
                return Some(Change::Set { file: name, loaded });
            }
        };
        let mut hasher = DefaultHasher::new();
        hasher.write(&bytes);
        let hash = Some(hasher.finish());
        if self.known.get(path) == Some(&hash) {
            return None;
        }
        self.known.insert(path.to_path_buf(), hash);
        let loaded = match String::from_utf8(bytes) {
            Ok(text) => load_str(&text, &name, &self.load),
            Err(_) => file_error(&name, "cannot read file: it is not UTF-8 text".into()),
        };
        Some(Change::Set { file: name, loaded })
    }

    /// The name of a file in diagnostics: the folder as given, joined with the file's path
    /// inside it.
    fn name(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(rel) => self.shown.join(rel).display().to_string(),
            Err(_) => path.display().to_string(),
        }
    }
}

/// Collects the visible config files under `dir`, following symlinks (each folder once).
fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>, visited: &mut HashSet<PathBuf>) {
    let Ok(canonical) = std::fs::canonicalize(dir) else {
        return;
    };
    if !visited.insert(canonical) {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), "cannot list config folder: {e}");
            return;
        }
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => walk(&path, out, visited),
            Ok(meta) if meta.is_file() && is_config_file(&path) => {
                out.insert(path);
            }
            _ => {}
        }
    }
}

fn is_hidden(c: Component) -> bool {
    matches!(c, Component::Normal(name) if name.to_string_lossy().starts_with('.'))
}

fn is_config_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e))
}

fn file_error(file: &str, message: String) -> LoadOutput {
    LoadOutput {
        resources: Vec::new(),
        diagnostics: vec![Diagnostic {
            level: Level::Error,
            origin: Some(Origin {
                file: file.into(),
                line: 0,
            }),
            resource: None,
            field: None,
            message,
        }],
    }
}
