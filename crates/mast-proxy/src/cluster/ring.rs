//! Ring hash (Envoy's RING_HASH): each host gets entries on a 64-bit ring in proportion to its
//! weight, at least `minimum_ring_size` and at most `maximum_ring_size` entries in all; a hash
//! picks the first entry at or after it. Removing a host moves only the keys it owned.

use std::fmt::Write as _;
use std::sync::Arc;

use super::Endpoint;
use super::lb::hash64;

/// A built ring: (hash, candidate index), sorted by hash.
#[derive(Debug)]
pub(crate) struct Ring {
    entries: Vec<(u64, u32)>,
}

impl Ring {
    /// Builds the ring over `hosts` with `weights`.
    pub fn build(hosts: &[Arc<Endpoint>], weights: &[u32], min: u64, max: u64) -> Self {
        if hosts.is_empty() {
            return Self {
                entries: Vec::new(),
            };
        }
        let total: f64 = weights.iter().map(|w| f64::from(*w)).sum();
        let min_norm = weights
            .iter()
            .map(|w| f64::from(*w) / total)
            .fold(f64::MAX, f64::min);
        // As Envoy: scale so the lightest host gets at least one entry, within [min, max].
        let target = ((1.0 / min_norm).ceil() as u64).max(min).min(max) as f64;
        let mut entries = Vec::with_capacity(target as usize + hosts.len());
        let mut key = String::with_capacity(64);
        let mut current = 0.0;
        let mut target_hashes = 0.0;
        for (i, (h, w)) in hosts.iter().zip(weights).enumerate() {
            target_hashes += target * f64::from(*w) / total;
            let mut k = 0u64;
            while current < target_hashes {
                key.clear();
                let _ = write!(key, "{}_{k}", h.address());
                entries.push((hash64(key.as_bytes()), i as u32));
                k += 1;
                current += 1.0;
            }
        }
        entries.sort_unstable();
        Self { entries }
    }

    /// The candidate for `hash`; `attempt` > 0 walks further along the ring.
    pub fn pick(&self, hash: u64, attempt: u32) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        let i = self.entries.partition_point(|(h, _)| *h < hash);
        let i = (i + attempt as usize) % self.entries.len();
        Some(self.entries[i].1 as usize)
    }
}
