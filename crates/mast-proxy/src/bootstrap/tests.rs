//! Flags → node, ports and the ports file.

use super::*;
use envoy_types::pb::google::protobuf::value::Kind;

fn parse(args: &[&str]) -> Args {
    let mut all = vec!["mast-proxy"];
    all.extend_from_slice(args);
    Args::parse_from(all)
}

fn md<'a>(b: &'a Bootstrap, key: &str) -> &'a Kind {
    let metadata = b.node.metadata.as_ref().unwrap();
    metadata.fields[key].kind.as_ref().unwrap()
}

#[test]
fn node_from_parts_like_the_agent() {
    let b = parse(&[
        "--workload",
        "reviews-v1",
        "--namespace",
        "bookinfo",
        "--admin-port",
        "0",
        "--health-port",
        "0",
    ])
    .resolve()
    .unwrap();
    assert_eq!(
        b.node.id,
        "sidecar~127.0.0.1~reviews-v1.bookinfo~bookinfo.svc.cluster.local"
    );
    assert_eq!(b.node.cluster, "reviews-v1.bookinfo");
    assert_eq!(md(&b, "NAMESPACE"), &Kind::StringValue("bookinfo".into()));
    assert_eq!(
        md(&b, "MAST_CAPTURE_MODE"),
        &Kind::StringValue("iptables".into())
    );
    let admin = format!("127.0.0.1:{}", b.admin.port());
    assert_eq!(md(&b, "MAST_ADMIN_ADDRESS"), &Kind::StringValue(admin));
    assert!(b.delta);
    assert_eq!(b.outbound, IPTABLES_OUTBOUND);
    assert!(b.health.ip().is_unspecified());
    assert_ne!(b.admin.port(), 0);
    assert_ne!(b.health.port(), 0);
    assert_eq!(b.drain, Duration::from_secs(5));
    assert_eq!(b.workers, 2);
}

#[test]
fn node_from_id() {
    let id = "router~10.1.2.3~ingress.istio-system~istio-system.svc.cluster.local";
    let b = parse(&[
        "--node-id",
        id,
        "--sotw",
        "--admin-port",
        "0",
        "--health-port",
        "0",
    ])
    .resolve()
    .unwrap();
    assert_eq!(b.node.id, id);
    assert_eq!(b.spec.proxy_type, ProxyType::Router);
    assert_eq!(b.node.cluster, "ingress.istio-system");
    assert_eq!(b.spec.ip, "10.1.2.3");
    assert!(!b.delta);
    assert!(matches!(
        parse(&[]).resolve(),
        Err(BootstrapError::NoWorkload)
    ));
    assert!(matches!(
        parse(&["--node-id", "bogus"]).resolve(),
        Err(BootstrapError::BadNodeId(..))
    ));
}

#[test]
fn ports_mode_picks_free_ports_and_reports_them() {
    let b = parse(&[
        "--workload",
        "a",
        "--capture-mode",
        "ports",
        "--inbound-port",
        "9080,9090=0",
        "--admin-port",
        "0",
        "--health-port",
        "0",
        "--label",
        "app=a,version=v1",
    ])
    .resolve()
    .unwrap();
    let ports = [
        b.admin.port(),
        b.health.port(),
        b.outbound,
        b.inbound[0].1,
        b.inbound[1].1,
    ];
    let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
    assert_eq!(distinct.len(), 5);
    assert!(!distinct.contains(&0));
    assert!(b.health.ip().is_loopback());
    assert_eq!(b.inbound[0].0, 9080);
    let want = format!("9080={},9090={}", b.inbound[0].1, b.inbound[1].1);
    assert_eq!(md(&b, "MAST_INBOUND_PORTS"), &Kind::StringValue(want));
    assert_eq!(
        md(&b, "MAST_OUTBOUND_PORT"),
        &Kind::StringValue(b.outbound.to_string())
    );
    let Kind::StructValue(labels) = md(&b, "LABELS") else {
        panic!("LABELS is a map")
    };
    assert_eq!(
        labels.fields["version"].kind,
        Some(Kind::StringValue("v1".into()))
    );

    let dir = std::env::temp_dir().join(format!("mast-proxy-bootstrap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ports.json");
    b.write_ports_file(&file).unwrap();
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(j["admin"], b.admin.port());
    assert_eq!(j["outbound"], b.outbound);
    assert_eq!(j["inbound"]["9090"], b.inbound[1].1);
    assert_eq!(j["pid"], std::process::id());
    assert_eq!(j["node_id"], b.node.id.as_str());
    remove_ports_file(&file).unwrap();
    remove_ports_file(&file).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn refuses_bad_flags() {
    let r = parse(&["--workload", "a", "--outbound-port", "1"]).resolve();
    assert!(matches!(r, Err(BootstrapError::PortsNeedPortsMode)));
    let r = parse(&[
        "--workload",
        "a",
        "--capture-mode",
        "ports",
        "--outbound-port",
        "15101",
        "--inbound-port",
        "1=15101",
    ])
    .resolve();
    assert!(matches!(r, Err(BootstrapError::DuplicatePort(15101))));
    let r = parse(&[
        "--workload",
        "a",
        "--capture-mode",
        "ports",
        "--inbound-port",
        "1,1",
    ])
    .resolve();
    assert!(matches!(r, Err(BootstrapError::DuplicatePort(1))));
    let r = parse(&["--workload", "a", "--xds-address", "nohost"]).resolve();
    assert!(matches!(r, Err(BootstrapError::BadXdsAddress(_))));
    assert!(Args::try_parse_from(["mast-proxy", "--inbound-port", "x=1"]).is_err());
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert!(parse_duration("5h").is_err());
}
