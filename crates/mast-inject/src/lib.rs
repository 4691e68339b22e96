//! Putting workloads in the mesh on Kubernetes.
//!
//! Owns: [`inject`], the sidecar injection transform of Kubernetes objects (what
//! `mastctl kube-inject` and mastd's mutating admission webhook apply). The capture rules the
//! injected `istio-init` container applies are the `mast-iptables` crate's (kept apart so that
//! the sidecar binaries need none of the configuration crates).

pub mod inject;
