//! iptables capture end to end (original destination on 15001/15006), as in a real pod,
//! with both sidecars: mast-proxy (rules written by `mast-proxy init`) and Envoy run by
//! mast-agent (rules written by `mast-agent iptables`).
//!
//! Runs only as root with `ip`, `iptables`, `iptables-save` and `iptables-restore`
//! installed and the binaries built (and, for Envoy, Envoy found: `$MAST_ENVOY` or
//! `.venv/bin/envoy`); otherwise it prints why and passes. Each test builds (see
//! `capture/netns.rs`):
//! - two network namespaces joined by a veth pair: the pod (`mcw<pid><p|e>`, 10.99.0.1/24,
//!   default route to the other side) and the network (`mcr<pid><p|e>`, 10.99.0.2 and
//!   10.99.0.3);
//! - in the pod, Istio's nat rules written by the sidecar binary's own init command with
//!   the flags Istio's injector gives `istio-init` (`-p 15001 -z 15006 -u 1337 -m REDIRECT
//!   -i '*' -x "" -b '*' -d 15090,15021,15020`): outbound TCP of every uid but 1337 → 15001,
//!   inbound TCP → 15006; `--dry-run` first (prints the rules, changes nothing), the real
//!   run twice (the second gives the same table), `--cleanup` at the end (the table is as
//!   before), then the same with `--dual-stack` for the IPv6 table;
//! - in the pod (this test binary re-run with `ip netns exec`, role `workload`): the local
//!   app (HTTP echo `local-app` on 127.0.0.1:9080 only, `local-other` on 0.0.0.0:9081),
//!   mastd serving `capture/workload.rs`'s mesh, and the sidecar as uid/gid 1337 in
//!   iptables capture mode with node IP 10.99.0.1 (15001, 15006, admin 15000);
//! - in the network namespace (role `remote`): HTTP echoes `remote` on :8080 and `outside`
//!   on :80, TCP echo `tcp` on :9000, and a probe client for inbound traffic;
//! - in the pod as uid 1000 and as uid 1337 (role `client`): probe clients.
//!
//! What it asserts, as a user would see it (clients call addresses directly, no proxy
//! settings): HTTP to a service VIP (by name and by VIP, from root and from uid 1000) is
//! answered by the upstream with the VirtualService's header and the proxy's
//! `x-envoy-upstream-service-time`; TCP to a service VIP reaches its endpoint through the
//! `<vip>_<port>` tcp_proxy; HTTP to an unknown host on an HTTP port goes through the
//! `allow_any` route to `PassthroughCluster` (original destination); an unknown port goes
//! through `virtualOutbound`'s TCP passthrough; the pod calling its own service goes out
//! through 15001 and back in through 15006; uid 1337's own calls are not captured (no
//! loop); from the network, the pod's service port is served through 15006 by
//! `inbound|9080||` (the app listens on 127.0.0.1 only) and another port by
//! `InboundPassthroughCluster` from 127.0.0.6; the clusters named (mast-proxy's access log,
//! Envoy's admin stats) are those.
//! The namespaces are deleted (and anything left in them killed) whatever happens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "capture/netns.rs"]
mod netns;
#[path = "capture/probe.rs"]
mod probe;
#[path = "capture/rules.rs"]
mod rules;
#[path = "capture/servers.rs"]
mod servers;
#[path = "capture/sidecar.rs"]
mod sidecar;
#[path = "capture/workload.rs"]
mod workload;

use std::process::Stdio;
use std::time::Duration;

use mast_test_support::{ProcessGuard, TempDir};
use sidecar::Sidecar;

/// How long the pod side may take.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(180);

/// One scenario at a time: they share the machine's two cores and Istio's fixed ports.
static ONE_AT_A_TIME: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

#[test]
fn iptables_capture_routes_a_pods_traffic_through_mast_proxy() {
    scenario(Sidecar::MastProxy);
}

#[test]
fn iptables_capture_routes_a_pods_traffic_through_envoy() {
    scenario(Sidecar::Envoy);
}

fn scenario(sidecar: Sidecar) {
    if let Some(why) =
        netns::unavailable(&["mastd", sidecar.binary()]).or_else(|| sidecar.missing_envoy())
    {
        eprintln!("skipped: iptables capture test ({}): {why}", sidecar.name());
        return;
    }
    let _one = ONE_AT_A_TIME.lock();
    let sandbox = match netns::Sandbox::create(sidecar.tag()) {
        Ok(s) => s,
        Err((true, why)) => {
            eprintln!("skipped: iptables capture test: cannot create a network namespace: {why}");
            return;
        }
        Err((false, why)) => panic!("building the capture network: {why}"),
    };
    let before = sandbox.nat_rules();
    let init = rules::Init::new(&sandbox, sidecar);
    init.dry_run_changes_nothing(&before);
    init.apply_twice();
    run_pod_side(&sandbox, sidecar);
    init.cleanup_restores(&before);
    init.dual_stack_round_trip(&before);
}

fn run_pod_side(sandbox: &netns::Sandbox, sidecar: Sidecar) {
    let out = TempDir::new("mast-capture-run").unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut command = netns::in_ns(&sandbox.pod, &exe);
    command
        .args([
            "--exact",
            "capture_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MAST_CAPTURE_ROLE", "workload")
        .env("MAST_CAPTURE_SIDECAR", sidecar.name())
        .env("MAST_CAPTURE_REMOTE_NS", &sandbox.remote)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(out.join("stdout")).unwrap())
        .stderr(std::fs::File::create(out.join("stderr")).unwrap());
    let mut pod = ProcessGuard::spawn(&mut command).unwrap();
    let status = pod.wait_timeout(SCENARIO_TIMEOUT).unwrap();
    pod.kill();
    let output = |name: &str| std::fs::read_to_string(out.join(name)).unwrap_or_default();
    let report = format!(
        "---- pod side stdout\n{}\n---- pod side stderr\n{}\n---- nat rules\n{}",
        output("stdout"),
        output("stderr"),
        sandbox.nat_rules()
    );
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!("the pod side ({}) failed ({s}):\n{report}", sidecar.name()),
        None => panic!(
            "the pod side ({}) did not finish within {SCENARIO_TIMEOUT:?}:\n{report}",
            sidecar.name()
        ),
    }
}

/// Not a test on its own: the roles `iptables_capture_…` re-runs this binary in (selected
/// by `MAST_CAPTURE_ROLE`); without it, does nothing.
#[test]
#[ignore = "helper process of iptables_capture_routes_a_pods_traffic_through_mast_proxy"]
fn capture_helper() {
    let Ok(role) = std::env::var("MAST_CAPTURE_ROLE") else {
        return;
    };
    match role.as_str() {
        "workload" => {
            let remote = std::env::var("MAST_CAPTURE_REMOTE_NS").expect("MAST_CAPTURE_REMOTE_NS");
            let sidecar = std::env::var("MAST_CAPTURE_SIDECAR").expect("MAST_CAPTURE_SIDECAR");
            workload::run(&remote, Sidecar::from_name(&sidecar));
        }
        "remote" => {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                servers::http_echo(([0, 0, 0, 0], 8080).into(), "remote")
                    .await
                    .unwrap();
                servers::http_echo(([0, 0, 0, 0], 80).into(), "outside")
                    .await
                    .unwrap();
                servers::tcp_echo(([0, 0, 0, 0], 9000).into(), "tcp")
                    .await
                    .unwrap();
            });
            probe::serve_stdin(&runtime);
        }
        "client" => {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            probe::serve_stdin(&runtime);
        }
        other => panic!("unknown MAST_CAPTURE_ROLE {other:?}"),
    }
}
