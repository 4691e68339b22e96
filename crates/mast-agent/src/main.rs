//! mast-agent
fn main() {}
