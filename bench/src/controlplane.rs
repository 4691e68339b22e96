//! `controlplane-bench`: how fast mastd delivers configuration to many proxies, and what it
//! costs.
//!
//! It writes a folder of N Kubernetes Services (one HTTP port each) with E WorkloadEntry
//! endpoints each, a VirtualService (90/10 split over two subsets) and a DestinationRule (two
//! subsets) per service, spread over 20 namespaces; starts the real release `mastd` on free
//! ports with that folder; opens C real ADS streams from this one program, each a distinct
//! ports-mode sidecar that subscribes and ACKs like Envoy ([`ads`]); and starts K real Envoys
//! through `mast-agent`. Then it measures:
//! 1. the initial sync of all clients;
//! 2. an endpoint change (one WorkloadEntry file rewritten): from the write to each client's
//!    ACK of the EDS response carrying the new address;
//! 3. a VirtualService change: the same for RDS (new weights and header value);
//! 4. a full push after a mastd restart on the same xDS port (clients reconnect with backoff);
//! 5. mastd's memory (VmRSS, peak VmHWM) and CPU time (utime + stime) per phase.
//!
//! and prints a table beside the targets, then notes on where the time and bytes went.
//!
//! Every wait is bounded (`--sync-timeout`, `--change-timeout`, 10 s for mastd to go idle
//! between rounds, 20 s for the Envoys' status, 5 s of SIGTERM grace), so at the defaults a
//! run ends within about five to six minutes even when mastd misses every target; a client
//! that did not get there in time is counted as a miss, never waited for. The changes are
//! measured only once every client finished the initial sync (before that they would measure
//! mastd's backlog). Progress is printed to stderr every 10 s.
//!
//! ```text
//! cargo build --release -p mastd -p mast-agent
//! cargo run --release -p mast-bench --bin controlplane-bench -- \
//!     --services 1000 --endpoints-per-service 5 --clients 1000 --envoys 3
//! ```

#[path = "controlplane/ads.rs"]
mod ads;
#[path = "bounded.rs"]
mod bounded;
#[path = "controlplane/changes.rs"]
mod changes;
#[path = "controlplane/config.rs"]
mod config;
#[path = "controlplane/envoys.rs"]
mod envoys;
#[path = "controlplane/fleet.rs"]
mod fleet;
#[path = "controlplane/lite.rs"]
mod lite;
#[path = "controlplane/mastd.rs"]
mod mastd;
#[path = "controlplane/phases.rs"]
mod phases;
#[path = "controlplane/progress.rs"]
mod progress;
#[path = "controlplane/report.rs"]
mod report;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Measures mastd's push latency, full-push time, memory and CPU with many xDS clients.
#[derive(Debug, Clone, Parser)]
#[command(name = "controlplane-bench")]
pub struct Args {
    /// Kubernetes Services to generate (one HTTP port each).
    #[arg(long, default_value_t = 1000)]
    pub services: usize,
    /// WorkloadEntry endpoints per service.
    #[arg(long, default_value_t = 5)]
    pub endpoints_per_service: usize,
    /// Benchmark ADS clients (one gRPC stream each).
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Real Envoys started through mast-agent (0: none).
    #[arg(long, default_value_t = 3)]
    pub envoys: usize,
    /// Namespaces the services and clients are spread over.
    #[arg(long, default_value_t = 20)]
    pub namespaces: usize,
    /// Endpoint changes measured.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// VirtualService changes measured (each is a full push to every client).
    #[arg(long, default_value_t = 1)]
    pub route_rounds: usize,
    /// How long to wait for all clients after each change, in seconds.
    #[arg(long, default_value_t = 15)]
    pub change_timeout: u64,
    /// How long to wait for all clients to sync, initially and after the restart, in seconds.
    #[arg(long, default_value_t = 120)]
    pub sync_timeout: u64,
    /// Write the config folder (and mastd's log) under this folder and keep it.
    #[arg(long)]
    pub keep: Option<PathBuf>,
}

/// The whole run may not take longer than this.
const RUN_LIMIT: Duration = Duration::from_secs(900);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    bounded::run(&runtime, RUN_LIMIT, phases::run(args))
}
