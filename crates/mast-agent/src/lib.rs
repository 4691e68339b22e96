//! `mast-agent`'s library: what it takes to run Envoy as a Mast sidecar or gateway, kept
//! apart from the binary so `mastctl` (bootstrap display, `up`) and tests reuse it.
//!
//! - [`bootstrap`]: the Envoy bootstrap (node id, Istio metadata, admin, ADS to mastd);
//! - [`ports`]: choosing the sidecar's ports and the ports file reporting them;
//! - [`envoy`]: Envoy's command line, the running process, offline validation;
//! - [`admin`]: a client for Envoy's admin API (`/ready`, drain, quit);
//! - [`metrics`]: the metrics port (Istio's 15020): Envoy's stats merged with the agent's;
//! - [`restart`]: the back-off and budget for restarting a dead Envoy;
//! - [`duration`]: durations on the command line and in Envoy's JSON;
//! - [`sds`]: the Secret Discovery Service serving the workload's certificates to Envoy.

pub mod admin;
pub mod bootstrap;
pub mod duration;
pub mod envoy;
pub mod metrics;
pub mod ports;
pub mod restart;
pub mod sds;

pub use admin::{AdminClient, AdminError};
pub use bootstrap::{AdsApi, Bootstrap, BootstrapError, NodeSpec, XdsAddress};
pub use envoy::{EnvoyCommand, EnvoyError, EnvoyProcess};
pub use ports::{CaptureRequest, PortPlan, PortsError, PortsReport};
pub use restart::{RestartBudget, RestartPolicy};
