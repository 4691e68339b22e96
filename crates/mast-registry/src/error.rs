//! Errors of the registry: what can stop a source from starting.
//!
//! Once a source runs, problems with individual files or resources are not errors of this
//! kind: they become [`mast_config::Diagnostic`]s in the store's state.

use std::path::PathBuf;

/// Why a source could not start.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The folder does not exist or cannot be read.
    #[error("cannot open config folder {path}: {source}")]
    Folder {
        /// The folder as given.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The path names something other than a folder.
    #[error("{0} is not a folder")]
    NotAFolder(PathBuf),
    /// The operating system refused to watch the folder (for example, the inotify watch
    /// limit `fs.inotify.max_user_watches` was reached).
    #[error("cannot watch config folder {path}: {source}")]
    Watch {
        /// The folder as given.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: notify::Error,
    },
    /// The thread that applies file changes could not be started.
    #[error("cannot start the config folder watcher thread: {0}")]
    Thread(#[source] std::io::Error),
}
