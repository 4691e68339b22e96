//! Writing the rules into the kernel and taking them out again, as one `iptables-restore
//! --noflush` transaction each (nothing half-applied), through a [`Runner`] so the
//! planning is tested without root:
//! - [`apply`]: reads the nat table (`iptables-save -t nat`), and in one transaction deletes
//!   the jumps an earlier run left in the built-in chains, creates or flushes Istio's chains
//!   and adds the rules. Running it twice gives the same table (no duplicate jumps).
//! - [`cleanup`] (istio-clean-iptables): deletes the jumps, flushes and deletes Istio's
//!   chains; other rules are left as they were.

use std::io::Write as _;
use std::process::{Command, Stdio};

use super::config::CaptureConfig;
use super::rules::{Family, ISTIO_CHAINS, NatRules, nat_rules_for};

/// The program reading the table.
pub const IPTABLES_SAVE: &str = "iptables-save";
/// The program writing it.
pub const IPTABLES_RESTORE: &str = "iptables-restore";
/// The program reading the IPv6 table.
pub const IP6TABLES_SAVE: &str = "ip6tables-save";
/// The program writing it.
pub const IP6TABLES_RESTORE: &str = "ip6tables-restore";

/// The programs reading and writing `family`'s tables.
pub fn programs(family: Family) -> (&'static str, &'static str) {
    match family {
        Family::V4 => (IPTABLES_SAVE, IPTABLES_RESTORE),
        Family::V6 => (IP6TABLES_SAVE, IP6TABLES_RESTORE),
    }
}

/// Why the rules could not be applied or removed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The program could not be started (not installed, not allowed).
    #[error("`{command}` could not be run: {source} (is iptables installed, and are we root?)")]
    Spawn {
        /// The command line.
        command: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The program ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// Its error output, trimmed.
        stderr: String,
    },
}

/// Runs the iptables programs.
pub trait Runner {
    /// Runs `program args`, with `stdin` as its input, and returns its standard output.
    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, ApplyError>;
}

/// Runs the real programs (found on `PATH`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRunner;

impl Runner for SystemRunner {
    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, ApplyError> {
        let command = format!("{program} {}", args.join(" "));
        let spawn_error = |source| ApplyError::Spawn {
            command: command.clone(),
            source,
        };
        let mut child = Command::new(program)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes()).map_err(spawn_error)?;
        }
        let out = child.wait_with_output().map_err(spawn_error)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(ApplyError::Failed {
                command,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }
}

/// Applies `config`'s rules of `family`; returns the `iptables-restore` input it used.
pub fn apply(
    config: &CaptureConfig,
    family: Family,
    runner: &dyn Runner,
) -> Result<String, ApplyError> {
    let (save, restore) = programs(family);
    let current = runner.run(save, &["-t", "nat"], None)?;
    let input = apply_input(&current, &nat_rules_for(config, family));
    runner.run(restore, &["--noflush"], Some(&input))?;
    Ok(input)
}

/// Removes Istio's chains and the jumps to them (and the built-in chain rules `config`
/// would add, such as `-k`/`-c` interface rules); returns the input it used, `None` when
/// there was nothing to remove.
pub fn cleanup(
    config: &CaptureConfig,
    family: Family,
    runner: &dyn Runner,
) -> Result<Option<String>, ApplyError> {
    let (save, restore) = programs(family);
    let current = runner.run(save, &["-t", "nat"], None)?;
    let Some(input) = cleanup_input(&current, &nat_rules_for(config, family)) else {
        return Ok(None);
    };
    runner.run(restore, &["--noflush"], Some(&input))?;
    Ok(Some(input))
}

/// The `iptables-restore --noflush` input turning the nat table `current` (as
/// `iptables-save -t nat` prints it) into one with exactly `rules`' Istio rules.
pub fn apply_input(current: &str, rules: &NatRules) -> String {
    let mut out = String::from("*nat\n");
    for chain in ISTIO_CHAINS {
        out.push_str(&format!(":{chain} - [0:0]\n"));
    }
    for line in stale_builtin_rules(current, rules) {
        out.push_str(&line);
        out.push('\n');
    }
    for line in rules.lines() {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str("COMMIT\n");
    out
}

/// The `iptables-restore --noflush` input removing Istio's rules from `current`, or `None`
/// when it holds none.
pub fn cleanup_input(current: &str, rules: &NatRules) -> Option<String> {
    let deletes = stale_builtin_rules(current, rules);
    let chains: Vec<&str> = current
        .lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| c.starts_with("ISTIO_"))
        .collect();
    if deletes.is_empty() && chains.is_empty() {
        return None;
    }
    let mut out = String::from("*nat\n");
    for line in deletes {
        out.push_str(&line);
        out.push('\n');
    }
    for flag in ["-F", "-X"] {
        for chain in &chains {
            out.push_str(&format!("{flag} {chain}\n"));
        }
    }
    out.push_str("COMMIT\n");
    Some(out)
}

/// `-D` lines for the rules of `current`'s built-in chains that are Istio's: jumps to an
/// `ISTIO_*` chain, and rules equal to one `rules` puts in a built-in chain.
fn stale_builtin_rules(current: &str, rules: &NatRules) -> Vec<String> {
    let ours: Vec<String> = rules
        .rules
        .iter()
        .filter(|r| r.in_builtin_chain())
        .map(|r| normalize(&format!("{} {}", r.chain, r.spec)))
        .collect();
    current
        .lines()
        .filter_map(|l| l.strip_prefix("-A "))
        .filter(|rule| {
            let mut words = rule.split_whitespace();
            let chain = words.next().unwrap_or("");
            if chain.starts_with("ISTIO_") {
                return false;
            }
            let target = rule
                .split_whitespace()
                .skip_while(|w| *w != "-j")
                .nth(1)
                .unwrap_or("");
            target.starts_with("ISTIO_") || ours.contains(&normalize(rule))
        })
        .map(|rule| format!("-D {rule}"))
        .collect()
}

/// A rule as compared: the implicit `-m tcp`/`-m udp` iptables-save adds are dropped.
fn normalize(rule: &str) -> String {
    let words: Vec<&str> = rule.split_whitespace().collect();
    let mut kept = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        if words[i] == "-m" && matches!(words.get(i + 1), Some(&"tcp") | Some(&"udp")) {
            i += 2;
            continue;
        }
        kept.push(words[i]);
        i += 1;
    }
    kept.join(" ")
}
