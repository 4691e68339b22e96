//! `mastctl up DIR`: a whole mesh on one machine. (Being written.)

/// `mastctl up` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The folder of YAML to run.
    pub dir: std::path::PathBuf,
}

/// Runs the mesh until Ctrl-C.
pub fn run(args: &Args) -> anyhow::Result<i32> {
    anyhow::bail!("mastctl up {}: not implemented yet", args.dir.display())
}
