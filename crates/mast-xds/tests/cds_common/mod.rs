//! Fixtures shared by the CDS/EDS integration tests: a small mesh in Istio YAML (Kubernetes
//! Services with Pods, ServiceEntries of each resolution, DestinationRules exercising every
//! traffic-policy mapping, a Sidecar), the proxies that look at it, TLS files made with
//! `openssl`, and lookups into generated resources.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use mast_config::Level;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};

/// Services and workloads: `reviews` (HTTP 9080, gRPC 9090 → 9091, TCP 5432, UDP 53) with
/// three versioned pods and a VM (weight 3), `ratings` with no pods, a DNS ServiceEntry, a `NONE` (passthrough)
/// ServiceEntry and a STATIC one with a host-name endpoint left out of EDS.
pub const SERVICES: &str = "
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080, targetPort: 9080}
  - {name: grpc-api, port: 9090, targetPort: 9091}
  - {name: tcp-db, port: 5432}
  - {name: dns, port: 53, protocol: UDP}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1, namespace: default, labels: {app: reviews, version: v1}}
spec: {containers: [{name: app, image: reviews}]}
status: {podIP: 10.1.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v2, namespace: default, labels: {app: reviews, version: v2}}
spec: {containers: [{name: app, image: reviews}]}
status: {podIP: 10.1.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v3, namespace: default, labels: {app: reviews, version: v3}}
spec: {containers: [{name: app, image: reviews}]}
status: {podIP: 10.1.0.3}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-vm, namespace: default}
spec: {address: 10.2.0.1, labels: {app: reviews, version: v1}, weight: 3}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: default}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.org]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy, namespace: default}
spec:
  hosts: [legacy.internal]
  addresses: [192.0.2.50]
  resolution: NONE
  ports: [{number: 7000, name: tcp, protocol: TCP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: secure, namespace: default}
spec:
  hosts: [secure.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 443, name: tls, protocol: TLS}, {number: 8443, name: https-mtls, protocol: HTTPS}]
  endpoints: [{address: 192.0.2.10}]
";

/// DestinationRules and a Sidecar. `{CA}`, `{CERT}` and `{KEY}` are replaced by file paths.
pub const POLICIES: &str = "
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN, warmup: {duration: 30s}}
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 250ms, tcpKeepalive: {probes: 3, time: 7200s, interval: 75s}}
      http: {http1MaxPendingRequests: 10, http2MaxRequests: 1000, maxRequestsPerConnection: 10, maxRetries: 3, idleTimeout: 30s}
    outlierDetection: {consecutive5xxErrors: 3, consecutiveGatewayErrors: 2, interval: 5s, baseEjectionTime: 30s, maxEjectionPercent: 50, minHealthPercent: 20}
    portLevelSettings:
    - port: {number: 9090}
      loadBalancer: {consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 65537}}}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {consistentHash: {httpCookie: {name: user, ttl: 0s}, ringHash: {minimumRingSize: 2048}}}
  - name: v3
    labels: {version: v3}
    trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}
  - name: none
    labels: {version: v9}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin, namespace: default}
spec:
  host: httpbin.org
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    connectionPool: {http: {useClientProtocol: true}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: secure, namespace: default}
spec:
  host: secure.example.com
  trafficPolicy:
    tls: {mode: SIMPLE, sni: secure.example.com, caCertificates: '{CA}', subjectAltNames: [secure.example.com]}
    portLevelSettings:
    - port: {number: 8443}
      tls: {mode: MUTUAL, clientCertificate: '{CERT}', privateKey: '{KEY}', caCertificates: '{CA}'}
  subsets:
  - name: istio
    labels: {}
    trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
  - name: pp
    labels: {}
    trafficPolicy: {proxyProtocol: {version: V2}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: reviews, namespace: default}
spec:
  workloadSelector: {labels: {app: reviews}}
  inboundConnectionPool: {http: {http1MaxPendingRequests: 7}}
";

/// TLS files for the rules: (CA, client certificate, client key), one self-signed pair made
/// once with `openssl` under `CARGO_TARGET_TMPDIR/cds-tls` (generated aside, then renamed into
/// place, so concurrent test processes never see half-written files); `None` (with a
/// message) when openssl is missing.
pub fn tls_files() -> Option<(PathBuf, PathBuf, PathBuf)> {
    static FILES: OnceLock<Option<PathBuf>> = OnceLock::new();
    let dir = FILES.get_or_init(make_tls_dir).clone()?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    Some((cert.clone(), cert, key))
}

fn make_tls_dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = root.join("cds-tls");
    if dir.join("key.pem").is_file() {
        return Some(dir);
    }
    let tmp = root.join(format!("cds-tls-tmp-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("tls dir");
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "3650",
            "-subj",
            "/CN=secure.example.com",
        ])
        .arg("-keyout")
        .arg(tmp.join("key.pem"))
        .arg("-out")
        .arg(tmp.join("cert.pem"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED TLS files: openssl not available");
        let _ = std::fs::remove_dir_all(&tmp);
        return None;
    }
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp); // another process won the race
    }
    Some(dir)
}

/// The whole fixture with TLS paths filled in (placeholders when openssl is missing).
pub fn mesh_yaml() -> String {
    let (ca, cert, key) = tls_files().unwrap_or_else(|| {
        (
            "/missing/ca.pem".into(),
            "/missing/c.pem".into(),
            "/missing/k.pem".into(),
        )
    });
    let policies = POLICIES
        .replace("{CA}", &ca.display().to_string())
        .replace("{CERT}", &cert.display().to_string())
        .replace("{KEY}", &key.display().to_string());
    format!("{SERVICES}\n---\n{policies}")
}

/// Loads, validates (no errors allowed) and builds a snapshot.
pub fn snapshot(yaml: &str) -> MeshSnapshot {
    let out = mast_config::load_str(yaml, "mesh.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "load: {:?}", out.diagnostics);
    let errors: Vec<_> = mast_config::validate::validate_all(&out.resources)
        .into_iter()
        .filter(|d| d.level == Level::Error)
        .collect();
    assert!(errors.is_empty(), "validation: {errors:?}");
    MeshSnapshot::build(&out.resources, SnapshotOptions::default(), 1)
}

/// The fixture's snapshot.
pub fn mesh() -> MeshSnapshot {
    snapshot(&mesh_yaml())
}

/// A sidecar in `default` (iptables capture).
pub fn sidecar(ip: &str, workload: &str, labels: serde_json::Value) -> ProxyNode {
    let md = serde_json::json!({"NAMESPACE": "default", "LABELS": labels});
    ProxyNode::parse(
        &format!("sidecar~{ip}~{workload}.default~default.svc.cluster.local"),
        &md,
    )
    .expect("node")
}

/// The client: `productpage` at 10.1.0.50.
pub fn client() -> ProxyNode {
    sidecar(
        "10.1.0.50",
        "productpage-1",
        serde_json::json!({"app": "productpage"}),
    )
}

/// The `reviews-v1` pod's sidecar (serves reviews' ports).
pub fn reviews_v1() -> ProxyNode {
    sidecar(
        "10.1.0.1",
        "reviews-v1",
        serde_json::json!({"app": "reviews", "version": "v1"}),
    )
}

/// A ports-mode sidecar for `reviews-v2`.
pub fn reviews_v2_ports_mode() -> ProxyNode {
    let md = serde_json::json!({
        "NAMESPACE": "default", "LABELS": {"app": "reviews", "version": "v2"},
        "MAST_CAPTURE_MODE": "ports", "MAST_OUTBOUND_PORT": "15101", "MAST_INBOUND_PORTS": "9080=15106,9091=15107"
    });
    ProxyNode::parse(
        "sidecar~10.1.0.2~reviews-v2.default~default.svc.cluster.local",
        &md,
    )
    .expect("node")
}

/// An ingress gateway in `istio-system`.
pub fn gateway() -> ProxyNode {
    let md =
        serde_json::json!({"NAMESPACE": "istio-system", "LABELS": {"istio": "ingressgateway"}});
    ProxyNode::parse(
        "router~10.1.0.99~ingress-1.istio-system~istio-system.svc.cluster.local",
        &md,
    )
    .expect("node")
}

/// The cluster named `name`.
pub fn cluster<'a>(clusters: &'a [Cluster], name: &str) -> &'a Cluster {
    clusters.iter().find(|c| c.name == name).unwrap_or_else(|| {
        let names: Vec<_> = clusters.iter().map(|c| c.name.as_str()).collect();
        panic!("no cluster {name}; have {names:?}")
    })
}

/// The assignment named `name`.
pub fn assignment<'a>(all: &'a [ClusterLoadAssignment], name: &str) -> &'a ClusterLoadAssignment {
    all.iter()
        .find(|c| c.cluster_name == name)
        .unwrap_or_else(|| panic!("no assignment {name}"))
}

/// A cluster's discovery type.
pub fn kind(c: &Cluster) -> DiscoveryType {
    match c.cluster_discovery_type {
        Some(ClusterDiscoveryType::Type(t)) => DiscoveryType::try_from(t).expect("known type"),
        ref other => panic!("{}: discovery {other:?}", c.name),
    }
}

/// `outbound|<port>|<subset>|reviews.default.svc.cluster.local`.
pub fn reviews(port: u16, subset: &str) -> String {
    format!("outbound|{port}|{subset}|reviews.default.svc.cluster.local")
}
