//! `mastctl manifest generate`: the Kubernetes manifests of an installation, as multi-document
//! YAML on stdout (CRDs, namespace, RBAC, Secrets/ConfigMaps, Services, Deployments, PDBs,
//! HPAs, webhooks), for `kubectl apply -f -` or review. Webhook `caBundle`s are filled only by
//! `mastctl install`, which knows the mesh CA.

use anyhow::Result;

use super::InputArgs;
use super::render::{render, to_yaml};
use super::settings::Settings;

/// `mastctl manifest …`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Generates a Mast install manifest.
    Generate(GenerateArgs),
}

/// Flags of `manifest generate`.
#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Target control plane revision (objects suffixed `-<revision>`).
    #[arg(short = 'r', long)]
    revision: Option<String>,
}

/// Runs `manifest generate`.
pub fn run(args: &Args) -> Result<i32> {
    let Command::Generate(g) = &args.command;
    let settings = Settings::from_tree(&g.input.tree(g.revision.as_deref())?)?;
    print!("{}", to_yaml(&render(&settings, None))?);
    Ok(crate::exit::OK)
}
