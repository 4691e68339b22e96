//! Reloading a CA directory when its files change (after `mastd ca rotate-root`, or when an
//! operator replaces plug-in `cacerts`): a poll of the files' sizes and modification times,
//! so it works on every file system and with Kubernetes' symlink-swapped secret volumes.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;

use crate::authority::{
    CA_CERT_FILE, CA_KEY_FILE, CERT_CHAIN_FILE, CaOptions, CertificateAuthority, ROOT_CERT_FILE,
};
use crate::server::SharedCa;

type Stamp = Vec<Option<(u64, SystemTime)>>;

fn stamp(dir: &Path) -> Stamp {
    [CA_KEY_FILE, CA_CERT_FILE, ROOT_CERT_FILE, CERT_CHAIN_FILE]
        .iter()
        .map(|f| {
            std::fs::metadata(dir.join(f))
                .ok()
                .map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
        })
        .collect()
}

/// Polls `dir` every `interval`; when its files change, loads it again and swaps the new CA
/// into `shared`. A directory that fails to load (e.g. caught between two file writes) is
/// logged and retried at the next change or poll; the old CA keeps signing meanwhile.
pub fn spawn_reloader(
    shared: SharedCa,
    dir: PathBuf,
    options: CaOptions,
    interval: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = stamp(&dir);
        let mut failed = false;
        loop {
            tokio::time::sleep(interval).await;
            let now = stamp(&dir);
            if now == last && !failed {
                continue;
            }
            last = now;
            let (d, o) = (dir.clone(), options.clone());
            let loaded =
                tokio::task::spawn_blocking(move || CertificateAuthority::load_dir(&d, o)).await;
            match loaded {
                Ok(Ok(ca)) => {
                    tracing::info!(dir = %dir.display(), "CA directory changed: reloaded");
                    shared.set(ca);
                    failed = false;
                }
                Ok(Err(e)) => {
                    if !failed {
                        tracing::warn!(
                            "CA directory changed but cannot be loaded (keeping the previous CA): {e}"
                        );
                    }
                    failed = true;
                }
                Err(e) => tracing::warn!("CA reload task failed: {e}"),
            }
        }
    })
}
