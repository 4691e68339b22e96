//! mastd's subcommands: `mastd token` (print a local CA token for a namespace and service
//! account) and `mastd ca rotate-root` (one phase of a root rotation in a CA directory).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use mast_ca::rotation::{RotationPhase, rotate_root};
use mast_ca::token::TokenIssuer;

/// A mastd subcommand.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Prints a local token authenticating a workload (namespace + service account) to
    /// mastd's CA; give it to mast-proxy / mast-agent with `--ca-token-file`.
    Token {
        /// The CA directory (where the token key is kept; default as mastd's `--ca-dir`).
        #[arg(long, env = "MAST_CA_DIR")]
        ca_dir: Option<PathBuf>,
        /// The workload's namespace.
        #[arg(long, short = 'n', default_value = "default")]
        namespace: String,
        /// The workload's service account.
        #[arg(long, default_value = "default")]
        service_account: String,
    },
    /// Certificate authority maintenance.
    Ca {
        /// What to do.
        #[command(subcommand)]
        action: CaAction,
    },
}

/// `mastd ca ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum CaAction {
    /// One phase of a root rotation: `add` a new root to the trust bundle (still signing with
    /// the old), `switch` signing to it, then `drop` the old root once every workload has
    /// rotated. A running mastd picks the change up within seconds.
    RotateRoot {
        /// The CA directory (default as mastd's `--ca-dir`).
        #[arg(long, env = "MAST_CA_DIR")]
        ca_dir: Option<PathBuf>,
        /// `add`, `switch` or `drop`.
        #[arg(long)]
        phase: RotationPhase,
        /// The trust domain written into a new root.
        #[arg(long, default_value = mast_core::DEFAULT_TRUST_DOMAIN)]
        trust_domain: String,
    },
}

/// Runs a subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Token {
            ca_dir,
            namespace,
            service_account,
        } => {
            let dir = crate::ca::ca_dir(ca_dir.as_deref())?;
            mast_core::SpiffeId::new(
                mast_core::DEFAULT_TRUST_DOMAIN,
                &namespace,
                &service_account,
            )
            .context("namespace and service account")?;
            let issuer = TokenIssuer::load_or_create(&dir).context("loading the token key")?;
            println!("{}", issuer.issue(&namespace, &service_account));
            Ok(())
        }
        Command::Ca {
            action:
                CaAction::RotateRoot {
                    ca_dir,
                    phase,
                    trust_domain,
                },
        } => {
            let dir = crate::ca::ca_dir(ca_dir.as_deref())?;
            let summary = rotate_root(&dir, &trust_domain, phase)?;
            println!("{summary}");
            Ok(())
        }
    }
}
