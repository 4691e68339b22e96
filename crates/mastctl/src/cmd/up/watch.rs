//! Noticing edits to the folder: a cheap fingerprint (every file's path, size and
//! modification time, recursively) compared on each poll, so a change is seen within one
//! poll interval without an inotify watch per folder.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// How often the folder is checked.
pub const POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// The folder's last seen fingerprint.
pub struct Watch {
    dir: PathBuf,
    last: Vec<(PathBuf, u64, Option<SystemTime>)>,
}

impl Watch {
    /// Starts watching `dir` from its current content.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            last: fingerprint(dir),
        }
    }

    /// Whether the folder changed since the last call.
    pub fn changed(&mut self) -> bool {
        let now = fingerprint(&self.dir);
        if now == self.last {
            return false;
        }
        self.last = now;
        true
    }
}

fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    // Bounded: a folder of config is small; deep trees are cut off.
    while let Some(d) = stack.pop() {
        if out.len() > 10_000 {
            break;
        }
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path(), meta.len(), meta.modified().ok()));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_added_changed_and_removed_files() {
        let dir = std::env::temp_dir().join(format!("mast-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut w = Watch::new(&dir);
        assert!(!w.changed());
        std::fs::write(dir.join("a.yaml"), "x").unwrap();
        assert!(w.changed());
        assert!(!w.changed());
        std::fs::write(dir.join("a.yaml"), "xy").unwrap();
        assert!(w.changed());
        std::fs::remove_file(dir.join("a.yaml")).unwrap();
        assert!(w.changed());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
