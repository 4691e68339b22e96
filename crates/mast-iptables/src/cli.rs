//! istio-iptables' command line, shared by `mast-proxy init` and `mast-agent iptables`:
//! [`IptablesArgs`] (Istio's short and long flags, as the injected `istio-init` container
//! passes them), its resolution into a [`CaptureConfig`], and [`run`], which applies,
//! prints (`--dry-run`) or removes (`--cleanup`) the rules.

use std::io::Write;

use clap::Args;

use super::apply::{self, ApplyError, Runner};
use super::config::{
    self, CaptureConfig, CaptureError, DEFAULT_PROXY_UID, parse_inbound_ports, parse_mode,
    parse_names, parse_outbound_ranges, parse_owner_groups, parse_port, parse_ports,
};
use super::rules::{Family, nat_rules_for};

/// istio-iptables' flags (`istio-iptables -p 15001 -z 15006 -u 1337 -m REDIRECT -i '*'
/// -x "" -b '*' -d 15090,15021,15020` is what Istio's injector runs).
#[derive(Debug, Clone, Args)]
pub struct IptablesArgs {
    /// The port all outbound TCP is redirected to.
    #[arg(short = 'p', long = "envoy-port", default_value = "15001")]
    pub envoy_port: String,
    /// The port all inbound TCP is redirected to.
    #[arg(short = 'z', long = "inbound-capture-port", default_value = "15006")]
    pub inbound_capture_port: String,
    /// The tunnel port, never redirected.
    #[arg(short = 'e', long = "inbound-tunnel-port", default_value = "15008")]
    pub inbound_tunnel_port: String,
    /// The proxy's uid(s): their traffic is not redirected [default: 1337].
    #[arg(short = 'u', long = "proxy-uid", default_value = "")]
    pub proxy_uid: String,
    /// The proxy's gid(s) [default: the uid].
    #[arg(short = 'g', long = "proxy-gid", default_value = "")]
    pub proxy_gid: String,
    /// How inbound connections are redirected: REDIRECT (TPROXY is refused).
    #[arg(
        short = 'm',
        long = "istio-inbound-interception-mode",
        default_value = ""
    )]
    pub interception_mode: String,
    /// Inbound ports redirected: a list, `*` for all, empty for none.
    #[arg(short = 'b', long = "istio-inbound-ports", default_value = "")]
    pub inbound_ports: String,
    /// Inbound ports not redirected when -b is `*` (Istio's injector passes
    /// 15090,15021,15020).
    #[arg(short = 'd', long = "istio-local-exclude-ports", default_value = "")]
    pub local_exclude_ports: String,
    /// Outbound IP ranges (CIDR) redirected: a list, `*` for all, empty for none.
    #[arg(short = 'i', long = "istio-service-cidr", default_value = "")]
    pub service_cidr: String,
    /// Outbound IP ranges (CIDR) never redirected.
    #[arg(short = 'x', long = "istio-service-exclude-cidr", default_value = "")]
    pub service_exclude_cidr: String,
    /// Outbound ports redirected whatever the destination.
    #[arg(short = 'q', long = "istio-outbound-ports", default_value = "")]
    pub outbound_ports: String,
    /// Outbound ports never redirected.
    #[arg(
        short = 'o',
        long = "istio-local-outbound-ports-exclude",
        default_value = ""
    )]
    pub outbound_ports_exclude: String,
    /// Virtual interfaces whose inbound traffic is treated as outbound.
    #[arg(short = 'k', long = "kube-virt-interfaces", default_value = "")]
    pub kube_virt_interfaces: String,
    /// Interfaces whose traffic is never captured.
    #[arg(short = 'c', long = "istio-exclude-interfaces", default_value = "")]
    pub exclude_interfaces: String,
    /// Capture only the outbound traffic of processes in these groups (`*`: all).
    #[arg(
        long = "outbound-owner-groups",
        env = "ISTIO_OUTBOUND_OWNER_GROUPS",
        default_value = "*"
    )]
    pub owner_groups: String,
    /// Do not capture the outbound traffic of processes in these groups.
    #[arg(
        long = "outbound-owner-groups-exclude",
        env = "ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE",
        default_value = ""
    )]
    pub owner_groups_exclude: String,
    /// TPROXY only (ignored).
    #[arg(
        short = 't',
        long = "istio-inbound-tproxy-mark",
        default_value = "1337",
        hide = true
    )]
    pub tproxy_mark: String,
    /// TPROXY only (ignored).
    #[arg(
        short = 'r',
        long = "istio-inbound-tproxy-route-table",
        default_value = "133",
        hide = true
    )]
    pub tproxy_route_table: String,
    /// Print the rules (iptables-restore input) instead of applying them.
    #[arg(short = 'n', long = "dry-run")]
    pub dry_run: bool,
    /// Remove the rules instead (istio-clean-iptables): the jumps, then Istio's chains.
    #[arg(long = "cleanup")]
    pub cleanup: bool,
    /// Also write the IPv6 rules (ip6tables), as Istio does for dual-stack pods.
    #[arg(long = "dual-stack", env = "ISTIO_AGENT_DUAL_STACK")]
    pub dual_stack: bool,
    /// Do nothing (Istio's --skip-rule-apply).
    #[arg(long = "skip-rule-apply")]
    pub skip_rule_apply: bool,
    /// Accepted for compatibility; always iptables-restore format.
    #[arg(short = 'f', long = "restore-format", num_args = 0..=1, default_missing_value = "true", hide = true)]
    pub restore_format: Option<bool>,
    /// Istio's post-apply validation: accepted and ignored (a warning says so).
    #[arg(long = "run-validation")]
    pub run_validation: bool,
    /// Istio's DNS capture (to the agent on 15053): refused, Mast has no DNS proxy.
    #[arg(long = "redirect-dns")]
    pub redirect_dns: bool,
    /// Istio's DNS capture of every port-53 destination: refused, as --redirect-dns.
    #[arg(long = "capture-all-dns")]
    pub capture_all_dns: bool,
    /// Istio's conntrack INVALID drop (mangle table): refused.
    #[arg(long = "drop-invalid")]
    pub drop_invalid: bool,
}

/// Why `run` failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The flags are wrong.
    #[error(transparent)]
    Config(#[from] CaptureError),
    /// iptables failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The dry-run output could not be written.
    #[error("writing the rules: {0}")]
    Output(#[from] std::io::Error),
}

impl IptablesArgs {
    /// The validated configuration.
    pub fn to_config(&self) -> Result<CaptureConfig, CaptureError> {
        self.refuse_unsupported()?;
        let uid = if self.proxy_uid.trim().is_empty() {
            DEFAULT_PROXY_UID
        } else {
            self.proxy_uid.as_str()
        };
        let gid = if self.proxy_gid.trim().is_empty() {
            uid
        } else {
            self.proxy_gid.as_str()
        };
        let exclude_cidr = self.service_exclude_cidr.trim();
        if exclude_cidr == "*" {
            return Err(CaptureError::WildcardExclude);
        }
        Ok(CaptureConfig {
            proxy_port: parse_port("-p/--envoy-port", &self.envoy_port)?,
            inbound_capture_port: parse_port(
                "-z/--inbound-capture-port",
                &self.inbound_capture_port,
            )?,
            inbound_tunnel_port: parse_port("-e/--inbound-tunnel-port", &self.inbound_tunnel_port)?,
            proxy_uids: parse_names("-u/--proxy-uid", "user", uid)?,
            proxy_gids: parse_names("-g/--proxy-gid", "group", gid)?,
            mode: parse_mode(&self.interception_mode)?,
            inbound_ports: parse_inbound_ports(&self.inbound_ports)?,
            inbound_ports_exclude: parse_ports(
                "-d/--istio-local-exclude-ports",
                &self.local_exclude_ports,
            )?,
            outbound_ranges: parse_outbound_ranges(&self.service_cidr)?,
            outbound_ranges_exclude: config::parse_cidrs(
                "-x/--istio-service-exclude-cidr",
                exclude_cidr,
            )?,
            outbound_ports: parse_ports("-q/--istio-outbound-ports", &self.outbound_ports)?,
            outbound_ports_exclude: parse_ports(
                "-o/--istio-local-outbound-ports-exclude",
                &self.outbound_ports_exclude,
            )?,
            kube_virt_interfaces: parse_names(
                "-k/--kube-virt-interfaces",
                "interface",
                &self.kube_virt_interfaces,
            )?,
            exclude_interfaces: parse_names(
                "-c/--istio-exclude-interfaces",
                "interface",
                &self.exclude_interfaces,
            )?,
            owner_groups: parse_owner_groups(&self.owner_groups, &self.owner_groups_exclude)?,
        })
    }

    fn refuse_unsupported(&self) -> Result<(), CaptureError> {
        let dns = "Mast has no DNS proxy on 15053; leave DNS uncaptured";
        let refused = [
            (self.redirect_dns, "--redirect-dns", dns),
            (self.capture_all_dns, "--capture-all-dns", dns),
            (
                self.drop_invalid,
                "--drop-invalid",
                "the mangle table is not written; leave INVALID_DROP off",
            ),
        ];
        match refused.into_iter().find(|(set, _, _)| *set) {
            Some((_, flag, why)) => Err(CaptureError::Unsupported { flag, why }),
            None => Ok(()),
        }
    }
}

/// What `run` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `--dry-run`: the rules were printed.
    Printed,
    /// The rules were applied (the restore input used).
    Applied(String),
    /// `--cleanup`: the rules were removed (`None`: there were none).
    Removed(Option<String>),
    /// `--skip-rule-apply`: nothing was done.
    Skipped,
}

/// Runs the command: validates the flags, then prints, applies or removes the rules (IPv4,
/// and IPv6 too with `--dual-stack`).
pub fn run(
    args: &IptablesArgs,
    runner: &dyn Runner,
    out: &mut dyn Write,
) -> Result<Outcome, RunError> {
    let config = args.to_config()?;
    if args.run_validation {
        tracing::warn!(
            "--run-validation is accepted but not implemented: the rules are not probed"
        );
    }
    if args.skip_rule_apply {
        return Ok(Outcome::Skipped);
    }
    let families: &[Family] = if args.dual_stack {
        &[Family::V4, Family::V6]
    } else {
        &[Family::V4]
    };
    if args.dry_run {
        for family in families {
            let (_, restore) = apply::programs(*family);
            writeln!(out, "# {restore} --noflush input")?;
            if args.cleanup {
                writeln!(
                    out,
                    "# --cleanup: deletes the jumps to ISTIO_* chains, then flushes and deletes the chains"
                )?;
            } else {
                out.write_all(nat_rules_for(&config, *family).restore_input().as_bytes())?;
            }
        }
        return Ok(Outcome::Printed);
    }
    let mut done = Vec::new();
    for family in families {
        if args.cleanup {
            done.extend(apply::cleanup(&config, *family, runner)?);
        } else {
            done.push(apply::apply(&config, *family, runner)?);
        }
    }
    if args.cleanup {
        tracing::info!(
            removed = !done.is_empty(),
            "istio iptables rules cleaned up"
        );
        return Ok(Outcome::Removed((!done.is_empty()).then(|| done.concat())));
    }
    tracing::info!("istio iptables rules applied:\n{}", done.concat());
    Ok(Outcome::Applied(done.concat()))
}
