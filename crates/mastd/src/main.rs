//! mastd
fn main() {}
