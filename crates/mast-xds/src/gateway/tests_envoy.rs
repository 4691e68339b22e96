//! Real Envoy accepts a gateway's whole configuration (`envoy --mode validate`): every server
//! kind (HTTP, httpsRedirect, HTTPS SIMPLE with file certificates, versions and ciphers,
//! MUTUAL, credentialName, ISTIO_MUTUAL, PASSTHROUGH, AUTO_PASSTHROUGH, TCP, TLS terminated)
//! with tracing on. The listeners, with their route tables inlined, and the clusters go into
//! a bootstrap as static resources (EDS over an ADS source Envoy never contacts in validate
//! mode). Certificates are made with `openssl`; without Envoy or `openssl` the test prints
//! `SKIPPED` and passes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::bootstrap::v3::bootstrap::{DynamicResources, StaticResources};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::api_config_source::ApiType;
use envoy_types::pb::envoy::config::core::v3::grpc_service::{EnvoyGrpc, TargetSpecifier};
use envoy_types::pb::envoy::config::core::v3::{ApiConfigSource, ApiVersion, GrpcService, Node};
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions, TraceCollector, TracingOptions};
use prost::Message;

use super::tests::{INGRESS_SERVICE, hcm, ingress, listener};

/// The Envoy binary: `$MAST_ENVOY`, else `<workspace>/.venv/bin/envoy`.
fn envoy() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MAST_ENVOY").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/envoy");
    venv.is_file().then_some(venv)
}

/// A fresh directory under the system temp dir.
fn temp_dir() -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("mast-gw-xds-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A self-signed certificate and key in `dir` (`<name>.pem`, `<name>-key.pem`); `None`
/// without `openssl`.
fn make_cert(dir: &Path, name: &str) -> Option<(String, String)> {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}-key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-nodes",
            "-days",
            "1",
            "-subj",
            &format!("/CN={name}.example.com"),
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?
        .success();
    ok.then(|| (cert.display().to_string(), key.display().to_string()))
}

/// PEM text indented for a YAML block scalar.
fn block(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| format!("      {l}\n"))
        .collect()
}

/// The Gateway with every server kind, certificates at `c`/`k` (also the client CA).
fn every_kind(c: &str, k: &str) -> String {
    format!(
        r#"{INGRESS_SERVICE}---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: all, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: ["*.example.com"]
  - port: {{number: 80, name: http-redirect, protocol: HTTP}}
    hosts: ["secure.example.org"]
    tls: {{httpsRedirect: true}}
  - port: {{number: 443, name: https-simple, protocol: HTTPS}}
    hosts: ["reviews.example.com"]
    tls:
      mode: SIMPLE
      serverCertificate: {c}
      privateKey: {k}
      minProtocolVersion: TLSV1_2
      maxProtocolVersion: TLSV1_3
      cipherSuites: [ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-GCM-SHA256]
  - port: {{number: 443, name: https-mutual, protocol: HTTPS}}
    hosts: ["mtls.example.com"]
    tls:
      mode: MUTUAL
      serverCertificate: {c}
      privateKey: {k}
      caCertificates: {c}
      subjectAltNames: [client.example.com]
      verifyCertificateSpki: ["2IEpPESU/mmC30tPsnOfbGKdwKdQfN/wZw1QWpjGlmQ="]
      verifyCertificateHash: ["df6ff72fe9116521268f6f2dd4966f51df479883fe7037b39f75916ac3049d1a"]
  - port: {{number: 443, name: https-cred, protocol: HTTPS}}
    hosts: ["ratings.example.com"]
    tls: {{mode: SIMPLE, credentialName: ratings-cert}}
  - port: {{number: 443, name: https-cred-mutual, protocol: HTTPS}}
    hosts: ["ratings-mtls.example.com"]
    tls: {{mode: MUTUAL, credentialName: ratings-cert}}
  - port: {{number: 8444, name: https-istio, protocol: HTTPS}}
    hosts: ["*"]
    tls: {{mode: ISTIO_MUTUAL}}
  - port: {{number: 9443, name: tls-pass, protocol: TLS}}
    hosts: ["*.pass.example.com"]
    tls: {{mode: PASSTHROUGH}}
  - port: {{number: 15443, name: tls-auto, protocol: TLS}}
    hosts: ["*.local"]
    tls: {{mode: AUTO_PASSTHROUGH}}
  - port: {{number: 31400, name: tcp, protocol: TCP}}
    hosts: ["*"]
  - port: {{number: 9444, name: tls-term, protocol: TLS}}
    hosts: ["db.example.com"]
    tls: {{mode: SIMPLE, serverCertificate: {c}, privateKey: {k}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: ratings-cert, namespace: istio-system}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
{cert}  tls.key: |
{key}  ca.crt: |
{cert}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: default}}
spec:
  hosts: ["reviews.example.com", "ratings.example.com", "mtls.example.com", "ratings-mtls.example.com"]
  gateways: [all]
  http:
  - match: [{{uri: {{prefix: /ratings}}}}]
    route: [{{destination: {{host: ratings}}}}]
  - route: [{{destination: {{host: reviews}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: l4, namespace: default}}
spec:
  hosts: ["*"]
  gateways: [all]
  tcp:
  - route: [{{destination: {{host: reviews, port: {{number: 9080}}}}}}]
  tls:
  - match: [{{port: 9443, sniHosts: [a.pass.example.com]}}]
    route: [{{destination: {{host: reviews, port: {{number: 9080}}}}}}]
"#,
        cert = block(c),
        key = block(k),
    )
}

/// The listeners with their route tables inlined.
fn inline_routes(listeners: &[Listener], routes: &[RouteConfiguration]) -> Vec<Listener> {
    let mut out = listeners.to_vec();
    for chain in out.iter_mut().flat_map(|l| l.filter_chains.iter_mut()) {
        for f in chain.filters.iter_mut() {
            let Some(filter::ConfigType::TypedConfig(any)) = &mut f.config_type else {
                continue;
            };
            let Ok(mut h) = HttpConnectionManager::decode(any.value.as_slice()) else {
                continue;
            };
            if let Some(RouteSpecifier::Rds(r)) = &h.route_specifier {
                let table = routes
                    .iter()
                    .find(|t| t.name == r.route_config_name)
                    .unwrap();
                h.route_specifier = Some(RouteSpecifier::RouteConfig(table.clone()));
                *any = envoy_types::util::pack_any(h);
            }
        }
    }
    out
}

/// The bootstrap: static listeners and clusters, an ADS source for EDS.
fn bootstrap(proxy: &ProxyNode, listeners: Vec<Listener>, mut clusters: Vec<Cluster>) -> Bootstrap {
    let mut ads = crate::sds::sds_cluster("/nonexistent/ads.sock");
    ads.name = "mast-validate-ads".into();
    clusters.push(ads);
    clusters.push(crate::sds::sds_cluster("/nonexistent/sds.sock"));
    Bootstrap {
        node: Some(Node {
            id: proxy.id.clone(),
            cluster: "istio-ingressgateway.istio-system".into(),
            ..Default::default()
        }),
        static_resources: Some(StaticResources {
            listeners,
            clusters,
            ..Default::default()
        }),
        dynamic_resources: Some(DynamicResources {
            ads_config: Some(ApiConfigSource {
                api_type: ApiType::Grpc as i32,
                transport_api_version: ApiVersion::V3 as i32,
                grpc_services: vec![GrpcService {
                    target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
                        cluster_name: "mast-validate-ads".into(),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Runs `envoy --mode validate` on `bootstrap`; Envoy's output on failure.
fn validate(envoy: &Path, dir: &Path, bootstrap: &Bootstrap) -> Result<(), String> {
    let path = dir.join("bootstrap.pb");
    std::fs::write(&path, bootstrap.encode_to_vec()).unwrap();
    let out = Command::new(envoy)
        .args([
            "--mode",
            "validate",
            "--disable-hot-restart",
            "-l",
            "warning",
            "-c",
        ])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(text)
    }
}

fn tracing_on() -> SnapshotOptions {
    SnapshotOptions {
        tracing: Some(TracingOptions {
            sampling_bp: 10_000,
            collector: TraceCollector::Zipkin {
                address: "127.0.0.1:9411".into(),
                path: "/api/v2/spans".into(),
            },
        }),
        ..Default::default()
    }
}

#[test]
fn envoy_accepts_every_server_kind() {
    let Some(envoy) = envoy() else {
        eprintln!("SKIPPED gateway envoy validation: no Envoy (set MAST_ENVOY)");
        return;
    };
    let dir = temp_dir();
    let Some((c, k)) = make_cert(&dir, "gw") else {
        eprintln!("SKIPPED gateway envoy validation: no openssl");
        return;
    };
    let yaml = every_kind(&c, &k);
    let out = mast_config::load_str(&yaml, "gw.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "load: {:?}", out.diagnostics);
    let snap = MeshSnapshot::build(&out.resources, tracing_on(), 1);
    let proxy = ingress();
    let listeners = super::listeners(&snap, &proxy);
    let names: Vec<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "0.0.0.0_15443",
            "0.0.0.0_31400",
            "0.0.0.0_8080",
            "0.0.0.0_8443",
            "0.0.0.0_8444",
            "0.0.0.0_9443",
            "0.0.0.0_9444"
        ]
    );
    assert_eq!(listener(&listeners, "0.0.0.0_8443").filter_chains.len(), 4);
    let tracing = hcm(&listener(&listeners, "0.0.0.0_8080").filter_chains[0])
        .tracing
        .expect("tracing on");
    assert_eq!(
        tracing.spawn_upstream_span.map(|b| b.value),
        Some(true),
        "SERVER spans"
    );
    let routes = super::routes(&snap, &proxy);
    let clusters = crate::cluster::clusters(&snap, &proxy);
    assert!(
        clusters
            .iter()
            .any(|c| c.name.starts_with("outbound_.9080_._."))
    );
    let b = bootstrap(&proxy, inline_routes(&listeners, &routes), clusters);
    let result = validate(&envoy, &dir, &b);
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        panic!("Envoy rejected the gateway configuration:\n{e}");
    }
}

#[test]
fn the_check_rejects_a_broken_listener() {
    let Some(envoy) = envoy() else {
        eprintln!("SKIPPED gateway envoy validation: no Envoy (set MAST_ENVOY)");
        return;
    };
    let dir = temp_dir();
    let snap = super::tests::snapshot(&format!(
        "{INGRESS_SERVICE}---{}",
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
"#
    ));
    let proxy = ingress();
    let mut listeners = inline_routes(
        &super::listeners(&snap, &proxy),
        &super::routes(&snap, &proxy),
    );
    // Two chains with the same (empty) match: Envoy refuses the listener.
    let chain = listeners[0].filter_chains[0].clone();
    listeners[0].filter_chains.push(chain);
    let b = bootstrap(&proxy, listeners, crate::cluster::clusters(&snap, &proxy));
    let result = validate(&envoy, &dir, &b);
    let _ = std::fs::remove_dir_all(&dir);
    let err = result.expect_err("Envoy must refuse duplicate chain matches");
    assert!(err.contains("has the same matching rules"), "{err}");
}
