//! `mast-ca`: Mast's certificate authority (Citadel's role) and the client side that keeps a
//! workload's certificate fresh.
//!
//! How the parts fit:
//! - [`bundle`]: [`CertBundle`], a workload's key, certificate chain and trusted roots — the one
//!   type every consumer (mast-proxy's TLS, mast-agent's SDS) reads, through a
//!   `tokio::sync::watch::Receiver<Option<Arc<CertBundle>>>`.
//! - [`token`]: local tokens (HMAC-signed namespace + service account) that authenticate a
//!   workload to the CA.
//! - [`authority`]: [`CertificateAuthority`], the root (self-signed or plug-in) that signs CSRs.
//! - [`pb`], [`server`], [`client`]: Istio's `IstioCertificateService` gRPC API.
//! - [`manager`]: [`SecretManager`], which fetches and rotates a workload's certificate.

pub mod authority;
pub mod bundle;
pub mod channel;
pub mod client;
pub mod duration;
pub mod files;
pub mod kube_auth;
pub mod manager;
pub mod pb;
pub mod reload;
pub mod rotation;
pub mod server;
pub mod token;
pub mod x509;

pub use authority::{CaOptions, CertificateAuthority};
pub use bundle::{BundleError, CertBundle, SharedBundle};
pub use manager::{SecretConfig, SecretHandle, SecretManager};
