//! The `mast-agent` binary with real Envoy, as an operator or `mastctl up` uses it: it
//! documents its flags, starts Envoy and reports it ready with the ports it chose, restarts
//! Envoy when it dies (within a budget), and stops cleanly on SIGTERM.
//!
//! "Ready" is Envoy's `/ready` answering 200 (LIVE). Envoy goes LIVE only after its initial
//! xDS: the first CDS and LDS answers, or `initial_fetch_timeout` for each. Against a dummy
//! control plane these tests shorten that timeout; one test shows that with `0` (wait
//! forever) the agent never reports ready without a control plane.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mast_agent::admin::AdminClient;
use mast_test_support::process::{process_alive, send_signal};
use mast_test_support::{AgentProcess, TempDir, free_port, require_envoy, wait_for};

const AGENT: &str = env!("CARGO_BIN_EXE_mast-agent");

/// A control plane address where nothing listens.
fn dummy_xds() -> String {
    format!("127.0.0.1:{}", free_port())
}

fn start(extra: &[&str]) -> AgentProcess {
    let envoy = require_envoy();
    let xds = dummy_xds();
    let mut args = vec![
        "--workload",
        "client",
        "--namespace",
        "default",
        "--label",
        "app=client",
        "--admin-port",
        "0",
        "--concurrency",
        "1",
        "--initial-fetch-timeout",
        "300ms",
        "--drain-duration",
        "200ms",
        "--xds-address",
        &xds,
        "--envoy",
        envoy.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    AgentProcess::start(Path::new(AGENT), &args, Duration::from_secs(30)).unwrap()
}

fn admin_answers(addr: SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

#[test]
fn help_documents_every_flag() {
    let out = Command::new(AGENT).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--xds-address",
        "--delta",
        "--node-id",
        "--type",
        "--ip",
        "--workload",
        "--namespace",
        "--domain",
        "--label",
        "--service-account",
        "--cluster-id",
        "--mesh-id",
        "--capture-mode",
        "--outbound-port",
        "--inbound-port",
        "--admin-port",
        "--envoy",
        "--concurrency",
        "--log-level",
        "--work-dir",
        "--ports-file",
        "--initial-fetch-timeout",
        "--drain-duration",
        "--ca-address",
        "--ca-token-file",
        "--cert-ttl",
    ] {
        assert!(
            help.contains(flag),
            "--help does not mention {flag}:\n{help}"
        );
    }
    assert!(help.contains("[env: MAST_XDS_ADDRESS=]"), "{help}");
    assert!(help.contains("[default: 127.0.0.1:15010]"), "{help}");
    assert!(help.contains("[env: MAST_CA_TOKEN_FILE=]"), "{help}");
}

#[test]
fn bad_flags_are_refused_before_envoy_starts() {
    let out = Command::new(AGENT)
        .args(["--workload", "a", "--outbound-port", "15101"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--capture-mode ports"));
    let out = Command::new(AGENT).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--workload"));
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_ready_with_its_ports_and_stops_on_sigterm() {
    let mut agent = start(&[
        "--capture-mode",
        "ports",
        "--inbound-port",
        "9080",
        "--inbound-port",
        "9090=0",
    ]);
    let ports = agent.ports().clone();
    assert_eq!(
        ports.node_id,
        "sidecar~127.0.0.1~client.default~default.svc.cluster.local"
    );
    assert_eq!(
        ports.inbound.keys().copied().collect::<Vec<_>>(),
        [9080, 9090]
    );
    let all: std::collections::BTreeSet<u16> = [ports.admin, ports.outbound]
        .into_iter()
        .chain(ports.inbound.values().copied())
        .collect();
    assert_eq!(all.len(), 4, "ports must differ: {ports:?}");
    // Ready means Envoy's admin says LIVE.
    let ready = AdminClient::new(ports.admin).get("/ready").await.unwrap();
    assert_eq!((ready.status, ready.body.trim()), (200, "LIVE"));
    // The bootstrap carries the node and the capture ports.
    let bootstrap = std::fs::read_to_string(agent.dir().join("work/bootstrap.yaml")).unwrap();
    assert!(
        bootstrap.contains(&format!("MAST_OUTBOUND_PORT: \"{}\"", ports.outbound)),
        "{bootstrap}"
    );
    assert!(bootstrap.contains("app: client"), "{bootstrap}");
    let envoy_pid = ports.envoy_pid;
    assert!(process_alive(envoy_pid));

    let start = Instant::now();
    let status = agent
        .stop(Duration::from_secs(20))
        .expect("agent exits after SIGTERM");
    assert!(status.success(), "{status}\n{}", agent.log_tail());
    assert!(start.elapsed() < Duration::from_secs(15));
    assert!(
        wait_for(|| !process_alive(envoy_pid), Duration::from_secs(5)),
        "envoy still running"
    );
    assert!(!admin_answers(agent.admin_addr()));
    assert!(
        !agent.dir().join("ports.json").exists(),
        "the ports file goes with the agent"
    );
    let log = agent.log_tail();
    assert!(log.contains("draining listeners"), "{log}");
}

#[test]
fn restarts_envoy_when_it_dies() {
    let mut agent = start(&[]);
    let first = agent.ports().clone();
    assert_eq!(
        first.outbound, 15001,
        "iptables mode reports Istio's capture port"
    );
    send_signal("KILL", &first.envoy_pid.to_string()).unwrap();
    let second = agent
        .wait_ports(|p| p.envoy_pid != first.envoy_pid, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        second.admin, first.admin,
        "the admin port survives a restart"
    );
    assert!(admin_answers(agent.admin_addr()));
    assert!(agent.log_tail().contains("restarting envoy"));
    assert!(agent.stop(Duration::from_secs(20)).unwrap().success());
}

#[test]
fn gives_up_after_five_restarts_in_a_minute() {
    let dir = TempDir::new("mast-agent-false").unwrap();
    let start = Instant::now();
    let out = Command::new(AGENT)
        .args([
            "--workload",
            "w",
            "--admin-port",
            "0",
            "--envoy",
            "/bin/false",
            "--work-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.matches("restarting envoy").count(), 5, "{stderr}");
    assert!(stderr.contains("giving up"), "{stderr}");
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[test]
fn without_a_control_plane_envoy_waits_for_xds_when_told_to() {
    let envoy = require_envoy();
    let dir = TempDir::new("mast-agent-wait").unwrap();
    let xds = dummy_xds();
    let ports_file = dir.join("ports.json");
    let admin = free_port().to_string();
    let mut guard = mast_test_support::ProcessGuard::spawn(
        Command::new(AGENT)
            .args([
                "--workload",
                "w",
                "--concurrency",
                "1",
                "--initial-fetch-timeout",
                "0",
                "--drain-duration",
                "0",
            ])
            .args([
                "--admin-port",
                &admin,
                "--xds-address",
                &xds,
                "--envoy",
                envoy.to_str().unwrap(),
            ])
            .arg("--work-dir")
            .arg(dir.join("work"))
            .arg("--ports-file")
            .arg(&ports_file)
            .stderr(std::process::Stdio::null()),
    )
    .unwrap();
    let admin_addr: SocketAddr = format!("127.0.0.1:{admin}").parse().unwrap();
    assert!(
        wait_for(|| admin_answers(admin_addr), Duration::from_secs(20)),
        "admin never came up"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(!ports_file.exists(), "reported ready without any xDS");
    guard.signal("TERM").unwrap();
    let status = guard
        .wait_timeout(Duration::from_secs(20))
        .unwrap()
        .expect("agent exits after SIGTERM");
    assert!(status.success(), "{status}");
}

/// Envoy's xDS stream reconnects with a back-off capped at 8 s (the bootstrap's
/// `retry_back_off`), not Envoy's default 30 s: after 20 s without a control plane, the one
/// that comes up is reached within 10 s (a pod's sidecar whose first attempts failed once
/// waited past its initial fetch timeout).
#[test]
fn a_control_plane_that_comes_up_late_is_reached_within_the_back_off_cap() {
    let envoy = require_envoy();
    let dir = TempDir::new("mast-agent-late").unwrap();
    let port = free_port();
    let xds = format!("127.0.0.1:{port}");
    let mut guard = mast_test_support::ProcessGuard::spawn(
        Command::new(AGENT)
            .args(["--workload", "w", "--concurrency", "1"])
            .args(["--initial-fetch-timeout", "0", "--drain-duration", "0"])
            .args(["--admin-port", "0", "--xds-address", &xds])
            .arg("--envoy")
            .arg(&envoy)
            .arg("--work-dir")
            .arg(dir.join("work"))
            .stderr(std::process::Stdio::null()),
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(20));
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let up = Instant::now();
    let reached = wait_for(|| listener.accept().is_ok(), Duration::from_secs(10));
    assert!(
        reached,
        "Envoy did not reconnect within 10 s of the control plane coming up"
    );
    eprintln!(
        "reconnected {:?} after the control plane came up",
        up.elapsed()
    );
    guard.signal("TERM").unwrap();
    let _ = guard.wait_timeout(Duration::from_secs(20));
}
