//! When to restart Envoy after it dies: exponential back-off, and at most a few restarts
//! within a sliding window, after which the agent gives up (and exits non-zero).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Limits on restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// At most this many restarts within `window`.
    pub max_restarts: usize,
    /// The sliding window.
    pub window: Duration,
    /// The delay before the first restart in the window; doubled for each further one.
    pub base_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
}

impl Default for RestartPolicy {
    /// 5 restarts per minute, 100 ms doubling up to 5 s.
    fn default() -> Self {
        Self {
            max_restarts: 5,
            window: Duration::from_secs(60),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// The restarts made recently.
#[derive(Debug, Clone)]
pub struct RestartBudget {
    policy: RestartPolicy,
    recent: VecDeque<Instant>,
}

impl RestartBudget {
    /// An unused budget.
    pub fn new(policy: RestartPolicy) -> Self {
        Self {
            policy,
            recent: VecDeque::new(),
        }
    }

    /// Records a death at `now`: the delay before restarting, or `None` when the budget
    /// for the window is spent.
    pub fn next_delay(&mut self, now: Instant) -> Option<Duration> {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.policy.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.policy.max_restarts {
            return None;
        }
        let exponent = u32::try_from(self.recent.len()).unwrap_or(u32::MAX).min(16);
        self.recent.push_back(now);
        Some(
            self.policy
                .base_delay
                .saturating_mul(1 << exponent)
                .min(self.policy.max_delay),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_then_gives_up_then_recovers() {
        let mut budget = RestartBudget::new(RestartPolicy::default());
        let t0 = Instant::now();
        let delays: Vec<_> = (0..5)
            .map(|i| budget.next_delay(t0 + Duration::from_secs(i)).unwrap())
            .collect();
        assert_eq!(
            delays.iter().map(Duration::as_millis).collect::<Vec<_>>(),
            [100, 200, 400, 800, 1600]
        );
        assert_eq!(budget.next_delay(t0 + Duration::from_secs(10)), None);
        // A minute after the first restart, one slot is free again.
        assert!(budget.next_delay(t0 + Duration::from_secs(60)).is_some());
    }

    #[test]
    fn delay_is_capped() {
        let policy = RestartPolicy {
            max_restarts: 20,
            ..RestartPolicy::default()
        };
        let mut budget = RestartBudget::new(policy);
        let now = Instant::now();
        let last = (0..20)
            .filter_map(|_| budget.next_delay(now))
            .last()
            .unwrap();
        assert_eq!(last, Duration::from_secs(5));
    }
}
