//! Free ports and bounded polling.

use std::future::Future;
use std::net::TcpListener;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(20);

/// A port that was free on 127.0.0.1 a moment ago (bound to port 0, then released).
/// Prefer binding port 0 yourself and keeping the socket when you can; use this only
/// to tell another process which port to take.
///
/// # Panics
/// When 127.0.0.1 cannot be bound at all (the test cannot run).
pub fn free_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(addr) => addr.port(),
        Err(e) => panic!("cannot bind 127.0.0.1:0: {e}"),
    }
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
    fn free_port_is_bindable() {
        let port = free_port();
        assert_ne!(port, 0);
        TcpListener::bind(("127.0.0.1", port)).unwrap();
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
