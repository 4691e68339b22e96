//! The rules for flag combinations of Istio's `tools/istio-iptables/pkg/capture/run_test.go`,
//! compared line for line with its goldens (`testdata/<name>.golden`, restore-format era:
//! `-A OUTPUT -p tcp -j ISTIO_OUTPUT`, `! --dport 15008` on the proxy uid and gid rules;
//! the goldens' DNS rules are left out, Mast refuses DNS capture), plus flag errors and the
//! apply/cleanup transactions planned from `iptables-save` output.

use std::cell::RefCell;

use clap::Parser;

use super::apply::{ApplyError, Runner, apply_input, cleanup_input};
use super::cli::{IptablesArgs, Outcome, run};
use super::config::CaptureError;
use super::rules::{Family, nat_rules, nat_rules_for};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: IptablesArgs,
}

fn args(flags: &[&str]) -> IptablesArgs {
    let mut all = vec!["istio-iptables"];
    all.extend(flags);
    Cli::try_parse_from(all).expect("flags parse").args
}

fn rules(flags: &[&str]) -> Vec<String> {
    let config = args(flags).to_config().expect("valid flags");
    nat_rules(&config).lines()
}

fn table(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

const HEAD: &str = "
-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006";

const OWNER_1337: &str = "
-A OUTPUT -p tcp -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN";

fn expect(parts: &[&str]) -> Vec<String> {
    parts.iter().flat_map(|p| table(p)).collect()
}

/// (golden name, flags, expected rules).
fn cases() -> Vec<(&'static str, Vec<&'static str>, Vec<String>)> {
    let loopback_return = "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN";
    vec![
        ("empty", vec![], expect(&[HEAD, OWNER_1337, loopback_return])),
        (
            "inbound-ports-include",
            vec!["-b", "32000,31000"],
            expect(&[
                HEAD,
                "-A PREROUTING -p tcp -j ISTIO_INBOUND
                 -A ISTIO_INBOUND -p tcp --dport 32000 -j ISTIO_IN_REDIRECT
                 -A ISTIO_INBOUND -p tcp --dport 31000 -j ISTIO_IN_REDIRECT",
                OWNER_1337,
                loopback_return,
            ]),
        ),
        (
            "inbound-ports-wildcard",
            vec!["-b", "*"],
            expect(&[
                HEAD,
                "-A PREROUTING -p tcp -j ISTIO_INBOUND
                 -A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT",
                OWNER_1337,
                loopback_return,
            ]),
        ),
        (
            "ipnets",
            vec!["-i", "10.0.0.0/8"],
            expect(&[
                HEAD,
                OWNER_1337,
                loopback_return,
                "-A ISTIO_OUTPUT -d 10.0.0.0/8 -j ISTIO_REDIRECT",
            ]),
        ),
        (
            "kube-virt-interfaces",
            vec!["-k", "eth1,eth2", "-i", "*"],
            expect(&[
                "-I PREROUTING 1 -i eth1 -j RETURN
                 -I PREROUTING 1 -i eth2 -j RETURN",
                HEAD,
                OWNER_1337,
                loopback_return,
                "-A ISTIO_OUTPUT -j ISTIO_REDIRECT
                 -I PREROUTING 1 -i eth1 -j ISTIO_REDIRECT
                 -I PREROUTING 1 -i eth2 -j ISTIO_REDIRECT",
            ]),
        ),
        (
            "ipnets-with-kube-virt-interfaces",
            vec!["-k", "eth1,eth2", "-i", "10.0.0.0/8"],
            expect(&[
                "-I PREROUTING 1 -i eth1 -j RETURN
                 -I PREROUTING 1 -i eth2 -j RETURN",
                HEAD,
                OWNER_1337,
                loopback_return,
                "-I PREROUTING 1 -i eth1 -d 10.0.0.0/8 -j ISTIO_REDIRECT
                 -I PREROUTING 1 -i eth2 -d 10.0.0.0/8 -j ISTIO_REDIRECT
                 -A ISTIO_OUTPUT -d 10.0.0.0/8 -j ISTIO_REDIRECT",
            ]),
        ),
        (
            "outbound-ports-include",
            vec!["-q", "32000,31000"],
            expect(&[
                HEAD,
                OWNER_1337,
                loopback_return,
                "-A ISTIO_OUTPUT -p tcp --dport 32000 -j ISTIO_REDIRECT
                 -A ISTIO_OUTPUT -p tcp --dport 31000 -j ISTIO_REDIRECT",
            ]),
        ),
        (
            "outbound-owner-groups",
            vec!["--outbound-owner-groups", "java,202"],
            expect(&[
                HEAD,
                OWNER_1337,
                "-A ISTIO_OUTPUT -m owner ! --gid-owner java -m owner ! --gid-owner 202 -j RETURN",
                loopback_return,
            ]),
        ),
        (
            "outbound-owner-groups-exclude",
            vec!["--outbound-owner-groups-exclude", "888,ftp"],
            expect(&[
                HEAD,
                OWNER_1337,
                "-A ISTIO_OUTPUT -m owner --gid-owner 888 -j RETURN
                 -A ISTIO_OUTPUT -m owner --gid-owner ftp -j RETURN",
                loopback_return,
            ]),
        ),
        (
            "basic-exclude-nic",
            vec!["-c", "not-istio-nic"],
            expect(&[
                "-A PREROUTING -i not-istio-nic -j RETURN
                 -A OUTPUT -o not-istio-nic -j RETURN",
                HEAD,
                OWNER_1337,
                loopback_return,
            ]),
        ),
        (
            // ip-range.golden without its DNS rules and its final `-j RETURN`.
            "ip-range",
            vec!["-x", "1.1.0.0/16", "-i", "9.9.0.0/16", "-g", "1,2", "-u", "3,4"],
            expect(&[
                HEAD,
                "-A OUTPUT -p tcp -j ISTIO_OUTPUT
                 -A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
                 -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 3 -j ISTIO_IN_REDIRECT
                 -A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 3 -j RETURN
                 -A ISTIO_OUTPUT -m owner --uid-owner 3 -j RETURN
                 -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 4 -j ISTIO_IN_REDIRECT
                 -A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 4 -j RETURN
                 -A ISTIO_OUTPUT -m owner --uid-owner 4 -j RETURN
                 -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1 -j ISTIO_IN_REDIRECT
                 -A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1 -j RETURN
                 -A ISTIO_OUTPUT -m owner --gid-owner 1 -j RETURN
                 -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 2 -j ISTIO_IN_REDIRECT
                 -A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 2 -j RETURN
                 -A ISTIO_OUTPUT -m owner --gid-owner 2 -j RETURN
                 -A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
                 -A ISTIO_OUTPUT -d 1.1.0.0/16 -j RETURN
                 -A ISTIO_OUTPUT -d 9.9.0.0/16 -j ISTIO_REDIRECT",
            ]),
        ),
        (
            // loopback-outbound-iprange.golden without its DNS rules: a loopback range in
            // -i drops the `-o lo ! --uid-owner … RETURN` rules.
            "loopback-outbound-iprange",
            vec!["-i", "127.1.2.3/32", "-g", "1,2", "-u", "3,4"],
            expect(&[
                HEAD,
                "-A OUTPUT -p tcp -j ISTIO_OUTPUT
                 -A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
                 -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 3 -j ISTIO_IN_REDIRECT
                 -A ISTIO_OUTPUT -m owner --uid-owner 3 -j RETURN
                 -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 4 -j ISTIO_IN_REDIRECT
                 -A ISTIO_OUTPUT -m owner --uid-owner 4 -j RETURN
                 -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1 -j ISTIO_IN_REDIRECT
                 -A ISTIO_OUTPUT -m owner --gid-owner 1 -j RETURN
                 -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 2 -j ISTIO_IN_REDIRECT
                 -A ISTIO_OUTPUT -m owner --gid-owner 2 -j RETURN
                 -A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
                 -A ISTIO_OUTPUT -d 127.1.2.3/32 -j ISTIO_REDIRECT",
            ]),
        ),
        (
            // outbound-ports-exclude.golden has one multiport rule per protocol; the
            // restore-format era wrote one tcp rule per port (OUTPUT jumps for tcp only).
            "outbound-ports-exclude",
            vec!["-o", "22,80,443"],
            expect(&[
                HEAD,
                "-A OUTPUT -p tcp -j ISTIO_OUTPUT
                 -A ISTIO_OUTPUT -p tcp --dport 22 -j RETURN
                 -A ISTIO_OUTPUT -p tcp --dport 80 -j RETURN
                 -A ISTIO_OUTPUT -p tcp --dport 443 -j RETURN",
                &OWNER_1337.replace("-A OUTPUT -p tcp -j ISTIO_OUTPUT\n", ""),
                loopback_return,
            ]),
        ),
    ]
}

#[test]
fn rules_match_istio_goldens() {
    for (name, flags, expected) in cases() {
        assert_eq!(
            rules(&flags),
            expected,
            "golden {name}.golden, flags {flags:?}"
        );
    }
}

/// The command Istio's injector puts in `istio-init` (pkg/kube/inject's sidecar template).
const SIDECAR_FLAGS: [&str; 16] = [
    "-p",
    "15001",
    "-z",
    "15006",
    "-u",
    "1337",
    "-m",
    "REDIRECT",
    "-i",
    "*",
    "-x",
    "",
    "-b",
    "*",
    "-d",
    "15090,15021,15020",
];

#[test]
fn the_injected_sidecar_command_captures_everything_but_the_proxy() {
    let input = nat_rules(&args(&SIDECAR_FLAGS).to_config().unwrap()).restore_input();
    let expected = "*nat
:ISTIO_INBOUND - [0:0]
:ISTIO_REDIRECT - [0:0]
:ISTIO_IN_REDIRECT - [0:0]
:ISTIO_OUTPUT - [0:0]
-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN
-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
-A OUTPUT -p tcp -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
COMMIT
";
    assert_eq!(input, expected);
}

#[test]
fn bad_flags_are_refused_naming_the_flag_and_value() {
    let error = |flags: &[&str]| args(flags).to_config().unwrap_err().to_string();
    assert_eq!(
        error(&["-b", "80,http"]),
        "-b/--istio-inbound-ports: \"http\" is not a port (1-65535)"
    );
    assert_eq!(
        error(&["-p", "0"]),
        "-p/--envoy-port: \"0\" is not a port (1-65535)"
    );
    assert!(
        error(&["-i", "10.0.0.0/33"])
            .starts_with("-i/--istio-service-cidr: \"10.0.0.0/33\" is not an IP range"),
        "{}",
        error(&["-i", "10.0.0.0/33"])
    );
    assert!(error(&["-x", "*"]).contains("\"*\" is not allowed"));
    assert!(error(&["-m", "TPROXY"]).contains("REDIRECT only"));
    assert!(error(&["-m", "MAGIC"]).contains("neither REDIRECT nor TPROXY"));
    assert!(error(&["--redirect-dns"]).starts_with("--redirect-dns: not supported by Mast"));
    assert!(error(&["--capture-all-dns"]).contains("no DNS proxy"));
    assert!(matches!(
        args(&["-k", "eth0;reboot"]).to_config(),
        Err(CaptureError::BadName {
            what: "interface",
            ..
        })
    ));
    // Istio's list syntax: spaces and empty items are fine, IPv6 ranges are left to ip6tables.
    let lax = rules(&["-b", " 80, ,81,", "-i", "10.0.0.0/8,2001:db8::/32"]);
    assert!(lax.contains(&"-A ISTIO_INBOUND -p tcp --dport 81 -j ISTIO_IN_REDIRECT".to_owned()));
    assert!(!lax.iter().any(|l| l.contains("2001:db8")), "{lax:?}");
}

/// What `iptables-save -t nat` prints after one apply of the sidecar command (nft backend).
const SAVED_AFTER_APPLY: &str = "# Generated by iptables-save v1.8.9 (nf_tables)
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:ISTIO_INBOUND - [0:0]
:ISTIO_IN_REDIRECT - [0:0]
:ISTIO_OUTPUT - [0:0]
:ISTIO_REDIRECT - [0:0]
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A OUTPUT -p tcp -j ISTIO_OUTPUT
-A OUTPUT -d 192.0.2.1/32 -j RETURN
-A ISTIO_INBOUND -p tcp -m tcp --dport 15008 -j RETURN
-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
COMMIT
";

#[test]
fn applying_again_replaces_the_jumps_instead_of_adding_more() {
    let rules = nat_rules(&args(&SIDECAR_FLAGS).to_config().unwrap());
    let first = apply_input("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n", &rules);
    assert_eq!(
        first,
        rules.restore_input(),
        "nothing to delete on a fresh table"
    );
    let again = apply_input(SAVED_AFTER_APPLY, &rules);
    let deletes: Vec<&str> = again.lines().filter(|l| l.starts_with("-D")).collect();
    assert_eq!(
        deletes,
        [
            "-D PREROUTING -p tcp -j ISTIO_INBOUND",
            "-D OUTPUT -p tcp -j ISTIO_OUTPUT"
        ],
        "the user's own OUTPUT rule stays"
    );
    assert_eq!(
        again
            .matches("-A PREROUTING -p tcp -j ISTIO_INBOUND")
            .count(),
        1
    );
}

#[test]
fn cleanup_deletes_jumps_then_flushes_and_deletes_the_chains() {
    let rules = nat_rules(&args(&["-k", "eth1"]).to_config().unwrap());
    let saved = format!("{SAVED_AFTER_APPLY}-A PREROUTING -i eth1 -j RETURN\n");
    let input = cleanup_input(&saved, &rules).expect("something to clean");
    assert_eq!(
        input,
        "*nat
-D PREROUTING -p tcp -j ISTIO_INBOUND
-D OUTPUT -p tcp -j ISTIO_OUTPUT
-D PREROUTING -i eth1 -j RETURN
-F ISTIO_INBOUND
-F ISTIO_IN_REDIRECT
-F ISTIO_OUTPUT
-F ISTIO_REDIRECT
-X ISTIO_INBOUND
-X ISTIO_IN_REDIRECT
-X ISTIO_OUTPUT
-X ISTIO_REDIRECT
COMMIT
"
    );
    let clean = "*nat\n:PREROUTING ACCEPT [0:0]\n-A OUTPUT -d 192.0.2.1/32 -j RETURN\nCOMMIT\n";
    assert_eq!(cleanup_input(clean, &rules), None);
}

/// Records the commands; answers `iptables-save` with `saved`, fails `iptables-restore`
/// when `fail` is set.
struct FakeRunner {
    saved: &'static str,
    fail: bool,
    calls: RefCell<Vec<(String, Option<String>)>>,
}

impl Runner for FakeRunner {
    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, ApplyError> {
        let command = format!("{program} {}", args.join(" "));
        self.calls
            .borrow_mut()
            .push((command.clone(), stdin.map(str::to_owned)));
        if program.ends_with("-restore") && self.fail {
            return Err(ApplyError::Failed {
                command,
                status: "exit status: 2".into(),
                stderr: "iptables-restore: line 7 failed".into(),
            });
        }
        Ok(if program.ends_with("-save") {
            self.saved.to_owned()
        } else {
            String::new()
        })
    }
}

#[test]
fn run_applies_prints_and_reports_the_failing_command() {
    let runner = FakeRunner {
        saved: SAVED_AFTER_APPLY,
        fail: false,
        calls: RefCell::default(),
    };
    let mut out = Vec::new();
    let outcome = run(&args(&SIDECAR_FLAGS), &runner, &mut out).unwrap();
    assert!(matches!(outcome, Outcome::Applied(ref input) if input.contains("-D OUTPUT")));
    let calls = runner.calls.borrow();
    assert_eq!(calls[0].0, "iptables-save -t nat");
    assert_eq!(calls[1].0, "iptables-restore --noflush");
    assert!(out.is_empty());
    drop(calls);

    let mut dry = args(&SIDECAR_FLAGS);
    dry.dry_run = true;
    let quiet = FakeRunner {
        saved: "",
        fail: true,
        calls: RefCell::default(),
    };
    assert_eq!(run(&dry, &quiet, &mut out).unwrap(), Outcome::Printed);
    assert!(quiet.calls.borrow().is_empty(), "a dry run runs nothing");
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains("-A ISTIO_OUTPUT -j ISTIO_REDIRECT")
    );

    let failing = FakeRunner {
        saved: "",
        fail: true,
        calls: RefCell::default(),
    };
    let error = run(&args(&[]), &failing, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "`iptables-restore --noflush` failed (exit status: 2): iptables-restore: line 7 failed"
    );
}

#[test]
fn ipv6_rules_match_istio_golden_ipv6_ipnets() {
    let flags = args(&[
        "-b",
        "4000,5000",
        "-d",
        "6000,7000,",
        "-k",
        "eth0,eth1",
        "-x",
        "2001:db8::/32",
        "-i",
        "2001:db8::/32",
        "--dual-stack",
    ]);
    let config = flags.to_config().unwrap();
    let inbound = "-I PREROUTING 1 -i eth0 -j RETURN
        -I PREROUTING 1 -i eth1 -j RETURN
        -A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
        -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
        -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
        -A PREROUTING -p tcp -j ISTIO_INBOUND
        -A ISTIO_INBOUND -p tcp --dport 4000 -j ISTIO_IN_REDIRECT
        -A ISTIO_INBOUND -p tcp --dport 5000 -j ISTIO_IN_REDIRECT";
    // The golden's IPv4 table: no IPv4 range is given, so no range rule.
    assert_eq!(
        nat_rules_for(&config, Family::V4).lines(),
        expect(&[
            inbound,
            OWNER_1337,
            "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN"
        ])
    );
    // The golden's IPv6 table: ::6 and ::1 for 127.0.0.6 and 127.0.0.1, the IPv6 ranges.
    let owner_v6 = OWNER_1337
        .replace("127.0.0.6/32", "::6/128")
        .replace("127.0.0.1/32", "::1/128");
    assert_eq!(
        nat_rules_for(&config, Family::V6).lines(),
        expect(&[
            inbound,
            &owner_v6,
            "-A ISTIO_OUTPUT -d ::1/128 -j RETURN
             -A ISTIO_OUTPUT -d 2001:db8::/32 -j RETURN
             -I PREROUTING 1 -i eth0 -d 2001:db8::/32 -j ISTIO_REDIRECT
             -I PREROUTING 1 -i eth1 -d 2001:db8::/32 -j ISTIO_REDIRECT
             -A ISTIO_OUTPUT -d 2001:db8::/32 -j ISTIO_REDIRECT",
        ])
    );
    let runner = FakeRunner {
        saved: "",
        fail: false,
        calls: RefCell::default(),
    };
    run(&flags, &runner, &mut Vec::new()).unwrap();
    let commands: Vec<String> = runner.calls.borrow().iter().map(|c| c.0.clone()).collect();
    assert_eq!(
        commands,
        [
            "iptables-save -t nat",
            "iptables-restore --noflush",
            "ip6tables-save -t nat",
            "ip6tables-restore --noflush"
        ]
    );
}
