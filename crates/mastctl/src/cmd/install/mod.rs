//! Installing Mast on Kubernetes, with istioctl's verbs: `manifest generate`, `profile
//! list|dump|diff`, `install`, `upgrade`, `verify-install` and `uninstall`.
//!
//! The input is an `IstioOperator` ([`operator`]: profiles from `manifests/profiles`, `-f`
//! files, `--set` paths), read into [`settings::Settings`] and rendered ([`render`]) into
//! Kubernetes objects; the cluster verbs apply, check or delete them through kube-rs
//! ([`kube`]).

pub mod apply;
mod ca;
mod diff;
pub mod kube;
pub mod manifest;
pub mod operator;
pub mod profile;
pub mod render;
pub mod settings;
pub mod uninstall;
pub mod verify;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_access_log;

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Result;
use serde_json::Value;

/// `-f` and `--set`, shared by every verb that renders.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct InputArgs {
    /// IstioOperator YAML files overlaid on the profile, in order.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    /// Override an IstioOperator value, e.g. `profile=demo`,
    /// `components.egressGateways[0].enabled=true`, `values.global.proxy.image=IMAGE`,
    /// `meshConfig.defaultConfig.tracing.sampling=100` (repeatable).
    #[arg(short = 's', long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

impl InputArgs {
    /// The merged IstioOperator tree, with `revision` (if given) as the last `--set`.
    pub fn tree(&self, revision: Option<&str>) -> Result<Value> {
        let mut sets = self.sets.clone();
        if let Some(r) = revision {
            sets.push(format!("revision={r}"));
        }
        operator::build(&operator::Input {
            files: self.files.clone(),
            sets,
        })
    }
}

/// Asks `question` on stderr and reads y/N from stdin; anything but `y`/`yes` is no.
pub(crate) fn confirm(question: &str) -> bool {
    eprint!("{question} (y/N) ");
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// A multi-threaded runtime for the cluster verbs.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}
