//! `mastctl exec WORKLOAD -- CMD ...`: a command run as if inside a local workload of the
//! mesh `mastctl up` runs — with that workload's environment (its sidecar as HTTP proxy,
//! `MAST_WORKLOAD` …, `spec.env`), standard input and output passed through, and its exit
//! status returned (128 + the signal when killed by one).

use std::path::PathBuf;

use anyhow::{Context as _, bail};

use crate::local::state;

/// `mastctl exec` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The workload (`name` or `name.namespace`).
    pub workload: String,
    /// The command and its arguments.
    #[arg(last = true)]
    pub command: Vec<String>,
    /// The state file of the mesh (default: the most recently started running one).
    #[arg(long, value_name = "F")]
    pub state_file: Option<PathBuf>,
}

/// Runs the command and returns its exit status.
pub fn run(args: &Args) -> anyhow::Result<i32> {
    let Some((program, rest)) = args.command.split_first() else {
        bail!(
            "no command: mastctl exec {} -- CMD [ARGS...]",
            args.workload
        );
    };
    let (path, mesh) = state::find(args.state_file.as_deref())?;
    let workload = mesh
        .workload(&args.workload)
        .with_context(|| format!("state file {}", path.display()))?;
    if workload.env.is_empty() {
        bail!(
            "workload {}.{} is not running yet (status: {}); see mastctl up's output",
            workload.name,
            workload.namespace,
            workload.status
        );
    }
    // With `mastctl up --capture namespaces`: inside the workload's network namespace.
    let mut command = match &workload.netns {
        Some(ns) => {
            let mut c = std::process::Command::new("ip");
            c.args(["netns", "exec", ns]).arg(program);
            c
        }
        None => std::process::Command::new(program),
    };
    let status = command
        .args(rest)
        .envs(&workload.env)
        .status()
        .with_context(|| format!("running {program:?}"))?;
    use std::os::unix::process::ExitStatusExt as _;
    Ok(status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1))
}
