//! The global downstream connection cap (Envoy's overload manager
//! `envoy.resource_monitors.global_downstream_max_connections`): an accepted connection
//! beyond the cap is closed at once, before any byte is read.
//!
//! The accept loop takes a [`ConnectionPermit`] per accepted socket and keeps it for the
//! connection's life; [`global`] is the process-wide limit the binary configures once with
//! [`set_global_max`] (`--max-connections`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// A cap on concurrent connections (`usize::MAX`: unlimited).
#[derive(Debug)]
pub struct ConnectionLimit {
    max: usize,
    active: AtomicUsize,
    rejected: AtomicU64,
}

/// One admitted connection; dropping it frees the slot.
#[derive(Debug)]
pub struct ConnectionPermit(Arc<ConnectionLimit>);

impl ConnectionLimit {
    /// A limit of `max` concurrent connections (`None`: unlimited).
    pub fn new(max: Option<usize>) -> Arc<Self> {
        Arc::new(Self {
            max: max.unwrap_or(usize::MAX),
            active: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
        })
    }

    /// A slot for one more connection, or `None` (counted as rejected) at the cap.
    pub fn try_acquire(self: &Arc<Self>) -> Option<ConnectionPermit> {
        let admitted = self
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        if admitted {
            Some(ConnectionPermit(Arc::clone(self)))
        } else {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// Connections holding a permit now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Connections closed at accept because the cap was reached (Envoy's
    /// `downstream_cx_overflow`).
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// The cap (`None`: unlimited).
    pub fn max(&self) -> Option<usize> {
        (self.max != usize::MAX).then_some(self.max)
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

static GLOBAL: OnceLock<Arc<ConnectionLimit>> = OnceLock::new();

/// Sets the process-wide cap once (later calls are ignored; returns whether this one won).
pub fn set_global_max(max: Option<usize>) -> bool {
    GLOBAL.set(ConnectionLimit::new(max)).is_ok()
}

/// The process-wide limit (unlimited unless [`set_global_max`] ran first).
pub fn global() -> &'static Arc<ConnectionLimit> {
    GLOBAL.get_or_init(|| ConnectionLimit::new(None))
}

/// The accept-loop hook: a permit for `stream`, or `None` after closing it (the cap is
/// reached). Keep the permit alive as long as the connection.
pub fn admit(stream: tokio::net::TcpStream) -> Option<(tokio::net::TcpStream, ConnectionPermit)> {
    match global().try_acquire() {
        Some(permit) => Some((stream, permit)),
        None => {
            tracing::debug!("downstream connection limit reached: closing the new connection");
            drop(stream);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_admits_up_to_max_and_frees_slots_on_drop() {
        let limit = ConnectionLimit::new(Some(2));
        let a = limit.try_acquire();
        let b = limit.try_acquire();
        assert!(a.is_some() && b.is_some());
        assert!(limit.try_acquire().is_none());
        assert_eq!((limit.active(), limit.rejected()), (2, 1));
        drop(a);
        assert!(limit.try_acquire().is_some());
        assert_eq!(limit.active(), 1);
    }

    #[test]
    fn no_cap_admits_everything() {
        let limit = ConnectionLimit::new(None);
        let permits: Vec<_> = (0..100).filter_map(|_| limit.try_acquire()).collect();
        assert_eq!(permits.len(), 100);
        assert_eq!(limit.max(), None);
    }
}
