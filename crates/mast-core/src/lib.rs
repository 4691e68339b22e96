//! Newtypes shared by every Mast crate: service host names, namespaced names and
//! port numbers. Everything here is pure data with no I/O; each type validates its
//! own invariants so the rest of the mesh can rely on them.
//!
//! Owns: [`Hostname`] (with Istio's wildcard matching), [`NamespacedName`],
//! [`PortNumber`] and the cluster-wide constants such as the default domain suffix.

mod host;
mod names;
mod spiffe;

pub use host::{Hostname, HostnameError, is_dns1123_label};
pub use names::{NamespacedName, PortNumber, PortNumberError};
pub use spiffe::{DEFAULT_TRUST_DOMAIN, SPIFFE_PREFIX, SpiffeId, SpiffeIdError};

/// The DNS suffix of Kubernetes services (`<name>.<namespace>.svc.<suffix>`).
pub const DEFAULT_DOMAIN_SUFFIX: &str = "cluster.local";

/// Istio's default root namespace: mesh-wide configuration lives here.
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";

/// The version of Mast, shared by every binary.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
