//! `proxy-bench`: what a sidecar adds to a request, and what it costs: **direct** (client →
//! upstream), **Envoy** (client → Envoy started by `mast-agent` → upstream) and **mast-proxy**
//! (client → mast-proxy → upstream), in one run, interleaved per rep.
//!
//! One release `mastd` serves a folder with one Service (`bench-svc`, port `http` 80) and one
//! WorkloadEntry (127.0.0.1, the upstream's HTTP/1.1 port); every sidecar runs in ports capture
//! mode, and the client sends absolute-form requests (`GET http://bench-svc/`) to the
//! sidecar's outbound listener, as a workload with `HTTP_PROXY` would. The upstream is this
//! binary re-executed with the `upstream` subcommand ([`upstream`]): a hyper server returning
//! 1 KiB, HTTP/1.1 keep-alive on one port and h2c (prior knowledge) on another, in its own
//! process so its CPU is not the load generator's. The proxies' output (mast-proxy's access
//! log) goes to a file in their folders.
//!
//! Measured ([`phases`]):
//! 1. latency at fixed rates (open loop, from each request's scheduled send time, so
//!    coordinated omission does not hide tails; [`load`]), HTTP/1.1 and h2c, 16 connections;
//! 2. closed-loop maximum throughput, 64 connections, with 1 and 2 proxy worker threads;
//! 3. RSS idle and under load, CPU seconds per 10,000 requests ([`procs`]);
//! 4. start-up: exec → first proxied 200 ([`startup`]);
//! 5. optionally a `perf` profile of mast-proxy at 5,000 req/s ([`profile`]).
//!
//! With `--mtls`, the path of a meshed request instead: client → client sidecar → mutual TLS
//! → server sidecar (STRICT) → upstream, and new TLS handshakes per second ([`mtls`]).
//!
//! With `--gateway`, HTTPS termination at an ingress gateway instead: HTTPS requests per
//! second (HTTP/1.1 and HTTP/2 keep-alive) and new TLS connections per second, Envoy vs
//! mast-proxy as `router` proxies ([`gateway`]).
//!
//! ```text
//! cargo build --release -p mastd -p mast-agent -p mast-proxy -p mast-bench
//! target/release/proxy-bench --reps 3
//! target/release/proxy-bench --mtls --reps 2 --duration 10 --throughput-duration 5
//! target/release/proxy-bench --gateway --reps 3
//! ```

#[path = "bounded.rs"]
mod bounded;
#[path = "proxy/gateway/mod.rs"]
mod gateway;
#[path = "proxy/load.rs"]
mod load;
#[path = "proxy/mesh.rs"]
mod mesh;
#[path = "proxy/mtls/mod.rs"]
mod mtls;
#[path = "proxy/phases.rs"]
mod phases;
#[path = "proxy/procs.rs"]
mod procs;
#[path = "proxy/profile.rs"]
mod profile;
#[path = "proxy/report.rs"]
mod report;
#[path = "proxy/startup.rs"]
mod startup;
#[path = "proxy/stats.rs"]
mod stats;
#[path = "proxy/upstream.rs"]
mod upstream;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Benchmarks direct vs Envoy vs mast-proxy on loopback (latency, throughput, memory, CPU,
/// start-up).
#[derive(Debug, Clone, Parser)]
#[command(name = "proxy-bench")]
pub struct Args {
    /// Reps of every phase, interleaved over the targets.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Seconds of each fixed-rate latency run (default 15; 2 with --quick); with
    /// `--gateway`, of each keep-alive run (default 10).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Seconds of each closed-loop throughput run (default 10; 2 with --quick).
    #[arg(long)]
    pub throughput_duration: Option<u64>,
    /// Targets: any of direct, envoy, mast (comma-separated); with `--mtls` also
    /// mast-nometrics (a mast-proxy pair with Istio's metrics off).
    #[arg(long, value_delimiter = ',', default_value = "direct,envoy,mast")]
    pub only: Vec<String>,
    /// Proxy worker threads (`--concurrency`) for the latency phases.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Worker-thread counts measured in the throughput phase.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub throughput_workers: Vec<usize>,
    /// Fixed rates of the latency phase, req/s.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    pub rates: Vec<u64>,
    /// Client connections of the latency phase (with `--gateway`: of the keep-alive runs).
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Client connections of the throughput phase.
    #[arg(long, default_value_t = 64)]
    pub throughput_connections: usize,
    /// Start-up reps per proxy (default 10; 3 with --quick).
    #[arg(long)]
    pub startup_reps: Option<usize>,
    /// Seconds of the `perf` profile of mast-proxy at 5,000 req/s (0: none).
    #[arg(long, default_value_t = 10)]
    pub profile_seconds: u64,
    /// Short durations for a smoke run.
    #[arg(long)]
    pub quick: bool,
    /// Keep the run's folder (config, logs, perf data) here instead of a temporary one.
    #[arg(long)]
    pub keep: Option<PathBuf>,
    /// Also write the report (markdown) to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
    /// Benchmark sidecar-to-sidecar mutual TLS (client sidecar → server sidecar, STRICT)
    /// instead of one sidecar hop.
    #[arg(long, conflicts_with = "gateway")]
    pub mtls: bool,
    /// Benchmark HTTPS termination at an ingress gateway (Envoy vs mast-proxy as `router`
    /// proxies) instead of a sidecar hop.
    #[arg(long)]
    pub gateway: bool,
    /// mTLS and gateway modes: seconds of each handshake run.
    #[arg(long, default_value_t = 5)]
    pub handshake_secs: u64,
    /// mTLS and gateway modes: handshakes in flight at a time.
    #[arg(long, default_value_t = 8)]
    pub handshake_concurrency: usize,
    /// mTLS and gateway modes: threads of the handshake client's own runtime.
    #[arg(long, default_value_t = 2)]
    pub handshake_threads: usize,
    /// mTLS and gateway modes: at most this many connections per handshake run.
    #[arg(long, default_value_t = 500_000)]
    pub handshake_max: u64,
    /// Internal: run the upstream server.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Internal subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Serve 1 KiB on an HTTP/1.1 port and an h2c port until killed.
    Upstream {
        /// The HTTP/1.1 port on 127.0.0.1.
        #[arg(long)]
        h1_port: u16,
        /// The h2c (prior knowledge) port on 127.0.0.1.
        #[arg(long)]
        h2_port: u16,
    },
}

impl Args {
    /// Seconds of each latency run.
    pub fn latency_secs(&self) -> u64 {
        self.duration.unwrap_or(if self.quick { 2 } else { 15 })
    }

    /// Seconds of each throughput run.
    pub fn throughput_secs(&self) -> u64 {
        self.throughput_duration
            .unwrap_or(if self.quick { 2 } else { 10 })
    }

    /// Start-up reps.
    pub fn startup_reps(&self) -> usize {
        self.startup_reps.unwrap_or(if self.quick { 3 } else { 10 })
    }

    /// Whether target kind `name` (direct, envoy, mast) is selected.
    pub fn wants(&self, name: &str) -> bool {
        self.only.iter().any(|o| o.trim() == name)
    }
}

/// The whole run may not take longer than this.
const RUN_LIMIT: Duration = Duration::from_secs(3600);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Command::Upstream { h1_port, h2_port }) = args.command {
        return upstream::serve(h1_port, h2_port);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()?;
    if args.mtls {
        return bounded::run(&runtime, RUN_LIMIT, mtls::run(args));
    }
    if args.gateway {
        return bounded::run(&runtime, RUN_LIMIT, gateway::run(args));
    }
    bounded::run(&runtime, RUN_LIMIT, phases::run(args))
}
