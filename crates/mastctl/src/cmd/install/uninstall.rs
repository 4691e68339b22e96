//! `mastctl uninstall`: deletes what install applied, found by its labels
//! (`install.operator.istio.io/owning-resource=mastctl` and `istio.io/rev=<revision>`), in
//! reverse apply order. Objects every revision shares (CRDs, the namespace, the mesh CA) go
//! only with `--purge`, which removes every revision.

use anyhow::Result;

use super::kube::{self as k, KubeArgs};
use super::{confirm, runtime};

/// Flags of `mastctl uninstall`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    kube: KubeArgs,
    /// The control plane revision to remove (default: the default revision).
    #[arg(short = 'r', long)]
    revision: Option<String>,
    /// Remove every revision and the shared objects too (CRDs, namespace, mesh CA).
    #[arg(long)]
    purge: bool,
    /// The control plane namespace.
    #[arg(
        short = 'i',
        long = "istio-namespace",
        alias = "istioNamespace",
        default_value = "mast-system"
    )]
    namespace: String,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long = "skip-confirmation")]
    yes: bool,
}

/// Runs `mastctl uninstall`.
pub fn run(args: &Args) -> Result<i32> {
    let rev = args.revision.as_deref().unwrap_or("default");
    let question = if args.purge {
        "All Mast resources will be pruned from the cluster\nProceed?".to_string()
    } else {
        format!("All Mast resources of revision {rev:?} will be removed from the cluster\nProceed?")
    };
    if !args.yes && !confirm(&question) {
        println!("Cancelled.");
        return Ok(crate::exit::OK);
    }
    runtime()?.block_on(uninstall(args, rev))
}

/// The label selector of what `uninstall` removes.
pub fn selector(revision: &str, purge: bool) -> String {
    let owned = "install.operator.istio.io/owning-resource=mastctl";
    if purge {
        owned.to_string()
    } else {
        format!("{owned},istio.io/rev={revision}")
    }
}

async fn uninstall(args: &Args, rev: &str) -> Result<i32> {
    let client = k::client(&args.kube).await?;
    let sel = selector(rev, args.purge);
    let mut removed = 0;
    for kind in k::kinds().rev() {
        for o in k::list(&client, kind, &args.namespace, &sel).await? {
            let name = o.metadata.name.clone().unwrap_or_default();
            let ns = o.metadata.namespace.clone().unwrap_or_default();
            if k::delete(&client, kind, &ns, &name).await? {
                removed += 1;
                if ns.is_empty() {
                    println!("  Removed {kind}::{name}.");
                } else {
                    println!("  Removed {kind}:{ns}:{name}.");
                }
            }
        }
    }
    if removed == 0 {
        println!("No Mast resources of revision {rev:?} found.");
    }
    println!("✔ Uninstall complete");
    Ok(crate::exit::OK)
}
