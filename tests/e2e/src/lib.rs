//! Mast's end-to-end conformance suite: the harness the scenarios in `tests/` share.
//!
//! Each scenario is YAML (Istio and Kubernetes resources, as users write them) + upstream
//! servers ([`mast_test_support::EchoServer`]s named after their version, so the body says
//! which one answered) + requests sent through a client sidecar configured by a real `mastd`,
//! with assertions on what the client observes. Every scenario runs against both proxies
//! ([`Proxy`]): real Envoy bootstrapped by `mast-agent`, and `mast-proxy`.
//!
//! - [`both!`]: writes a scenario once (`async fn name(proxy: Proxy)`) and tests it as
//!   `envoy::name` and `mast::name`; [`PerProxy`] holds one of something per proxy kind.
//! - [`Mesh`]: mastd on a temporary config folder and the `client` sidecar in ports mode;
//!   [`Mesh::apply`] edits the config live and waits until the sidecar ACKed it;
//!   [`Mesh::get`] / [`Mesh::tally`] send requests through the sidecar's outbound listener.
//! - [`shared`]: one mesh per proxy kind for all the tests of a file, started by the first
//!   that needs it.
//! - [`yaml`]: Service + WorkloadEntry YAML that turns a local server into an endpoint.
//! - [`traffic`]: batches of requests counted by outcome; CONNECT tunnels for TCP.
//! - [`Mesh::explain`]: what to print when a scenario fails (sync state, diagnostics, the
//!   generated and running routes and clusters via `mastctl proxy-config`, logs).
//!
//! Binaries come from the cargo target dir: build them first with
//! `cargo build --workspace --bins` (mastd, mast-agent, mast-proxy, mastctl). Envoy comes
//! from `$MAST_ENVOY`, else `.venv/bin/envoy`.
//! Every port is picked free at run time and every wait is bounded.

pub mod diag;
pub mod jwt;
pub mod mastd;
pub mod mesh;
pub mod reaper;
pub mod sides;
pub mod sync;
pub mod traffic;
pub mod workloads;
pub mod yaml;

pub use mesh::{CLIENT, Mesh, SharedMesh, shared, write_atomic};
pub use sides::{PerProxy, Proxy};
pub use sync::ProxySync;
pub use traffic::Tally;
pub use workloads::{Workload, WorkloadSpec};

/// Whether `share` is within `tolerance` of `expected` (all as fractions of 1).
pub fn within(share: f64, expected: f64, tolerance: f64) -> bool {
    (share - expected).abs() <= tolerance
}

/// Named expectations checked together, so that a failing scenario lists every one that
/// failed rather than only the first.
#[derive(Debug, Default, Clone)]
pub struct Checks {
    items: Vec<(String, bool)>,
}

impl Checks {
    /// No expectations yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records expectation `what` and whether it held.
    pub fn check(&mut self, what: impl Into<String>, ok: bool) -> &mut Self {
        self.items.push((what.into(), ok));
        self
    }

    /// The expectations that did not hold.
    pub fn failed(&self) -> Vec<&str> {
        self.items
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(what, _)| what.as_str())
            .collect()
    }

    /// Whether every expectation held.
    pub fn ok(&self) -> bool {
        self.items.iter().all(|(_, ok)| *ok)
    }
}
