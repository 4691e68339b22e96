//! Outlier detection (Envoy semantics, only when the cluster sets it): consecutive 5xx,
//! consecutive gateway failures (502/503/504; with local-origin errors unless split) and
//! consecutive local-origin failures (`split_external_local_origin_errors`). A host is ejected
//! on the N-th consecutive failure when `enforcing_*` allows and fewer than
//! `max_ejection_percent` of the hosts are ejected; the `interval` sweep brings it back after
//! `base_ejection_time × ejections` (capped by `max_ejection_time`).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A cluster's outlier detection settings (Envoy defaults filled in).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OutlierConfig {
    pub consecutive_5xx: u32,
    pub enforcing_5xx: u32,
    pub consecutive_gateway: u32,
    pub enforcing_gateway: u32,
    pub split_local: bool,
    pub consecutive_local: u32,
    pub enforcing_local: u32,
    pub interval: Duration,
    pub base_ejection: Duration,
    pub max_ejection: Duration,
    pub max_ejection_percent: u32,
    pub always_eject_one: bool,
}

/// The result of one upstream attempt, for outlier detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response with this status.
    Status(u16),
    /// The connection could not be established (local origin).
    ConnectFailure,
    /// The attempt timed out (local origin).
    Timeout,
    /// The connection was reset (local origin).
    Reset,
}

/// One host's outlier state.
#[derive(Debug, Default)]
pub(crate) struct HostOutlier {
    c5xx: AtomicU32,
    gateway: AtomicU32,
    local: AtomicU32,
    ejected: AtomicBool,
    /// When ejected, and how many ejections back off the next one.
    since: Mutex<Option<Instant>>,
    backoff: AtomicU32,
}

/// Which counter tripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trip {
    Consecutive5xx,
    Gateway,
    LocalOrigin,
}

fn bump(counter: &AtomicU32, threshold: u32) -> bool {
    threshold > 0 && counter.fetch_add(1, Ordering::AcqRel) + 1 == threshold
}

impl HostOutlier {
    /// Whether the host is currently ejected.
    pub fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Acquire)
    }

    /// Records an outcome; returns the trip that should eject the host, after the enforcing
    /// roll.
    pub fn record(&self, cfg: &OutlierConfig, outcome: Outcome) -> Option<Trip> {
        let status = match outcome {
            Outcome::Status(s) => {
                if cfg.split_local {
                    self.local.store(0, Ordering::Release);
                }
                s
            }
            _ if cfg.split_local => {
                return bump(&self.local, cfg.consecutive_local)
                    .then_some(Trip::LocalOrigin)
                    .filter(|_| roll(cfg.enforcing_local));
            }
            Outcome::Timeout => 504,
            Outcome::ConnectFailure | Outcome::Reset => 503,
        };
        let mut trip = None;
        if (500..600).contains(&status) {
            if bump(&self.c5xx, cfg.consecutive_5xx) && roll(cfg.enforcing_5xx) {
                trip = Some(Trip::Consecutive5xx);
            }
        } else {
            self.c5xx.store(0, Ordering::Release);
        }
        if matches!(status, 502..=504) {
            if bump(&self.gateway, cfg.consecutive_gateway) && roll(cfg.enforcing_gateway) {
                trip = trip.or(Some(Trip::Gateway));
            }
        } else {
            self.gateway.store(0, Ordering::Release);
        }
        trip
    }

    /// Marks the host ejected now.
    pub fn eject(&self) {
        *self.since.lock() = Some(Instant::now());
        self.backoff.fetch_add(1, Ordering::AcqRel);
        self.ejected.store(true, Ordering::Release);
    }

    /// The interval sweep: returns true when an ejected host comes back.
    pub fn sweep(&self, cfg: &OutlierConfig, now: Instant) -> bool {
        if !self.is_ejected() {
            // A host that stays healthy for an interval backs off one ejection.
            let _ = self
                .backoff
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| b.checked_sub(1));
            return false;
        }
        let mut since = self.since.lock();
        let Some(at) = *since else {
            return false;
        };
        let n = self.backoff.load(Ordering::Acquire).max(1);
        let time = cfg.base_ejection.saturating_mul(n).min(cfg.max_ejection);
        if now.saturating_duration_since(at) < time {
            return false;
        }
        *since = None;
        self.c5xx.store(0, Ordering::Release);
        self.gateway.store(0, Ordering::Release);
        self.local.store(0, Ordering::Release);
        self.ejected.store(false, Ordering::Release);
        true
    }
}

fn roll(percent: u32) -> bool {
    percent >= 100 || fastrand::u32(0..100) < percent
}

/// Envoy's rule: eject only while fewer than `max_ejection_percent` of the hosts are ejected
/// (so one host can always be ejected when the percentage is above 0), or with
/// `always_eject_one_host` when none is.
pub(crate) fn may_eject(cfg: &OutlierConfig, ejected: usize, hosts: usize) -> bool {
    if hosts == 0 {
        return false;
    }
    let percent = 100.0 * ejected as f64 / hosts as f64;
    percent < f64::from(cfg.max_ejection_percent) || (cfg.always_eject_one && ejected == 0)
}
