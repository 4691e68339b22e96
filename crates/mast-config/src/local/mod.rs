//! `mast.dev/v1alpha1`: Mast's own kinds for a mesh on one machine. Owns
//! [`LocalWorkload`], a program `mastctl up` runs next to its own sidecar, which
//! Services select by labels exactly as a Kubernetes Service selects pods, and
//! [`LocalGateway`], a gateway proxy `mastctl up` runs on the host, which Istio Gateways
//! select by its labels.

mod gateway;
mod workload;

pub use gateway::LocalGateway;
pub use workload::{LocalWorkload, PROXY_ANNOTATION, ProxyChoice, RestartPolicy, is_env_name};
