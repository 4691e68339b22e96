//! Load-balancer state built over a cluster's candidate hosts (healthy, or all in panic):
//! round robin (plain or a smooth weighted wheel), least request (power of N choices,
//! weighted), random (weighted), ring hash and maglev. Built when the host set or its health
//! changes; picking takes no lock and allocates nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::Endpoint;
use super::convert::LbPolicy;
use super::maglev::Maglev;
use super::ring::Ring;

/// How picks are made over the candidate list.
#[derive(Debug)]
enum Picker {
    /// All weights equal.
    Uniform,
    /// Weighted: cumulative weights for random picks and a smooth round-robin wheel.
    Weighted {
        cumulative: Vec<u64>,
        wheel: Vec<u32>,
    },
    Ring(Ring),
    Maglev(Maglev),
}

/// The candidates and the precomputed picking structure.
#[derive(Debug)]
pub(crate) struct LbState {
    pub candidates: Vec<Arc<Endpoint>>,
    picker: Picker,
}

impl LbState {
    /// Builds the state for `policy` over `candidates`.
    pub fn build(policy: &LbPolicy, candidates: Vec<Arc<Endpoint>>) -> Self {
        let weights: Vec<u32> = candidates.iter().map(|e| e.weight()).collect();
        let picker = match policy {
            LbPolicy::RingHash { min_size, max_size } => {
                Picker::Ring(Ring::build(&candidates, &weights, *min_size, *max_size))
            }
            LbPolicy::Maglev { table_size } => {
                Picker::Maglev(Maglev::build(&candidates, &weights, *table_size))
            }
            _ if weights.windows(2).all(|w| w[0] == w[1]) => Picker::Uniform,
            _ => weighted(&weights),
        };
        Self { candidates, picker }
    }

    /// Picks a candidate index for attempt `attempt` (0 first; more when the previous pick
    /// was a host to avoid).
    pub fn pick(
        &self,
        policy: &LbPolicy,
        rr: &AtomicUsize,
        hash: Option<u64>,
        attempt: u32,
    ) -> Option<usize> {
        let n = self.candidates.len();
        if n == 0 {
            return None;
        }
        match (&self.picker, policy) {
            (Picker::Ring(r), _) => match hash {
                Some(h) => r.pick(h, attempt),
                None => Some(self.random()),
            },
            (Picker::Maglev(m), _) => match hash {
                Some(h) => m.pick(h, attempt),
                None => Some(self.random()),
            },
            (_, LbPolicy::RoundRobin) => Some(self.round_robin(rr)),
            (_, LbPolicy::LeastRequest { choice_count }) => Some(self.least(*choice_count)),
            _ => Some(self.random()),
        }
    }

    fn round_robin(&self, rr: &AtomicUsize) -> usize {
        let i = rr.fetch_add(1, Ordering::Relaxed);
        match &self.picker {
            Picker::Weighted { wheel, .. } => wheel[i % wheel.len()] as usize,
            _ => i % self.candidates.len(),
        }
    }

    fn random(&self) -> usize {
        match &self.picker {
            Picker::Weighted { cumulative, .. } => {
                let total = cumulative.last().copied().unwrap_or(1);
                let r = fastrand::u64(0..total);
                cumulative.partition_point(|&c| c <= r)
            }
            _ => fastrand::usize(0..self.candidates.len()),
        }
    }

    /// Power of `choices` choices: the candidate with the fewest active requests per weight.
    fn least(&self, choices: u32) -> usize {
        let mut best = self.random();
        let score = |i: usize| {
            let e = &self.candidates[i];
            (e.active_requests() as f64 + 1.0) / f64::from(e.weight())
        };
        let mut best_score = score(best);
        for _ in 1..choices {
            let c = self.random();
            let s = score(c);
            if s < best_score {
                best = c;
                best_score = s;
            }
        }
        best
    }
}

/// Cumulative weights and a weighted round-robin wheel built by earliest-deadline-first
/// (as Envoy's EDF scheduler orders picks): at most 64Ki slots, weights scaled down
/// proportionally beyond that; O(slots · log hosts).
fn weighted(weights: &[u32]) -> Picker {
    let mut cumulative = Vec::with_capacity(weights.len());
    let mut total = 0u64;
    for w in weights {
        total += u64::from(*w);
        cumulative.push(total);
    }
    let scale = (total / 65_536).max(1);
    let scaled: Vec<u64> = weights
        .iter()
        .map(|w| (u64::from(*w) / scale).max(1))
        .collect();
    let slots: u64 = scaled.iter().sum();
    // Fixed-point deadlines: host i is due every slots / w_i picks.
    let mut heap: std::collections::BinaryHeap<std::cmp::Reverse<(u128, usize)>> = scaled
        .iter()
        .enumerate()
        .map(|(i, w)| std::cmp::Reverse((u128::from(slots) * 1_000_000 / u128::from(*w), i)))
        .collect();
    let mut wheel = Vec::with_capacity(slots as usize);
    while (wheel.len() as u64) < slots {
        let Some(std::cmp::Reverse((deadline, i))) = heap.pop() else {
            break;
        };
        wheel.push(i as u32);
        let step = u128::from(slots) * 1_000_000 / u128::from(scaled[i]);
        heap.push(std::cmp::Reverse((deadline + step, i)));
    }
    Picker::Weighted { cumulative, wheel }
}

/// A 64-bit hash of bytes (FNV-1a followed by a splitmix finaliser), stable across runs.
pub(crate) fn hash64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// The splitmix64 finaliser.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
