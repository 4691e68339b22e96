//! istio-iptables' traffic capture rules: flags, the generated nat table, apply and cleanup.
//!
//! What the `istio-init` container does in a pod (and `mastctl up`'s namespaces mode on one
//! machine): redirect the pod's inbound TCP to the sidecar's 15006 and its outbound TCP to
//! 15001, except the proxy's own traffic (uid/gid 1337), so applications need no proxy
//! settings.
//! - [`config`]: [`CaptureConfig`], the validated flags with Istio's defaults;
//! - [`rules`]: the nat table for a configuration, in Istio's rule order ([`nat_rules`]);
//! - [`apply`]: one `iptables-restore --noflush` transaction to apply (idempotent) or clean up;
//! - [`cli`]: the command line both sidecar binaries expose (`mast-proxy init`,
//!   `mast-agent iptables`), with [`cli::run`].
//!
//! IPv4 by default; `--dual-stack` writes the IPv6 table too (ranges go to their family).

pub mod apply;
pub mod cli;
pub mod config;
pub mod rules;
#[cfg(test)]
mod tests;

pub use apply::{ApplyError, Runner, SystemRunner};
pub use cli::{IptablesArgs, Outcome, RunError};
pub use config::{CaptureConfig, CaptureError};
pub use rules::{Family, NatRules, nat_rules, nat_rules_for};
