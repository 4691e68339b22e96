//! The pod's nat table, written and removed by the sidecar binary's init command
//! (`mast-proxy init` / `mast-agent iptables`) with Istio's injector flags, and checked as
//! `iptables -t nat -S` prints it: the dry run changes nothing, applying gives Istio's
//! table, applying again gives the same table, cleanup gives back the table from before;
//! with `--dual-stack`, the same for the IPv6 table (`ip6tables`).

use std::path::{Path, PathBuf};

use super::netns::{SIDECAR_FLAGS, Sandbox};
use super::sidecar::Sidecar;

/// Istio's rules for [`SIDECAR_FLAGS`], as `iptables -S` prints them (in chain order).
const EXPECTED: &str = "-A PREROUTING -p tcp -j ISTIO_INBOUND
-A OUTPUT -p tcp -j ISTIO_OUTPUT
-A ISTIO_INBOUND -p tcp -m tcp --dport 15008 -j RETURN
-A ISTIO_INBOUND -p tcp -m tcp --dport 15090 -j RETURN
-A ISTIO_INBOUND -p tcp -m tcp --dport 15021 -j RETURN
-A ISTIO_INBOUND -p tcp -m tcp --dport 15020 -j RETURN
-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001";

/// The chains, in the order compared.
const CHAINS: [&str; 6] = [
    "PREROUTING",
    "OUTPUT",
    "ISTIO_INBOUND",
    "ISTIO_IN_REDIRECT",
    "ISTIO_OUTPUT",
    "ISTIO_REDIRECT",
];

/// The `-A` lines of `table`, chain by chain in [`CHAINS`] order (each chain's rules in
/// their order), then the `-N` lines sorted: what is compared.
fn canonical(table: &str) -> Vec<String> {
    let mut lines: Vec<String> = CHAINS
        .iter()
        .flat_map(|chain| {
            let prefix = format!("-A {chain} ");
            table
                .lines()
                .filter(move |l| l.starts_with(&prefix))
                .map(str::to_owned)
        })
        .collect();
    let mut chains: Vec<String> = table
        .lines()
        .filter(|l| l.starts_with("-N "))
        .map(str::to_owned)
        .collect();
    chains.sort();
    lines.extend(chains);
    lines
}

/// Runs the sidecar binary's init command in the pod.
pub struct Init<'a> {
    sandbox: &'a Sandbox,
    binary: PathBuf,
    command: &'static str,
}

impl<'a> Init<'a> {
    /// The init command of `sidecar`'s binary.
    pub fn new(sandbox: &'a Sandbox, sidecar: Sidecar) -> Self {
        let binary = mast_test_support::cargo_bin(sidecar.binary()).expect("binary built");
        Self {
            sandbox,
            binary,
            command: sidecar.init_command(),
        }
    }

    fn run(&self, extra: Option<&str>) -> String {
        self.run_with(extra.as_slice())
    }

    fn run_with(&self, extra: &[&str]) -> String {
        let mut args = vec![self.command];
        args.extend(extra);
        args.extend(SIDECAR_FLAGS);
        self.sandbox
            .exec(&self.binary, &args)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `--dry-run` prints Istio's rules and leaves the table as it was.
    pub fn dry_run_changes_nothing(&self, before: &str) {
        let printed = self.run(Some("--dry-run"));
        for line in [
            "-A PREROUTING -p tcp -j ISTIO_INBOUND",
            "-A ISTIO_OUTPUT -j ISTIO_REDIRECT",
        ] {
            assert!(
                printed.contains(line),
                "--dry-run prints {line:?}:\n{printed}"
            );
        }
        assert_eq!(
            self.sandbox.nat_rules(),
            before,
            "--dry-run changed the table"
        );
    }

    /// Applies the rules: Istio's table; applies them again: the same table.
    pub fn apply_twice(&self) {
        self.run(None);
        let applied = self.sandbox.nat_rules();
        let expected: Vec<String> = EXPECTED
            .lines()
            .map(str::to_owned)
            .chain(
                [
                    "ISTIO_INBOUND",
                    "ISTIO_IN_REDIRECT",
                    "ISTIO_OUTPUT",
                    "ISTIO_REDIRECT",
                ]
                .map(|c| format!("-N {c}")),
            )
            .collect();
        assert_eq!(
            canonical(&applied),
            expected,
            "the applied table:\n{applied}"
        );
        self.run(None);
        let again = self.sandbox.nat_rules();
        assert_eq!(again, applied, "applying twice changed the table");
    }

    /// `--cleanup`: the table is as before the first apply.
    pub fn cleanup_restores(&self, before: &str) {
        self.run(Some("--cleanup"));
        assert_eq!(
            self.sandbox.nat_rules(),
            before,
            "the table after --cleanup"
        );
        self.run(Some("--cleanup"));
        assert_eq!(self.sandbox.nat_rules(), before, "a second --cleanup");
    }

    /// `--dual-stack`: the IPv6 table gets Istio's rules with ::6 and ::1 (twice: the same
    /// table), and `--cleanup --dual-stack` gives both tables back as they were.
    pub fn dual_stack_round_trip(&self, before: &str) {
        let ip6 = |sandbox: &Sandbox| sandbox.exec(Path::new("ip6tables"), &["-t", "nat", "-S"]);
        let Ok(before6) = ip6(self.sandbox) else {
            eprintln!("skipped the --dual-stack check: ip6tables does not run here");
            return;
        };
        self.run_with(&["--dual-stack"]);
        let applied = ip6(self.sandbox).unwrap();
        for line in [
            "-A OUTPUT -p tcp -j ISTIO_OUTPUT",
            "-A ISTIO_OUTPUT -s ::6/128 -o lo -j RETURN",
            "-A ISTIO_OUTPUT -d ::1/128 -j RETURN",
            "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
        ] {
            assert!(
                applied.contains(line),
                "the IPv6 table has {line:?}:\n{applied}"
            );
        }
        self.run_with(&["--dual-stack"]);
        assert_eq!(ip6(self.sandbox).unwrap(), applied, "applying twice (IPv6)");
        self.run_with(&["--cleanup", "--dual-stack"]);
        assert_eq!(
            ip6(self.sandbox).unwrap(),
            before6,
            "the IPv6 table after --cleanup"
        );
        assert_eq!(
            self.sandbox.nat_rules(),
            before,
            "the table after --cleanup"
        );
    }
}
