//! `mast-agent iptables`: istio-iptables for pods whose sidecar is Envoy. Applies, prints
//! (`--dry-run`) or removes (`--cleanup`) the capture rules of
//! [`mast_iptables`] in the current network namespace; errors name the failing
//! command and what it printed.

use std::process::ExitCode;

use mast_iptables::{IptablesArgs, Outcome, RunError, SystemRunner, cli};
use tracing::{error, info};

/// Runs the subcommand; exit code 0 on success, 2 on bad flags, 1 when iptables failed.
pub fn run(args: &IptablesArgs) -> ExitCode {
    let mut stdout = std::io::stdout();
    match cli::run(args, &SystemRunner, &mut stdout) {
        Ok(Outcome::Applied(_)) => {
            info!("traffic capture rules applied");
            ExitCode::SUCCESS
        }
        Ok(Outcome::Removed(None)) => {
            info!("no traffic capture rules to remove");
            ExitCode::SUCCESS
        }
        Ok(Outcome::Removed(Some(_))) => {
            info!("traffic capture rules removed");
            ExitCode::SUCCESS
        }
        Ok(Outcome::Printed | Outcome::Skipped) => ExitCode::SUCCESS,
        Err(e @ RunError::Config(_)) => {
            error!("{e}");
            ExitCode::from(2)
        }
        Err(e) => {
            error!("{e}");
            ExitCode::from(1)
        }
    }
}
