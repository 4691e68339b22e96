//! The local mesh that `mastctl up` runs, as the other verbs see it: the state file (where it
//! lives, what it holds, how to find the running mesh), `LocalWorkload` specs as `up` runs
//! them, gateways (`LocalGateway`s and Gateway API Gateways), the WorkloadEntries
//! generated for running workloads and gateways, and a workload program's environment.
//! Shared by `up`, `exec`, `proxy-status` and `proxy-config`.

pub mod entry;
pub mod gateway;
pub mod spec;
pub mod state;

pub use state::mastd_address;
