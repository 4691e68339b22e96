//! `mast-agent`: runs Envoy as a Mast sidecar or gateway. This file only parses flags, sets
//! up logging (`MAST_LOG`, default `info`, to stderr) and maps the outcome to an exit code;
//! [`cli`] resolves the flags and [`supervise`] runs Envoy.

mod cli;
mod supervise;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing::{error, info};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MAST_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = cli::Args::parse();
    let config = match args.resolve() {
        Ok(config) => config,
        Err(e) => {
            error!("{e:#}");
            return ExitCode::from(2);
        }
    };
    info!(
        node_id = config.bootstrap.node.node_id(),
        work_dir = %config.work_dir.display(),
        envoy = %config.envoy.binary.display(),
        admin = config.plan.admin,
        "starting envoy"
    );
    let code = match supervise::run(&config).await {
        Ok(code) => code,
        Err(e) => {
            error!("{e:#}");
            1
        }
    };
    if code == 0 && config.temporary_work_dir {
        let _ = std::fs::remove_dir_all(&config.work_dir);
    }
    ExitCode::from(code)
}
