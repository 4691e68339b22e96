//! `mast-ca`: Mast's certificate authority (Citadel's role) and the client side that keeps a
//! workload's certificate fresh.
//!
//! How the parts fit:
//! - [`bundle`]: [`CertBundle`], a workload's key, certificate chain and trusted roots — the one
//!   type every consumer (mast-proxy's TLS, mast-agent's SDS) reads, through a
//!   `tokio::sync::watch::Receiver<Option<Arc<CertBundle>>>`.

pub mod bundle;

pub use bundle::{BundleError, CertBundle};
