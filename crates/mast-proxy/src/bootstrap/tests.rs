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
fn a_pod_names_its_workload_apart_from_itself() {
    // The injector gives the pod's name (node id) and its Deployment's (`WORKLOAD_NAME`,
    // what Istio's metrics call the workload).
    let b = parse(&[
        "--workload",
        "reviews-v1-5d4f8-abcde",
        "--workload-name",
        "reviews-v1",
        "--namespace",
        "bookinfo",
        "--capture-mode",
        "ports",
        "--outbound-port",
        "0",
        "--admin-port",
        "0",
        "--health-port",
        "0",
    ])
    .resolve()
    .unwrap();
    assert_eq!(
        b.node.id,
        "sidecar~127.0.0.1~reviews-v1-5d4f8-abcde.bookinfo~bookinfo.svc.cluster.local"
    );
    assert_eq!(
        md(&b, "WORKLOAD_NAME"),
        &Kind::StringValue("reviews-v1".into())
    );
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

#[test]
fn ca_flags_default_to_the_xds_address_and_24h() {
    let b = parse(&["--workload", "a", "--admin-port", "0", "--health-port", "0"])
        .resolve()
        .unwrap();
    assert_eq!(b.ca_address, "127.0.0.1:15010");
    assert_eq!(b.ca_token_file, None);
    assert_eq!(b.cert_ttl, Duration::from_secs(24 * 3600));
    let b = parse(&[
        "--workload",
        "a",
        "--admin-port",
        "0",
        "--health-port",
        "0",
        "--ca-address",
        "10.0.0.1:15012",
        "--ca-token-file",
        "/tmp/t",
        "--cert-ttl",
        "1h30m",
    ])
    .resolve()
    .unwrap();
    assert_eq!(b.ca_address, "10.0.0.1:15012");
    assert_eq!(
        b.ca_token_file.as_deref(),
        Some(std::path::Path::new("/tmp/t"))
    );
    assert_eq!(b.cert_ttl, Duration::from_secs(5400));
    let r = parse(&["--workload", "a", "--ca-address", "nohost"]).resolve();
    assert!(matches!(r, Err(BootstrapError::BadXdsAddress(_))));
    assert!(Args::try_parse_from(["mast-proxy", "--cert-ttl", "soon"]).is_err());
}

/// The secret manager against an in-process CA service: the store gets the workload's
/// certificate (identity from the token's namespace and service account).
#[tokio::test]
async fn secret_manager_feeds_the_secret_store() {
    use mast_ca::server::{CaService, LocalTokenAuthenticator, SharedCa};
    use mast_ca::token::TokenIssuer;
    let issuer = TokenIssuer::ephemeral();
    let token = issuer.issue("bookinfo", "reviews");
    let ca = mast_ca::CertificateAuthority::ephemeral("cluster.local").unwrap();
    let service = CaService::new(
        SharedCa::new(ca),
        vec![std::sync::Arc::new(LocalTokenAuthenticator(issuer))],
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let dir = mast_test_support::TempDir::new("mast-proxy-ca").unwrap();
    let token_file = dir.join("reviews.token");
    std::fs::write(&token_file, token).unwrap();
    let mut b = parse(&[
        "--workload",
        "reviews-v1",
        "--namespace",
        "bookinfo",
        "--service-account",
        "reviews",
        "--admin-port",
        "0",
        "--health-port",
        "0",
        "--ca-address",
        &addr.to_string(),
        "--cert-ttl",
        "1h",
    ])
    .resolve()
    .unwrap();
    let store = crate::tls::SecretStore::new();
    assert!(
        start_secret_manager(&b, &store).unwrap().is_none(),
        "no token file"
    );
    b.ca_token_file = Some(token_file);
    let handle = start_secret_manager(&b, &store).unwrap().unwrap();
    let mut got = None;
    for _ in 0..100 {
        got = store.current();
        if got.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = got.expect("a certificate within 5 s");
    assert_eq!(
        m.local_uri_sans,
        ["spiffe://cluster.local/ns/bookinfo/sa/reviews"]
    );
    handle.shutdown();
}

#[test]
fn prometheus_port_defaults_to_15090_in_iptables_mode_and_off_in_ports_mode() {
    let base = ["--workload", "w", "--admin-port", "0", "--health-port", "0"];
    let b = parse(&base).resolve().unwrap();
    assert_eq!(b.prometheus.map(|a| a.port()), Some(15090));
    assert!(b.prometheus.unwrap().ip().is_unspecified());
    assert!(b.ports_json().get("prometheus").is_some());
    let mut ports = base.to_vec();
    ports.extend(["--capture-mode", "ports"]);
    let b = parse(&ports).resolve().unwrap();
    assert_eq!(b.prometheus, None);
    assert!(b.ports_json().get("prometheus").is_none());
    ports.extend(["--prometheus-port", "0"]);
    let b = parse(&ports).resolve().unwrap();
    let p = b.prometheus.unwrap();
    assert!(p.ip().is_loopback());
    assert!(![0, b.admin.port(), b.health.port(), b.outbound].contains(&p.port()));
    assert_eq!(b.ports_json()["prometheus"], serde_json::json!(p.port()));
}

#[test]
fn https_addresses_need_a_readable_mesh_root() {
    let dir = mast_test_support::TempDir::new("mast-proxy-roots").unwrap();
    let root = dir.join("root-cert.pem");
    let cert = rcgen::generate_simple_self_signed(vec!["mastd".to_owned()]).unwrap();
    std::fs::write(&root, cert.cert.pem()).unwrap();
    let root_arg = root.display().to_string();
    let base = ["--workload", "w", "--admin-port", "0", "--health-port", "0"];
    let with = |extra: &[&str]| {
        let mut all = base.to_vec();
        all.extend_from_slice(extra);
        parse(&all).resolve()
    };
    let xds = "https://mastd.mast-system.svc:15012";
    let err = with(&["--xds-address", xds]).unwrap_err().to_string();
    assert!(
        err.contains("--xds-root-cert") && err.contains(xds),
        "{err}"
    );
    let b = with(&["--xds-address", xds, "--xds-root-cert", &root_arg]).unwrap();
    assert_eq!(b.xds_uri(), xds);
    assert_eq!(b.xds_root_pem.as_deref(), Some(&*cert.cert.pem()));
    assert_eq!(b.ca_address, xds, "the CA defaults to the xDS address");
    assert_eq!(b.ca_root_cert.as_deref(), Some(&*root), "and to its root");
    let missing = dir.join("absent.pem");
    let err = with(&[
        "--xds-address",
        xds,
        "--xds-root-cert",
        &missing.display().to_string(),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains(&missing.display().to_string()), "{err}");
    let err = with(&["--ca-address", xds]).unwrap_err().to_string();
    assert!(err.contains("--ca-root-cert"), "{err}");
    let other = dir.join("other.pem");
    std::fs::write(&other, "not a certificate").unwrap();
    let err = with(&[
        "--ca-address",
        xds,
        "--ca-root-cert",
        &other.display().to_string(),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("other.pem") && err.contains("no PEM certificate"),
        "{err}"
    );
    let b = with(&["--xds-address", "http://127.0.0.1:15010"]).unwrap();
    assert_eq!(b.xds_uri(), "http://127.0.0.1:15010");
    assert_eq!(with(&[]).unwrap().xds_uri(), "http://127.0.0.1:15010");
    assert!(with(&["--xds-address", "ftp://a:1"]).is_err());
}

#[test]
fn status_port_defaults_to_15020_in_iptables_mode_and_off_in_ports_mode() {
    let base = ["--workload", "w", "--admin-port", "0", "--health-port", "0"];
    let b = parse(&base).resolve().unwrap();
    assert_eq!(b.status.map(|a| a.port()), Some(15020));
    assert!(b.status.unwrap().ip().is_unspecified());
    assert_eq!(b.ports_json()["status"], 15020);
    assert_eq!(b.prometheus.map(|a| a.port()), Some(15090));
    let mut ports = base.to_vec();
    ports.extend(["--capture-mode", "ports"]);
    let b = parse(&ports).resolve().unwrap();
    assert_eq!(b.status, None);
    assert!(b.ports_json().get("status").is_none());
    ports.extend(["--status-port", "0", "--prometheus-port", "0"]);
    let b = parse(&ports).resolve().unwrap();
    let (s, p) = (b.status.unwrap(), b.prometheus.unwrap());
    assert!(s.ip().is_loopback());
    assert!(![0, p.port(), b.admin.port(), b.health.port(), b.outbound].contains(&s.port()));
    assert_eq!(b.ports_json()["status"], serde_json::json!(s.port()));
    ports.extend([
        "--app-probers",
        r#"{"/app-health/a/readyz": {"tcpSocket": {"port": 80}}}"#,
    ]);
    let b = parse(&ports).resolve().unwrap();
    assert!(b.app_probers.get("/app-health/a/readyz").is_some());
    let bad = parse(&["--workload", "w", "--app-probers", "{"]).resolve();
    let err = bad.unwrap_err().to_string();
    assert!(
        err.starts_with("ISTIO_KUBE_APP_PROBERS: not valid JSON"),
        "{err}"
    );
}
