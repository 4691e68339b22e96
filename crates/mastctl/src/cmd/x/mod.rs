//! `mastctl x …`: demo programs that stand in for sample container images — `echo` (an
//! HTTP/1.1, h2c and gRPC echo server) and `load` (a constant-rate load generator). This
//! module owns the subcommand parsing, the runtime they run on and the small parsers
//! (durations) they share.

mod authz;
mod echo;
mod grpc;
mod load;
mod load_conn;
mod reply;
mod stats;
#[cfg(test)]
mod tests;

use std::time::Duration;

use anyhow::Context as _;

/// `mastctl x` subcommands.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The demo program to run.
    #[command(subcommand)]
    pub program: Program,
}

/// The demo programs.
#[derive(Debug, clap::Subcommand)]
pub enum Program {
    /// An echo server (HTTP/1.1, h2c and gRPC on one port) standing in for a sample image.
    #[command(disable_version_flag = true)]
    Echo(echo::Args),
    /// A constant-rate load generator with a progress line and latency percentiles.
    Load(load::Args),
    /// Authorization: which policies apply to a workload.
    Authz(authz::Args),
}

/// Runs the demo program and returns its exit code.
pub fn run(args: &Args) -> anyhow::Result<i32> {
    if let Program::Authz(a) = &args.program {
        return authz::run(a);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        match &args.program {
            Program::Echo(a) => echo::run(a).await,
            Program::Load(a) => load::run(a).await,
            Program::Authz(a) => authz::run(a),
        }
    })
}

/// Parses a duration the way Istio's YAML writes them: `100ms`, `1.5s`, `2m`, `250us`, `1h`;
/// a bare number is seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (like 100ms, 1.5s, 2m)"))?;
    let secs = match unit {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "ns" => value / 1e9,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use ns, us, ms, s, m, h)"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{text:?}: {e}"))
}

/// Writes a duration short and readable: `850µs`, `1.24ms`, `2.50s`.
pub(crate) fn fmt_duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0}µs")
    } else if us < 1e6 {
        format!("{:.2}ms", us / 1e3)
    } else {
        format!("{:.2}s", us / 1e6)
    }
}
