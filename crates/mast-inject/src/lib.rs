//! Putting workloads in the mesh on Kubernetes.
//!
//! Owns: [`inject`], the sidecar injection transform of Kubernetes objects (what
//! `mastctl kube-inject` and mastd's mutating admission webhook apply), and [`iptables`], the
//! traffic capture rules istio-iptables writes into a pod's network namespace (what the
//! `istio-init` container runs, through `mast-proxy init` or `mast-agent iptables`).

pub mod inject;
pub mod iptables;
