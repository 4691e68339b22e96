//! Cluster-level circuit breakers: `max_requests` (active requests) and `max_retries` or
//! `retry_budget` (active retries). The connection and pending limits live in the pools
//! ([`crate::upstream`]); all counters are shared atomics.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::upstream::{Counters, Limits};

/// A circuit breaker is full: the router answers 503 with flag UO (`x-envoy-overloaded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker overflow")]
pub struct Overflow;

/// One active request on the cluster (`max_requests`); released on drop.
#[derive(Debug)]
pub struct RequestGuard {
    counters: Arc<Counters>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.counters.requests.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One active retry on the cluster (`max_retries` / `retry_budget`); released on drop.
#[derive(Debug)]
pub struct RetryGuard {
    counters: Arc<Counters>,
}

impl Drop for RetryGuard {
    fn drop(&mut self) {
        self.counters.retries.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Takes an active-request slot.
pub(crate) fn try_request(
    counters: &Arc<Counters>,
    limits: &Limits,
) -> Result<RequestGuard, Overflow> {
    if Counters::try_take(&counters.requests, limits.max_requests) {
        Ok(RequestGuard {
            counters: counters.clone(),
        })
    } else {
        Err(Overflow)
    }
}

/// Takes an active-retry slot: `max_retries`, or with a retry budget Envoy's
/// `max(min_retry_concurrency, budget_percent % of active + pending requests)`.
pub(crate) fn try_retry(counters: &Arc<Counters>, limits: &Limits) -> Result<RetryGuard, Overflow> {
    let max = match limits.retry_budget {
        None => limits.max_retries,
        Some((percent, min)) => {
            let outstanding = counters.requests.load(Ordering::Acquire)
                + counters.pending.load(Ordering::Acquire);
            let budget = (outstanding as f64 * percent / 100.0) as u64;
            budget.max(min)
        }
    };
    if Counters::try_take(&counters.retries, max) {
        Ok(RetryGuard {
            counters: counters.clone(),
        })
    } else {
        Err(Overflow)
    }
}
