//! A progress line on stderr every few seconds while the benchmark runs: how many clients
//! hold a complete configuration, how many saw the current probe, stream errors, and mastd's
//! CPU time and memory, so a long run at full scale shows what it is waiting for.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::fleet::Shared;
use crate::mastd::proc_stats;
use crate::report;

/// How often a line is printed.
const EVERY: Duration = Duration::from_secs(10);

/// Prints progress until the returned task is aborted. `pid` is mastd's current process id.
pub fn spawn(shared: Arc<Shared>, pid: Arc<AtomicU32>, ticks: u64) -> JoinHandle<()> {
    tokio::spawn(async move {
        let start = Instant::now();
        loop {
            tokio::time::sleep(EVERY).await;
            let (complete, hits) = counts(&shared);
            let errors: u32 = shared
                .clients
                .iter()
                .map(|c| c.errors.load(Ordering::Relaxed))
                .sum();
            let stats = proc_stats(pid.load(Ordering::Relaxed), ticks);
            eprintln!(
                "  [{:>4} s] clients complete {complete}/{n}, probe seen {hits}/{n}, stream errors {errors}; mastd CPU {:.1} s, RSS {}",
                start.elapsed().as_secs(),
                stats.cpu.as_secs_f64(),
                report::mib(stats.rss_kb),
                n = shared.clients.len(),
            );
        }
    })
}

/// Clients whose current stream holds a complete configuration, and clients that saw the
/// active probe.
fn counts(shared: &Shared) -> (usize, usize) {
    let probe = shared.probe.read().as_ref().map(|p| p.id);
    let complete = shared
        .clients
        .iter()
        .filter(|c| c.stream.lock().complete.is_some())
        .count();
    let hits = shared
        .clients
        .iter()
        .filter(|c| probe.is_some() && c.hit.lock().map(|(id, _)| id) == probe)
        .count();
    (complete, hits)
}
