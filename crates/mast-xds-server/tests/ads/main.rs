//! Integration tests of the ADS server over real gRPC on loopback, with envoy-types'
//! generated client playing Envoy, plus one suite against real Envoy 1.40.

// Test helpers fail the test loudly, as the tests themselves do.
#![allow(clippy::unwrap_used)]

mod clients;
mod common;
mod debounce;
mod delta;
mod envoy;
mod resources;
mod share;
mod sotw;
