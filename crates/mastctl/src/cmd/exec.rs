//! `mastctl exec WORKLOAD -- CMD ...`: a command run as if inside a local workload. (Being
//! written.)

/// `mastctl exec` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The workload (`name` or `name.namespace`).
    pub workload: String,
    /// The command and its arguments.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// Runs the command and returns its exit status.
pub fn run(args: &Args) -> anyhow::Result<i32> {
    anyhow::bail!("mastctl exec {}: not implemented yet", args.workload)
}
