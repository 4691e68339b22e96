//! The `mast-proxy` binary. (Being written.)

fn main() {}
