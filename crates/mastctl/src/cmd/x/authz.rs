//! `mastctl x authz check <workload>`: the AuthorizationPolicies (and PeerAuthentication /
//! RequestAuthentication) that apply to a workload, and the RBAC its proxy enforces.

/// `mastctl x authz` subcommands.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// `mastctl x authz` actions.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Lists the authorization policies that apply to a workload.
    Check(CheckArgs),
}

/// `mastctl x authz check` arguments.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The workload (`name[.namespace]`) or its proxy id.
    pub workload: String,
}

/// Runs `mastctl x authz`.
pub fn run(_args: &Args) -> anyhow::Result<i32> {
    anyhow::bail!("mastctl x authz check is not implemented yet")
}
