//! Free ports and bounded polling.

use std::future::Future;
use std::net::TcpListener;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(20);

/// A port that was free on 127.0.0.1 a moment ago, to tell another process which port to
/// take. Prefer binding port 0 yourself and keeping the socket when you can.
///
/// Picked below the kernel's ephemeral range (`ip_local_port_range`), at random among
/// ports this process has not handed out yet: a port from the ephemeral range can be taken
/// as the source port of any outgoing connection of a parallel test between the moment it
/// is picked and the moment the other process binds it. Falls back to port 0 when the
/// range leaves no room below it. A port is also claimed across processes (a lock on
/// `$TMPDIR/mast-free-ports/<port>`, held until this process exits), so two tests running
/// in parallel processes are never handed the same one.
///
/// # Panics
/// When 127.0.0.1 cannot be bound at all (the test cannot run).
pub fn free_port() -> u16 {
    static GIVEN: parking_lot::Mutex<Vec<u16>> = parking_lot::Mutex::new(Vec::new());
    let (low, high) = below_ephemeral();
    if high > low {
        for _ in 0..200 {
            let port = fastrand::u16(low..high);
            let mut given = GIVEN.lock();
            if given.contains(&port) {
                continue;
            }
            if claim(port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
                given.push(port);
                return port;
            }
        }
    }
    match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(addr) => addr.port(),
        Err(e) => panic!("cannot bind 127.0.0.1:0: {e}"),
    }
}

/// Claims `port` for this process among every process using [`free_port`]: an exclusive
/// lock on its file, kept open (and so held) until the process exits. `true` also when the
/// folder cannot be used (the bind check still applies).
fn claim(port: u16) -> bool {
    static HELD: parking_lot::Mutex<Vec<std::fs::File>> = parking_lot::Mutex::new(Vec::new());
    let dir = std::env::temp_dir().join("mast-free-ports");
    if std::fs::create_dir_all(&dir).is_err() {
        return true;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(port.to_string()));
    let Ok(file) = file else {
        return true;
    };
    match file.try_lock() {
        Ok(()) => {
            HELD.lock().push(file);
            true
        }
        Err(std::fs::TryLockError::WouldBlock) => false,
        Err(std::fs::TryLockError::Error(_)) => true,
    }
}

/// The ports `free_port` picks from: up to 10,000 ports ending below the ephemeral range
/// (and above 21000, clear of the fixed ports tests and the demo use: 8081–8083, 15000s,
/// 20000–20100).
fn below_ephemeral() -> (u16, u16) {
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|p| p.parse::<u16>().ok())
        })
        .unwrap_or(32768);
    let high = start.saturating_sub(1);
    (high.saturating_sub(10_000).max(21_000), high)
}

/// Calls `condition` every 20 ms until it returns true (→ `true`) or `timeout` has passed
/// (→ `false`). Blocks the thread: inside async code use [`wait_for_async`].
pub fn wait_for(mut condition: impl FnMut() -> bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Awaits `condition()` every 20 ms until it yields true (→ `true`) or `timeout` has
/// passed (→ `false`). A single call that hangs is cut off at the deadline.
pub async fn wait_for_async<F, Fut>(mut condition: F, timeout: Duration) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(true) = tokio::time::timeout_at(deadline, condition()).await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_bindable_below_the_ephemeral_range_and_never_repeats() {
        let (low, high) = below_ephemeral();
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        for &port in &ports {
            assert_ne!(port, 0);
            if high > low {
                assert!((low..high).contains(&port), "{port} not in {low}..{high}");
            }
        }
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "a port was handed out twice");
        TcpListener::bind(("127.0.0.1", ports[0])).unwrap();
    }

    #[test]
    fn a_given_port_is_claimed_for_other_processes() {
        let port = free_port();
        // Another process's open file description of the same lock file cannot take it.
        let other = std::fs::File::open(
            std::env::temp_dir()
                .join("mast-free-ports")
                .join(port.to_string()),
        )
        .unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
    }

    #[test]
    fn wait_for_is_bounded() {
        let start = Instant::now();
        assert!(!wait_for(|| false, Duration::from_millis(100)));
        assert!(start.elapsed() < Duration::from_secs(2));
        let mut n = 0;
        assert!(wait_for(
            || {
                n += 1;
                n == 3
            },
            Duration::from_secs(2)
        ));
    }

    #[tokio::test]
    async fn wait_for_async_cuts_off_a_hanging_condition() {
        let start = Instant::now();
        let hang = || async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            true
        };
        assert!(!wait_for_async(hang, Duration::from_millis(100)).await);
        assert!(start.elapsed() < Duration::from_secs(2));
        assert!(wait_for_async(|| async { true }, Duration::from_secs(1)).await);
    }
}
