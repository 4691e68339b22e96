//! Runs a benchmark's phases with a time limit and stops cleanly on SIGINT/SIGTERM: returning
//! (rather than dying on a signal) drops every process guard, so mastd, the sidecars, their
//! Envoys and the upstream are stopped whatever ends the run. Shared by the benchmark
//! binaries (`#[path]`-included).

use std::future::Future;
use std::time::Duration;

/// `phases` on `runtime`, at most `limit`, or until SIGINT/SIGTERM.
pub fn run(
    runtime: &tokio::runtime::Runtime,
    limit: Duration,
    phases: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    runtime.block_on(async {
        tokio::select! {
            result = tokio::time::timeout(limit, phases) => match result {
                Ok(result) => result,
                Err(_) => anyhow::bail!("the benchmark did not finish within {limit:?}"),
            },
            signal = interrupted() => anyhow::bail!("interrupted ({signal})"),
        }
    })
}

/// Completes on SIGINT or SIGTERM.
async fn interrupted() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}
