//! Temporary folders for tests (bootstraps, logs, ports files), removed when dropped
//! unless the test asks to keep them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A fresh folder under the system temp dir, deleted (with its contents) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    /// Creates `<tmp>/<prefix>-<pid>-<time>-<n>`.
    pub fn new(prefix: &str) -> std::io::Result<Self> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{}-{nanos}-{n}", std::process::id());
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path)?;
        Ok(Self { path, keep: false })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the folder.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Keeps the folder after drop (to read logs after a failure); returns its path.
    pub fn keep(&mut self) -> PathBuf {
        self.keep = true;
        self.path.clone()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // `MAST_KEEP_FAILED=1`: a failed test's folders (logs, run state) stay for reading.
        if std::thread::panicking() && std::env::var_os("MAST_KEEP_FAILED").is_some() {
            eprintln!("kept after the failure: {}", self.path.display());
            return;
        }
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_and_removed() {
        let dir = TempDir::new("mast-ts").unwrap();
        let path = dir.path().to_path_buf();
        std::fs::write(dir.join("f"), "x").unwrap();
        assert!(path.join("f").is_file());
        drop(dir);
        assert!(!path.exists());
    }
}
