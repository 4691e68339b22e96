//! iptables capture end to end (original destination on 15001/15006), as in a real pod.
//!
//! Runs only as root with `ip`, `iptables` and `iptables-restore` installed and `mastd` and
//! `mast-proxy` built; otherwise it prints why and passes. It builds (see `capture/netns.rs`):
//! - two network namespaces joined by a veth pair: the pod (`mcw<pid>`, 10.99.0.1/24, default
//!   route to the other side) and the network (`mcr<pid>`, 10.99.0.2 and 10.99.0.3);
//! - in the pod, Istio's nat rules (`istio-iptables` for uid/gid 1337, all inbound ports):
//!   outbound TCP of every uid but 1337 → 15001, inbound TCP → 15006;
//! - in the pod (this test binary re-run with `ip netns exec`, role `workload`): the local
//!   app (HTTP echo `local-app` on 127.0.0.1:9080 only, `local-other` on 0.0.0.0:9081),
//!   mastd serving `capture/workload.rs`'s mesh, and mast-proxy as uid/gid 1337 in
//!   `--capture-mode iptables` with node IP 10.99.0.1 (15001, 15006, admin 15000);
//! - in the network namespace (role `remote`): HTTP echoes `remote` on :8080 and `outside`
//!   on :80, TCP echo `tcp` on :9000, and a probe client for inbound traffic;
//! - in the pod as uid 1000 (role `client`): a probe client.
//!
//! What it asserts, as a user would see it (clients call addresses directly, no proxy
//! settings): HTTP to a service VIP (by name and by VIP, from root and from uid 1000) is
//! answered by the upstream with the VirtualService's header and the proxy's
//! `x-envoy-upstream-service-time`; TCP to a service VIP reaches its endpoint through the
//! `<vip>_<port>` tcp_proxy; HTTP to an unknown host on an HTTP port goes through the
//! `allow_any` route to `PassthroughCluster` (original destination); an unknown port goes
//! through `virtualOutbound`'s TCP passthrough; the pod calling its own service goes out
//! through 15001 and back in through 15006; from the network, the pod's service port is
//! served through 15006 by `inbound|9080||` (the app listens on 127.0.0.1 only) and another
//! port by `InboundPassthroughCluster` from 127.0.0.6; the access log names the clusters.
//! The namespaces are deleted (and anything left in them killed) whatever happens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "capture/netns.rs"]
mod netns;
#[path = "capture/probe.rs"]
mod probe;
#[path = "capture/servers.rs"]
mod servers;
#[path = "capture/workload.rs"]
mod workload;

use std::process::Stdio;
use std::time::Duration;

use mast_test_support::{ProcessGuard, TempDir};

/// How long the pod side may take.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(180);

#[test]
fn iptables_capture_routes_a_pods_traffic_through_mast_proxy() {
    if let Some(why) = netns::unavailable() {
        eprintln!("skipped: iptables capture test: {why}");
        return;
    }
    let sandbox = match netns::Sandbox::create() {
        Ok(s) => s,
        Err((true, why)) => {
            eprintln!("skipped: iptables capture test: cannot create a network namespace: {why}");
            return;
        }
        Err((false, why)) => panic!("building the capture network: {why}"),
    };
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
        Some(s) => panic!("the pod side failed ({s}):\n{report}"),
        None => panic!("the pod side did not finish within {SCENARIO_TIMEOUT:?}:\n{report}"),
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
            workload::run(&remote);
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
