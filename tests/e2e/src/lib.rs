//! Mast's end-to-end conformance suite: the harness the scenarios in `tests/` share.
//!
//! Each scenario is YAML (Istio and Kubernetes resources, as users write them) + upstream
//! servers ([`mast_test_support::EchoServer`]s named after their version, so the body says
//! which one answered) + requests sent through a real Envoy sidecar that `mast-agent`
//! bootstrapped from a real `mastd`, with assertions on what the client observes.
//!
//! - [`Mesh`]: mastd on a temporary config folder and the `client` sidecar in ports mode;
//!   [`Mesh::apply`] edits the config live and waits until the sidecar ACKed it;
//!   [`Mesh::get`] / [`Mesh::tally`] send requests through the sidecar's outbound listener.
//! - [`shared`]: one mesh for all the tests of a file, started by the first that needs it.
//! - [`yaml`]: Service + WorkloadEntry YAML that turns a local server into an endpoint.
//! - [`traffic`]: batches of requests counted by outcome; CONNECT tunnels for TCP.
//! - [`Mesh::explain`]: what to print when a scenario fails (sync state, diagnostics, the
//!   generated and running routes and clusters via `mastctl proxy-config`, logs).
//!
//! Binaries come from the cargo target dir: build them first with
//! `cargo build --workspace --bins`. Envoy comes from `$MAST_ENVOY`, else `.venv/bin/envoy`.
//! Every port is picked free at run time and every wait is bounded.

pub mod diag;
pub mod mastd;
pub mod mesh;
pub mod reaper;
pub mod sync;
pub mod traffic;
pub mod yaml;

pub use mesh::{CLIENT, Mesh, SharedMesh, shared, write_atomic};
pub use sync::ProxySync;
pub use traffic::Tally;

/// Whether `share` is within `tolerance` of `expected` (all as fractions of 1).
pub fn within(share: f64, expected: f64, tolerance: f64) -> bool {
    (share - expected).abs() <= tolerance
}
