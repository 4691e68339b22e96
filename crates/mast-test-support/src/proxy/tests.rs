//! Tests of [`super`]: ports files of both kinds, the flags each kind gets, and a fake sidecar
//! (a shell script) started, read and stopped.

use super::*;

#[test]
fn parses_both_ports_files() {
    let agent = r#"{"admin":15000,"outbound":15101,"inbound":{"9080":15106},"envoy_pid":42,"node_id":"n","capture_mode":"ports"}"#;
    let p = ProxyPorts::parse(agent).unwrap();
    assert_eq!((p.admin, p.outbound, p.pid), (15000, 15101, 42));
    assert_eq!(p.inbound, BTreeMap::from([(9080, 15106)]));
    assert_eq!(p.health, None);
    let proxy = r#"{"admin":1,"outbound":2,"inbound":{},"health":3,"pid":7,"node_id":"m"}"#;
    let p = ProxyPorts::parse(proxy).unwrap();
    assert_eq!((p.health, p.pid, p.node_id.as_str()), (Some(3), 7, "m"));
    assert!(ProxyPorts::parse(r#"{"admin":1,"outbound":2,"node_id":"x"}"#).is_none());
    assert!(ProxyPorts::parse("{").is_none());
}

#[test]
fn each_kind_gets_its_flags() {
    let options = ProxyOptions::new(ProxyKind::Mast, "127.0.0.1:1")
        .label("app", "client")
        .inbound(9080, 0)
        .args(["--drain-duration", "0s"]);
    let args = options.command_args(None).join(" ");
    assert!(args.starts_with("--xds-address 127.0.0.1:1 --workload client --namespace default"));
    assert!(args.contains("--capture-mode ports --outbound-port 0 --admin-port 0"));
    assert!(args.contains("--label app=client --inbound-port 9080=0 --health-port 0"));
    assert!(args.ends_with("--drain-duration 0s"), "{args}");
    let envoy = ProxyOptions::new(ProxyKind::Envoy, "x:1").workload("w", "ns");
    let args = envoy.command_args(Some(Path::new("/e"))).join(" ");
    assert!(args.contains("--workload w --namespace ns") && args.ends_with("--envoy /e"));
    assert!(!args.contains("--health-port") && !args.contains("--ca-token-file"));
    let with_token = ProxyOptions::new(ProxyKind::Mast, "x:1").ca_token_file("/t/client.token");
    let args = with_token.command_args(None).join(" ");
    assert!(args.contains("--ca-token-file /t/client.token"), "{args}");
    assert_eq!(ProxyKind::Mast.to_string(), "mast-proxy");
}

/// A script standing in for a sidecar: writes the ports file given by `--ports-file`
/// (atomically), then sleeps until killed.
fn fake_sidecar(dir: &TempDir) -> PathBuf {
    let script = dir.join("fake-sidecar.sh");
    let text = r#"#!/bin/sh
while [ "$#" -gt 0 ]; do
  if [ "$1" = "--ports-file" ]; then file="$2"; fi
  shift
done
echo "fake sidecar WARN starting"
printf '{"admin":1,"outbound":2,"inbound":{"80":3},"pid":%s,"node_id":"fake"}' "$$" > "$file.tmp"
mv "$file.tmp" "$file"
exec sleep 30
"#;
    std::fs::write(&script, text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn starts_reads_ports_and_stops() {
    let scratch = TempDir::new("mast-ts-proxy").unwrap();
    let options = ProxyOptions::new(ProxyKind::Mast, "127.0.0.1:1")
        .binary(fake_sidecar(&scratch))
        .timeout(Duration::from_secs(10));
    let mut proxy = ProxyProcess::start(options).unwrap();
    assert_eq!(proxy.kind(), ProxyKind::Mast);
    assert_eq!(proxy.ports().node_id, "fake");
    assert_eq!(proxy.pid(), proxy.guard_mut().pid());
    assert_eq!(proxy.outbound_addr().port(), 2);
    assert_eq!(proxy.inbound_addr(80).map(|a| a.port()), Some(3));
    assert!(proxy.problems(5).contains("WARN starting"));
    assert!(proxy.dir().join("proxy.log").is_file());
    assert!(proxy.stop(Duration::from_secs(5)).is_some());
}

#[test]
fn a_sidecar_that_exits_early_is_reported_with_its_log() {
    let options = ProxyOptions::new(ProxyKind::Mast, "127.0.0.1:1")
        .binary("/bin/false")
        .timeout(Duration::from_secs(10));
    match ProxyProcess::start(options) {
        Err(ProxyError::Exited { kind, log, .. }) => {
            assert_eq!(kind, ProxyKind::Mast);
            assert!(log.contains("proxy.log"), "{log}");
        }
        other => panic!("expected Exited, got {other:?}"),
    }
}
