//! `mastctl verify-install`: renders what install would apply (same `-f`/`--set`/
//! `--revision`) and checks that each object exists in the cluster and each Deployment is
//! available, printing istioctl's per-object `✔ Kind: name.namespace checked successfully`
//! lines and a summary. Exit 1 when anything is missing or not ready.

use anyhow::Result;

use super::kube::{self as k, KubeArgs};
use super::render::{Object, render};
use super::settings::Settings;
use super::{InputArgs, runtime};

/// Flags of `mastctl verify-install`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    kube: KubeArgs,
    /// The control plane revision to verify.
    #[arg(short = 'r', long)]
    revision: Option<String>,
}

/// Runs `mastctl verify-install`.
pub fn run(args: &Args) -> Result<i32> {
    let settings = Settings::from_tree(&args.input.tree(args.revision.as_deref())?)?;
    let objects = render(&settings, None);
    runtime()?.block_on(verify(args, &objects))
}

fn label(o: &Object) -> String {
    match o.namespace() {
        Some(ns) => format!("{}: {}.{}", o.kind(), o.name(), ns),
        None => format!("{}: {}", o.kind(), o.name()),
    }
}

async fn verify(args: &Args, objects: &[Object]) -> Result<i32> {
    let client = k::client(&args.kube).await?;
    let (mut failed, mut crds, mut deployments) = (0usize, 0usize, 0usize);
    for o in objects {
        let found = k::get(
            &client,
            o.kind(),
            o.namespace().unwrap_or_default(),
            o.name(),
        )
        .await?;
        let problem = match found {
            None => Some("not found".to_string()),
            Some(obj) if o.kind() == "Deployment" => {
                deployments += 1;
                k::deployment_pending(&serde_json::to_value(&obj)?)
            }
            Some(_) => {
                crds += usize::from(o.kind() == "CustomResourceDefinition");
                None
            }
        };
        match problem {
            None => println!("✔ {} checked successfully", label(o)),
            Some(why) => {
                failed += 1;
                println!("✘ {}: {why}", label(o));
            }
        }
    }
    println!("Checked {crds} custom resource definitions");
    println!("Checked {deployments} Mast Deployments");
    if failed > 0 {
        println!(
            "✘ Mast installation is incomplete: {failed} of {} resources missing or not ready",
            objects.len()
        );
        return Ok(crate::exit::UNKNOWN);
    }
    println!("✔ Mast is installed and verified successfully");
    Ok(crate::exit::OK)
}
