//! Maglev (Envoy's MAGLEV): a lookup table of prime size filled from each host's permutation
//! (offset and skip from two hashes of its address), weighted as Envoy does; a hash picks
//! `table[hash % size]`. Removing a host moves about 1/N of the keys.

use std::sync::Arc;

use super::Endpoint;
use super::lb::{hash64, mix};

/// A built table of candidate indices.
#[derive(Debug)]
pub(crate) struct Maglev {
    table: Vec<u32>,
}

impl Maglev {
    /// Builds the table of `size` (a prime) over `hosts` with `weights`.
    pub fn build(hosts: &[Arc<Endpoint>], weights: &[u32], size: u64) -> Self {
        if hosts.is_empty() {
            return Self { table: Vec::new() };
        }
        let size = size as usize;
        let max_w = f64::from(weights.iter().copied().max().unwrap_or(1));
        let mut perm: Vec<(u64, u64, u64)> = hosts
            .iter()
            .map(|h| {
                let k = hash64(h.address().to_string().as_bytes());
                let offset = k % size as u64;
                let skip = mix(k ^ 0x9e37_79b9_7f4a_7c15) % (size as u64 - 1) + 1;
                (offset, skip, 0)
            })
            .collect();
        let norm: Vec<f64> = weights.iter().map(|w| f64::from(*w) / max_w).collect();
        let mut target = vec![0.0f64; hosts.len()];
        let mut table = vec![u32::MAX; size];
        let mut filled = 0;
        let mut iteration: u64 = 1;
        while filled < size {
            for i in 0..hosts.len() {
                if filled >= size {
                    break;
                }
                if (iteration as f64) * norm[i] < target[i] {
                    continue;
                }
                target[i] += 1.0;
                let (offset, skip, next) = &mut perm[i];
                loop {
                    let c = ((*offset + *skip * *next) % size as u64) as usize;
                    *next += 1;
                    if table[c] == u32::MAX {
                        table[c] = i as u32;
                        filled += 1;
                        break;
                    }
                }
            }
            iteration += 1;
        }
        Self { table }
    }

    /// The candidate for `hash`; `attempt` > 0 takes another slot.
    pub fn pick(&self, hash: u64, attempt: u32) -> Option<usize> {
        if self.table.is_empty() {
            return None;
        }
        let h = if attempt == 0 {
            hash
        } else {
            mix(hash.wrapping_add(u64::from(attempt)))
        };
        Some(self.table[(h % self.table.len() as u64) as usize] as usize)
    }
}
