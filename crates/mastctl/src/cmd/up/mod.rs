//! `mastctl up DIR`: a whole mesh on one machine. Validates and analyzes the folder, starts
//! mastd on it (plus a folder of WorkloadEntries it generates), then for each
//! `LocalWorkload` its sidecar and, once the sidecar is ready, its program with the sidecar
//! as HTTP proxy, and for each gateway (`LocalGateway`, Gateway API `Gateway`) its `router`
//! proxy; prints a table; follows edits to the folder; and on Ctrl-C/SIGTERM stops
//! everything it started.
//!
//! Parts: [`config`] reads the folder, [`ports`] allocates ports, [`sidecar`] starts mastd
//! and sidecars, [`gateway`] runs gateway proxies, [`proc`] runs child processes,
//! [`supervisor`] runs one workload, [`mesh`] holds the shared state (state file,
//! generated entries, table), [`watch`] notices edits, [`prometheus`] runs Prometheus with `--prometheus`, [`runner`] ties them
//! together; [`netns`] builds the pods of `--capture namespaces`.

mod config;
mod gateway;
mod mesh;
mod netns;
mod ports;
mod proc;
mod prometheus;
mod runner;
mod sidecar;
mod supervisor;
mod watch;

use std::path::PathBuf;

use anyhow::Context as _;

use crate::local::spec::ProxyKind;

/// `mastctl up` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The folder of YAML to run (Istio and Kubernetes resources plus LocalWorkloads).
    pub dir: PathBuf,
    /// The sidecar of workloads without a `mast.dev/proxy` annotation.
    #[arg(long, value_enum, default_value = "mast")]
    pub proxy: ProxyKind,
    /// Predictable ports: mastd on N (xDS) and N+1 (monitoring), workload k (in name
    /// order) on N+10k (outbound), +1 (admin), +2 (health), +3 (inbound). Default: free ports.
    #[arg(long, value_name = "N")]
    pub port_base: Option<u16>,
    /// Exit when every `restartPolicy: Never` workload (job) has finished, with the first
    /// non-zero job status (else 0).
    #[arg(long)]
    pub exit_with_jobs: bool,
    /// The state file other verbs read (default: one per folder under
    /// $XDG_RUNTIME_DIR/mast or /tmp/mast-<uid>).
    #[arg(long, value_name = "F")]
    pub state_file: Option<PathBuf>,
    /// Also run Prometheus (on a free port, or N+3 with --port-base): it scrapes mastd and
    /// every sidecar every 5 s and evaluates Istio's recording rules; its URL is in the
    /// table and the state file.
    #[arg(long)]
    pub prometheus: bool,
    /// How workloads' traffic reaches their sidecars: `ports` (each sidecar its own ports,
    /// programs use it as HTTP proxy) or `namespaces` (root: each workload in its own
    /// network namespace with its own address and Istio's iptables capture, as in a pod).
    #[arg(long, value_enum, default_value = "ports")]
    pub capture: Capture,
    /// The Prometheus binary (with --prometheus).
    #[arg(long, value_name = "PATH", default_value = "prometheus")]
    pub prometheus_bin: PathBuf,
    /// Where mastd serves the dashboard (comma-separated addresses tried in order; port 0:
    /// any free port). Default: Kiali's 127.0.0.1:20001 when free, else any free port (N+2
    /// with --port-base).
    #[arg(long, value_name = "ADDR")]
    pub dashboard_addr: Option<String>,
}

/// `mastctl up --capture`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Capture {
    /// Ports on 127.0.0.1; programs use their sidecar as HTTP proxy.
    Ports,
    /// A network namespace per workload with iptables capture (root).
    Namespaces,
}

/// Runs the mesh until Ctrl-C (or, with `--exit-with-jobs`, until the jobs are done).
pub fn run(args: &Args) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(runner::run(args))
}
