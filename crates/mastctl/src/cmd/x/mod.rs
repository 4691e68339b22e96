//! `mastctl x …`: demo programs that stand in for sample container images. (Being written.)

/// `mastctl x` subcommands.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The program and its flags.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

/// Runs the demo program.
pub fn run(args: &Args) -> anyhow::Result<i32> {
    anyhow::bail!("mastctl x {:?}: not implemented yet", args.rest)
}
