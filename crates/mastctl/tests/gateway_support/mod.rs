//! The gateway end-to-end scenario of issue 9: certificates made with rcgen, TLS servers
//! standing in for backends outside the mesh (`openssl s_server -www`), the mesh folder's
//! YAML (ingress and egress LocalGateways, their Services, two echo workloads, a client,
//! Istio Gateways, VirtualServices, ServiceEntries, DestinationRules, a Sidecar with
//! REGISTRY_ONLY, and a Gateway API Gateway with an HTTPRoute), and the real clients the
//! checks run (curl, openssl s_client, sslscan). Every wait is bounded.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use mast_test_support::{ProcessGuard, free_port, wait_for};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

/// The host names the gateway serves, each with its own certificate.
pub const HOSTS: [&str; 7] = [
    "secure.example",
    "other.example",
    "mtls.example",
    "scan.example",
    "a.example",
    "b.example",
    "external.example",
];

/// The cipher the restricted server allows (rcgen's keys are ECDSA P-256).
pub const SCAN_CIPHER: &str = "ECDHE-ECDSA-AES128-GCM-SHA256";

/// PEM files in a folder: `ca.pem`, `<host>.pem` + `<host>.key`, `client.pem` + `client.key`.
pub struct Certs {
    /// The folder.
    pub dir: PathBuf,
}

impl Certs {
    /// A CA and a leaf per host in [`HOSTS`], plus a client certificate.
    pub fn make(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(DnType::CommonName, "gateway test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        for host in HOSTS {
            leaf(
                dir,
                host,
                &[host],
                ExtendedKeyUsagePurpose::ServerAuth,
                &issuer,
            );
        }
        leaf(
            dir,
            "client",
            &["client.example"],
            ExtendedKeyUsagePurpose::ClientAuth,
            &issuer,
        );
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// The CA file.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// `(certificate, key)` of `name`.
    pub fn pair(&self, name: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
        )
    }

    /// The PEM text of `name`'s certificate and key (for a Secret).
    pub fn text(&self, name: &str) -> (String, String) {
        let (c, k) = self.pair(name);
        (
            std::fs::read_to_string(c).unwrap(),
            std::fs::read_to_string(k).unwrap(),
        )
    }
}

fn leaf(
    dir: &Path,
    name: &str,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'_, KeyPair>,
) {
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, sans[0]);
    p.extended_key_usages = vec![usage];
    let cert = p.signed_by(&key, issuer).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}

/// An `openssl s_server -www` on 127.0.0.1 with `host`'s certificate: a TLS-only server
/// outside the mesh (a passthrough backend, the "external" site of the egress test).
pub struct TlsSite {
    /// Its port.
    pub port: u16,
    _guard: ProcessGuard,
}

impl TlsSite {
    /// Starts it and waits until it accepts connections (10 s at most).
    pub fn start(certs: &Certs, host: &str) -> Self {
        let port = free_port();
        let (cert, key) = certs.pair(host);
        let guard = ProcessGuard::spawn(
            Command::new("openssl")
                .args(["s_server", "-quiet", "-www", "-accept"])
                .arg(format!("127.0.0.1:{port}"))
                .arg("-cert")
                .arg(cert)
                .arg("-key")
                .arg(key)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .expect("openssl s_server");
        assert!(
            wait_for(
                || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
                Duration::from_secs(10)
            ),
            "openssl s_server for {host} did not listen on {port}"
        );
        Self {
            port,
            _guard: guard,
        }
    }
}

/// Runs a command with a time limit (the tools are given their own timeouts too).
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("run a client")
}

/// `curl` with a 10 s limit; returns (exit code, stdout, stderr).
pub fn curl(args: &[&str]) -> (i32, String, String) {
    let out = run(Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The subject of the certificate `openssl s_client` is shown for `sni` at `port`.
pub fn served_subject(port: u16, sni: &str, ca: &Path) -> String {
    let out = run(Command::new("timeout")
        .args(["10", "openssl", "s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", sni, "-CAfile"])
        .arg(ca));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or("")
        .to_owned()
}

/// The ports the scenario uses on the host: the ingress gateway's Service target ports,
/// the egress gateway's, and the Gateway API gateway's listener.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Ingress port 80 (HTTP: vs.example, and secure.example redirected to HTTPS).
    pub http: u16,
    /// Ingress port 443 (HTTPS SIMPLE: secure.example from files, other.example from a Secret).
    pub https: u16,
    /// Ingress port 9443 (HTTPS MUTUAL: mtls.example).
    pub mtls: u16,
    /// Ingress port 8443 (TLS PASSTHROUGH: a.example, b.example).
    pub passthrough: u16,
    /// Ingress port 10443 (HTTPS SIMPLE, TLS 1.2 only, one cipher: scan.example).
    pub scan: u16,
    /// Egress port 80.
    pub egress: u16,
    /// The Gateway API Gateway's HTTP listener (route.example).
    pub gateway_api: u16,
    /// The echo workloads' application ports.
    pub web_app: u16,
    /// The second echo workload's application port.
    pub api_app: u16,
}

impl Ports {
    /// Free ports for everything.
    pub fn free() -> Self {
        Self {
            http: free_port(),
            https: free_port(),
            mtls: free_port(),
            passthrough: free_port(),
            scan: free_port(),
            egress: free_port(),
            gateway_api: free_port(),
            web_app: free_port(),
            api_app: free_port(),
        }
    }
}

/// The mesh folder's YAML for the scenario. `mastctl` is the binary the echo workloads run;
/// `sites` are the ports of the TLS servers for a.example, b.example and external.example.
pub fn mesh_yaml(mastctl: &Path, certs: &Certs, p: &Ports, sites: (u16, u16, u16)) -> String {
    let (a, b, ext) = sites;
    let ca = certs.ca();
    let (secure_crt, secure_key) = certs.pair("secure.example");
    let (mtls_crt, mtls_key) = certs.pair("mtls.example");
    let (scan_crt, scan_key) = certs.pair("scan.example");
    let (other_crt, other_key) = certs.text("other.example");
    let indent = |s: &str| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
    let mastctl = mastctl.display();
    let ca = ca.display();
    format!(
        r#"apiVersion: mast.dev/v1alpha1
kind: LocalGateway
metadata: {{name: ingress, namespace: istio-system, labels: {{istio: ingressgateway}}}}
spec: {{}}
---
apiVersion: mast.dev/v1alpha1
kind: LocalGateway
metadata: {{name: egress, namespace: istio-system, labels: {{istio: egressgateway}}}}
spec: {{}}
---
apiVersion: v1
kind: Service
metadata: {{name: istio-ingressgateway, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  ports:
  - {{name: http, port: 80, targetPort: {http}}}
  - {{name: https, port: 443, targetPort: {https}}}
  - {{name: tls-passthrough, port: 8443, targetPort: {passthrough}}}
  - {{name: https-mtls, port: 9443, targetPort: {mtls}}}
  - {{name: https-scan, port: 10443, targetPort: {scan}}}
---
apiVersion: v1
kind: Service
metadata: {{name: istio-egressgateway, namespace: istio-system}}
spec:
  selector: {{istio: egressgateway}}
  ports:
  - {{name: http, port: 80, targetPort: {egress}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: other-credential, namespace: istio-system}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
{other_crt_i}  tls.key: |
{other_key_i}---
apiVersion: mast.dev/v1alpha1
kind: LocalWorkload
metadata: {{name: web, labels: {{app: web}}}}
spec:
  command: [{mastctl}, x, echo, --message, "hello web"]
  port: {web_app}
---
apiVersion: mast.dev/v1alpha1
kind: LocalWorkload
metadata: {{name: api, labels: {{app: api}}}}
spec:
  command: [{mastctl}, x, echo, --message, "hello api"]
  port: {api_app}
---
apiVersion: mast.dev/v1alpha1
kind: LocalWorkload
metadata: {{name: client, labels: {{app: client}}}}
spec:
  command: [sleep, "3600"]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80}}]
---
apiVersion: v1
kind: Service
metadata: {{name: api}}
spec:
  selector: {{app: api}}
  ports: [{{name: http, port: 80}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: ingress, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: ["*/vs.example"]
  - port: {{number: 80, name: http-redirect, protocol: HTTP}}
    hosts: ["*/secure.example"]
    tls: {{httpsRedirect: true}}
  - port: {{number: 443, name: https, protocol: HTTPS}}
    hosts: ["*/secure.example"]
    tls: {{mode: SIMPLE, serverCertificate: {secure_crt}, privateKey: {secure_key}}}
  - port: {{number: 443, name: https-other, protocol: HTTPS}}
    hosts: ["*/other.example"]
    tls: {{mode: SIMPLE, credentialName: other-credential}}
  - port: {{number: 9443, name: https-mtls, protocol: HTTPS}}
    hosts: ["*/mtls.example"]
    tls: {{mode: MUTUAL, serverCertificate: {mtls_crt}, privateKey: {mtls_key}, caCertificates: {ca}}}
  - port: {{number: 8443, name: tls-passthrough, protocol: TLS}}
    hosts: ["*/a.example", "*/b.example"]
    tls: {{mode: PASSTHROUGH}}
  - port: {{number: 10443, name: https-scan, protocol: HTTPS}}
    hosts: ["*/scan.example"]
    tls:
      mode: SIMPLE
      serverCertificate: {scan_crt}
      privateKey: {scan_key}
      minProtocolVersion: TLSV1_2
      maxProtocolVersion: TLSV1_2
      cipherSuites: [{SCAN_CIPHER}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web-through-ingress}}
spec:
  hosts: [vs.example, secure.example, other.example, mtls.example, scan.example]
  gateways: [istio-system/ingress]
  http:
  - route:
    - destination: {{host: web.default.svc.cluster.local, port: {{number: 80}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: passthrough}}
spec:
  hosts: [a.example, b.example]
  gateways: [istio-system/ingress]
  tls:
  - match: [{{port: 8443, sniHosts: [a.example]}}]
    route: [{{destination: {{host: a.example, port: {{number: 443}}}}}}]
  - match: [{{port: 8443, sniHosts: [b.example]}}]
    route: [{{destination: {{host: b.example, port: {{number: 443}}}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: passthrough-backends}}
spec:
  hosts: [a.example]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{{number: 443, name: tls, protocol: TLS}}]
  endpoints: [{{address: 127.0.0.1, ports: {{tls: {a}}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: passthrough-backend-b}}
spec:
  hosts: [b.example]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{{number: 443, name: tls, protocol: TLS}}]
  endpoints: [{{address: 127.0.0.1, ports: {{tls: {b}}}}}]
---
# Egress with TLS origination, as Istio's "Egress Gateways with TLS Origination" task.
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: external}}
spec:
  hosts: [external.example]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports:
  - {{number: 80, name: http, protocol: HTTP}}
  - {{number: 443, name: https, protocol: HTTPS}}
  endpoints: [{{address: 127.0.0.1, ports: {{http: {ext}, https: {ext}}}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: egress, namespace: istio-system}}
spec:
  selector: {{istio: egressgateway}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: [external.example]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: external-through-egress}}
spec:
  hosts: [external.example]
  gateways: [istio-system/egress, mesh]
  http:
  - match: [{{gateways: [mesh], port: 80}}]
    route:
    - destination: {{host: istio-egressgateway.istio-system.svc.cluster.local, port: {{number: 80}}}}
  - match: [{{gateways: [istio-system/egress], port: 80}}]
    route:
    - destination: {{host: external.example, port: {{number: 443}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: originate-tls-for-external}}
spec:
  host: external.example
  trafficPolicy:
    portLevelSettings:
    - port: {{number: 443}}
      tls: {{mode: SIMPLE, sni: external.example, caCertificates: {ca}}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: default}}
spec:
  outboundTrafficPolicy: {{mode: REGISTRY_ONLY}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: istio}}
spec: {{controllerName: istio.io/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: edge}}
spec:
  gatewayClassName: istio
  listeners:
  - {{name: http, port: {gateway_api}, protocol: HTTP, hostname: route.example}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: api}}
spec:
  parentRefs: [{{name: edge}}]
  hostnames: [route.example]
  rules:
  - backendRefs: [{{name: api, port: 80}}]
---
# GAMMA: an HTTPRoute attached to the Service web routes mesh traffic for it.
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web-mesh}}
spec:
  parentRefs: [{{group: "", kind: Service, name: web, port: 80}}]
  rules:
  - matches: [{{headers: [{{name: x-to, value: api}}]}}]
    backendRefs: [{{name: api, port: 80}}]
  - backendRefs: [{{name: web, port: 80}}]
"#,
        http = p.http,
        https = p.https,
        passthrough = p.passthrough,
        mtls = p.mtls,
        scan = p.scan,
        egress = p.egress,
        gateway_api = p.gateway_api,
        web_app = p.web_app,
        api_app = p.api_app,
        other_crt_i = indent(&other_crt),
        other_key_i = indent(&other_key),
        secure_crt = secure_crt.display(),
        secure_key = secure_key.display(),
        mtls_crt = mtls_crt.display(),
        mtls_key = mtls_key.display(),
        scan_crt = scan_crt.display(),
        scan_key = scan_key.display(),
    )
}
