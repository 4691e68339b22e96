//! Istio's `Percent` message (`{value: 12.5}`), used by fault injection and mirroring.

use serde::{Deserialize, Serialize};

/// A percentage, 0–100 with fractions allowed; range is checked by validation.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Percent {
    /// The percentage.
    #[serde(default)]
    pub value: f64,
}

impl Percent {
    /// Whether the value lies in 0–100.
    pub fn in_range(self) -> bool {
        (0.0..=100.0).contains(&self.value)
    }
}
