//! Route tables (RDS and inline): matching and per-route decisions. (Being written.)
