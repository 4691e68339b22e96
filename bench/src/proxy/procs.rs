//! A process's memory and CPU from `/proc/<pid>` (VmRSS, VmHWM, threads; utime + stime), and a
//! sampler thread that records the largest VmRSS seen while a run goes on; [`measured`] wraps
//! a run with both; [`loadavg`] for the notes.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Memory and CPU of a process at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStats {
    /// Resident set size (VmRSS), KiB.
    pub rss_kb: u64,
    /// Peak resident set size so far (VmHWM), KiB.
    pub hwm_kb: u64,
    /// Threads.
    pub threads: u64,
}

/// Reads `/proc/<pid>/status` and `/proc/<pid>/stat` (zeros when the process is gone).
pub fn read(pid: u32) -> ProcStats {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    ProcStats {
        rss_kb: field("VmRSS:"),
        hwm_kb: field("VmHWM:"),
        threads: field("Threads:"),
    }
}

/// utime + stime of `pid` in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name (which may hold spaces): the state is field 3 overall, utime and
    // stime fields 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let mut fields = after.split_whitespace().skip(11);
    let mut next = || {
        fields
            .next()
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    next() + next()
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`, 100 if that fails).
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100)
}

/// Samples a process's VmRSS every 200 ms on a thread of its own until stopped.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    max_kb: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    /// Starts sampling `pid` (none when `pid` is `None`).
    pub fn start(pid: Option<u32>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let max_kb = Arc::new(AtomicU64::new(0));
        let thread = pid.map(|pid| {
            let (stop, max_kb) = (Arc::clone(&stop), Arc::clone(&max_kb));
            std::thread::spawn(move || {
                // Bounded: at most an hour of samples.
                for _ in 0..18_000 {
                    max_kb.fetch_max(read(pid).rss_kb, Ordering::Relaxed);
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        });
        Self {
            stop,
            max_kb,
            thread,
        }
    }

    /// Stops sampling; the largest VmRSS seen, KiB.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.max_kb.load(Ordering::Relaxed)
    }
}

/// Runs `load` while sampling the RSS of `pids`; its result, each pid's CPU, each pid's
/// largest RSS.
pub async fn measured<T>(
    pids: &[u32],
    load: impl Future<Output = T>,
) -> (T, Vec<Duration>, Vec<u64>) {
    let ticks = clock_ticks().max(1);
    let before: Vec<u64> = pids.iter().map(|&p| cpu_ticks(p)).collect();
    let samplers: Vec<RssSampler> = pids.iter().map(|&p| RssSampler::start(Some(p))).collect();
    let out = load.await;
    let cpu = pids
        .iter()
        .zip(before)
        .map(|(&p, b)| Duration::from_millis(cpu_ticks(p).saturating_sub(b) * 1000 / ticks))
        .collect();
    let rss = samplers.into_iter().map(RssSampler::stop).collect();
    (out, cpu, rss)
}

/// `/proc/loadavg`'s three averages.
pub fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = read(std::process::id());
        assert!(me.rss_kb > 0 && me.hwm_kb >= me.rss_kb && me.threads >= 1);
        assert!(clock_ticks() > 0);
        assert_eq!(read(u32::MAX).rss_kb, 0);
        let sampler = RssSampler::start(Some(std::process::id()));
        assert!(sampler.stop() > 0);
    }
}
