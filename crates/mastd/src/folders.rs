//! The watched config folders: one files source per `--config-dir`, ranked in the order
//! given (a resource defined in two folders is reported as a duplicate and the first
//! folder's definition wins), and what `/debug/configz` says about each folder.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use mast_config::LoadOptions;
use mast_registry::{ConfigStore, FilesOptions, FilesSource, FilesSourceHandle};
use serde_json::{Value, json};

/// The running files sources, one per folder. Dropping it stops watching.
#[derive(Debug)]
pub struct Folders {
    sources: Vec<FilesSourceHandle>,
}

impl Folders {
    /// Loads every folder into `store` (in order, each before the next starts) and watches
    /// them. Fails when a folder cannot be watched, or when folders repeat or overlap
    /// (their files would all be duplicates). Blocks while reading the folders.
    pub fn start(
        dirs: &[PathBuf],
        store: &ConfigStore,
        load: &LoadOptions,
    ) -> anyhow::Result<Self> {
        if dirs.is_empty() {
            bail!("give at least one --config-dir");
        }
        check_overlaps(dirs)?;
        let mut sources = Vec::with_capacity(dirs.len());
        for (source, dir) in dirs.iter().enumerate() {
            let opts = FilesOptions {
                load: load.clone(),
                source,
                ..FilesOptions::default()
            };
            let handle = FilesSource::start(dir, store.clone(), opts)
                .with_context(|| format!("watching the config folder {}", dir.display()))?;
            sources.push(handle);
        }
        Ok(Self { sources })
    }

    /// The folders as given, in rank order.
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.sources.iter().map(|s| s.dir().to_path_buf()).collect()
    }
}

/// Each folder with the files loaded from it, for `/debug/configz`.
pub fn describe(dirs: &[PathBuf], store: &ConfigStore) -> Vec<Value> {
    dirs.iter()
        .enumerate()
        .map(|(rank, dir)| {
            json!({
                "dir": dir.display().to_string(),
                "rank": rank,
                "files": store.files_of(rank),
            })
        })
        .collect()
}

/// Refuses a folder given twice, or one folder inside another.
fn check_overlaps(dirs: &[PathBuf]) -> anyhow::Result<()> {
    let canonical: Vec<PathBuf> = dirs
        .iter()
        .map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| d.clone()))
        .collect();
    for (i, a) in canonical.iter().enumerate() {
        for (j, b) in canonical.iter().enumerate().skip(i + 1) {
            if a == b {
                bail!(
                    "config folder {} is given twice (also as {})",
                    dirs[i].display(),
                    dirs[j].display()
                );
            }
            if b.starts_with(a) || a.starts_with(b) {
                let (outer, inner) = if b.starts_with(a) { (i, j) } else { (j, i) };
                bail!(
                    "config folders overlap: {} is inside {}; give folders that do not contain each other",
                    dirs[inner].display(),
                    dirs[outer].display()
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use mast_test_support::TempDir;

    const VS: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\nspec:\n  hosts: [HOST]\n  http:\n  - route:\n    - destination: {host: HOST}\n";

    #[test]
    fn two_folders_first_wins_and_configz_lists_files() {
        let (a, b) = (
            TempDir::new("mastd-a").unwrap(),
            TempDir::new("mastd-b").unwrap(),
        );
        std::fs::write(a.join("vs.yaml"), VS.replace("HOST", "first")).unwrap();
        std::fs::write(b.join("vs.yaml"), VS.replace("HOST", "second")).unwrap();
        std::fs::write(b.join("we.yaml"), "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: w}\nspec: {address: 127.0.0.1}\n").unwrap();
        let store = ConfigStore::new();
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        let folders = Folders::start(&dirs, &store, &LoadOptions::default()).unwrap();
        let state = store.current();
        let vs = state.get("VirtualService", "default", "reviews").unwrap();
        assert_eq!(vs.as_virtual_service().unwrap().hosts, ["first"]);
        assert!(state.get("WorkloadEntry", "default", "w").is_some());
        let errors: Vec<String> = state.errors().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("duplicate VirtualService default/reviews"),
            "{errors:?}"
        );
        let described = describe(&folders.dirs(), &store);
        assert_eq!(described[0]["dir"], a.path().display().to_string());
        assert_eq!(described[1]["files"].as_array().unwrap().len(), 2);
        assert_eq!(
            described[0]["files"][0],
            a.join("vs.yaml").display().to_string()
        );
    }

    #[test]
    fn repeated_or_nested_folders_are_refused() {
        let a = TempDir::new("mastd-nest").unwrap();
        std::fs::create_dir_all(a.join("inner")).unwrap();
        let store = ConfigStore::new();
        let opts = LoadOptions::default();
        let twice = vec![a.path().to_path_buf(), a.path().to_path_buf()];
        let err = Folders::start(&twice, &store, &opts).unwrap_err();
        assert!(err.to_string().contains("given twice"), "{err}");
        let nested = vec![a.join("inner"), a.path().to_path_buf()];
        let err = Folders::start(&nested, &store, &opts).unwrap_err();
        assert!(err.to_string().contains("overlap"), "{err}");
        let missing = vec![a.join("missing")];
        let err = format!("{:#}", Folders::start(&missing, &store, &opts).unwrap_err());
        assert!(err.contains("watching the config folder"), "{err}");
    }
}
