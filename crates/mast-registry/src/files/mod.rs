//! The files source: loads every `.yaml`, `.yml` and `.json` file under a folder
//! (recursively) into a [`ConfigStore`], then watches the folder and applies every
//! create, edit, delete and rename, as one store update per burst of events.
//!
//! How it behaves:
//! - After a file-system event only the affected paths are read again, and a file whose
//!   bytes did not change is not re-applied. Events are debounced: a batch is applied once
//!   no relevant event came for [`FilesOptions::debounce`] (20 ms), and at the latest
//!   [`FilesOptions::max_delay`] (50 ms) after its first event, so an editor's write
//!   through a temp file and a rename becomes one update, well within 100 ms of the write.
//! - Paths are reconciled with the disk rather than interpreted from event kinds: a path
//!   that exists is (re)loaded (a folder is walked), a path that is gone is removed
//!   together with everything under it. So renames within the folder, files and folders
//!   moved in or out, and temp-file-then-rename writes all converge on what is on disk.
//! - A file with a broken document keeps its other documents: a YAML syntax error, an
//!   unknown field or a failed validation costs only the document it is in, which is
//!   reported (see [`crate::store`]).
//! - Hidden entries (names starting with `.`) are not loaded: editors' swap and lock files
//!   live there, and so do the `..data` folders of a Kubernetes ConfigMap mount. A hidden
//!   folder or symlink directly changing (as when the kubelet swaps `..data`) triggers a
//!   rescan of the whole folder, which follows the visible symlinks to their new targets.
//! - If the kernel's event queue overflows, the whole folder is rescanned.
//! - A partially written file may be read while its writer is still writing; the next
//!   event of that write reloads it. Writing through a temp file and a rename avoids the
//!   transient diagnostic.
//!
//! Several folders can feed one store, each started with its own
//! [`FilesOptions::source`] rank; the first folder's definition of a resource wins.
//!
//! The watcher runs on its own thread (no async runtime needed); dropping the
//! [`FilesSourceHandle`] stops it.

mod tracker;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mast_config::LoadOptions;
use notify::event::{AccessKind, AccessMode, MetadataKind, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use crate::error::RegistryError;
use crate::store::ConfigStore;
use tracker::{Batch, Tracker};

/// How the files source loads and batches.
#[derive(Debug, Clone)]
pub struct FilesOptions {
    /// How documents are loaded (the default namespace).
    pub load: LoadOptions,
    /// Quiet time after the last event before a batch is applied.
    pub debounce: Duration,
    /// Longest time from a batch's first event to its application, even if events keep
    /// coming.
    pub max_delay: Duration,
    /// The folder's rank when several folders feed one store (0 for the first): a resource
    /// defined in two folders is taken from the folder of lower rank, and the other
    /// definition is reported as a duplicate.
    pub source: usize,
}

impl Default for FilesOptions {
    fn default() -> Self {
        Self {
            load: LoadOptions::default(),
            debounce: Duration::from_millis(20),
            max_delay: Duration::from_millis(50),
            source: 0,
        }
    }
}

/// The files source. See the module documentation.
#[derive(Debug)]
pub struct FilesSource;

impl FilesSource {
    /// Loads every config file under `dir` into `store` (one update, applied before this
    /// returns), then watches `dir` until the returned handle is dropped. Diagnostics name
    /// files as `dir` joined with their path inside it.
    ///
    /// This blocks while it reads the folder: in async code call it at startup or through
    /// `tokio::task::spawn_blocking`.
    pub fn start(
        dir: impl AsRef<Path>,
        store: ConfigStore,
        opts: FilesOptions,
    ) -> Result<FilesSourceHandle, RegistryError> {
        let shown = dir.as_ref().to_path_buf();
        let root = std::fs::canonicalize(&shown).map_err(|source| RegistryError::Folder {
            path: shown.clone(),
            source,
        })?;
        if !root.is_dir() {
            return Err(RegistryError::NotAFolder(shown));
        }
        let (tx, rx) = mpsc::channel();
        let events = tx.clone();
        let watch_error = |source| RegistryError::Watch {
            path: shown.clone(),
            source,
        };
        let mut watcher = notify::recommended_watcher(move |event| {
            // The worker is gone only when the handle is being dropped.
            let _ = events.send(Msg::Event(event));
        })
        .map_err(watch_error)?;
        // Watch first, then scan: a change made during the scan is seen again, never lost.
        watcher
            .watch(&root, RecursiveMode::Recursive)
            .map_err(watch_error)?;
        let mut tracker =
            Tracker::new(root, shown.clone(), opts.load.clone(), (store, opts.source));
        let state = tracker.initial_load();
        tracing::info!(
            dir = %shown.display(),
            resources = state.resources.len(),
            rejected = state.rejected,
            "config folder loaded; watching it"
        );
        let timing = (opts.debounce, opts.max_delay);
        let worker = std::thread::Builder::new()
            .name("mast-config-files".into())
            .spawn(move || run(&rx, tracker, timing))
            .map_err(RegistryError::Thread)?;
        Ok(FilesSourceHandle {
            dir: shown,
            watcher: Some(watcher),
            stop: tx,
            worker: Some(worker),
        })
    }
}

/// A running files source. Dropping it stops watching: no update is applied after the
/// drop returns.
#[derive(Debug)]
pub struct FilesSourceHandle {
    dir: PathBuf,
    watcher: Option<RecommendedWatcher>,
    stop: Sender<Msg>,
    worker: Option<JoinHandle<()>>,
}

impl FilesSourceHandle {
    /// The folder as it was given to [`FilesSource::start`].
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for FilesSourceHandle {
    fn drop(&mut self) {
        drop(self.watcher.take());
        let _ = self.stop.send(Msg::Stop);
        if let Some(worker) = self.worker.take()
            && worker.join().is_err()
        {
            tracing::error!(dir = %self.dir.display(), "config folder watcher thread panicked");
        }
    }
}

/// What the worker thread receives.
enum Msg {
    Event(notify::Result<Event>),
    Stop,
}

/// The worker loop: wait for a relevant event, gather the burst, apply it.
fn run(rx: &Receiver<Msg>, mut tracker: Tracker, (debounce, max_delay): (Duration, Duration)) {
    loop {
        let mut batch = Batch::default();
        while batch.is_empty() {
            match rx.recv() {
                Ok(Msg::Event(event)) => {
                    add_event(&mut batch, event);
                }
                Ok(Msg::Stop) | Err(_) => return,
            }
        }
        let first = Instant::now();
        let mut last = first;
        loop {
            let deadline = (last + debounce).min(first + max_delay);
            let Some(wait) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            match rx.recv_timeout(wait) {
                Ok(Msg::Event(event)) => {
                    if add_event(&mut batch, event) {
                        last = Instant::now();
                    }
                }
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => break,
            }
        }
        tracker.apply(batch);
        tracing::debug!(
            elapsed_ms = first.elapsed().as_secs_f64() * 1e3,
            "config folder change applied"
        );
    }
}

/// Adds an event's paths to the batch; returns whether the event was relevant.
fn add_event(batch: &mut Batch, event: notify::Result<Event>) -> bool {
    match event {
        Err(e) => {
            tracing::warn!("config folder watch error, rescanning: {e}");
            batch.rescan = true;
            true
        }
        Ok(event) => {
            if event.need_rescan() {
                batch.rescan = true;
                return true;
            }
            if !relevant(&event.kind) {
                return false;
            }
            batch.paths.extend(event.paths);
            true
        }
    }
}

/// Whether an event kind can mean a content change. Opens and reads (our own among them)
/// and access-time updates cannot.
fn relevant(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Other => false,
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        _ => true,
    }
}
