//! The gateway benchmark's configuration: a test CA and a server certificate for
//! [`HOST`] made with rcgen (ECDSA P-256, PEM files the gateways read), and the config
//! folder's one file: the proxy benchmark's Service `bench-svc` + WorkloadEntry (the upstream),
//! an Istio `Gateway` `istio-system/bench-gw` (selector `istio: ingressgateway`, one server on
//! port 443, HTTPS SIMPLE with the file certificate), a VirtualService bound to it routing
//! [`HOST`] to `bench-svc`, and per gateway process a Service selecting only that process
//! (`istio: ingressgateway` + `bench: <kind>`) whose port 443 has the process's own
//! `targetPort`: both gateways get the same Gateway, each listens on its own port.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;

use crate::mesh::{self, Kind};

/// The host the gateway serves (SNI, `Host`, certificate name).
pub const HOST: &str = "bench.example";
/// The URL requested through a gateway.
pub const URL: &str = "https://bench.example/";
/// The Istio Gateway's namespace (and the gateway processes').
pub const NAMESPACE: &str = "istio-system";

/// The files the gateways read, and the CA the client trusts.
#[derive(Debug, Clone)]
pub struct Certs {
    /// The server certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key: PathBuf,
    /// The test CA's certificate (DER), the client's only root.
    pub ca_der: CertificateDer<'static>,
}

/// Makes a test CA and a certificate for [`HOST`] signed by it; writes `ca.pem`,
/// `bench.example.pem` and `bench.example.key` into `dir`.
pub fn make_certs(dir: &Path) -> anyhow::Result<Certs> {
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate().context("CA key")?;
    let mut ca = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Mast gateway bench CA");
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).context("CA certificate")?;
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().context("server key")?;
    let mut leaf = CertificateParams::new(vec![HOST.to_owned()]).context("server params")?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, HOST);
    leaf.distinguished_name = dn;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf
        .signed_by(&leaf_key, &issuer)
        .context("server certificate")?;
    let certs = Certs {
        cert: dir.join(format!("{HOST}.pem")),
        key: dir.join(format!("{HOST}.key")),
        ca_der: ca_cert.der().clone(),
    };
    std::fs::write(dir.join("ca.pem"), ca_cert.pem())?;
    std::fs::write(&certs.cert, leaf_cert.pem())?;
    std::fs::write(&certs.key, leaf_key.serialize_pem())?;
    Ok(certs)
}

/// The Service name selecting the gateway process of `kind`.
pub fn service_name(kind: Kind) -> String {
    format!("istio-ingressgateway-{}", kind.name())
}

/// The config folder's one file: the upstream's Service and WorkloadEntry, the Gateway, the
/// VirtualService and, per `(kind, listener port)` of `gateways`, the Service mapping port
/// 443 to that process's listener port.
pub fn mesh_yaml(upstream_h1_port: u16, certs: &Certs, gateways: &[(Kind, u16)]) -> String {
    let mut out = mesh::mesh_yaml(upstream_h1_port);
    out.push_str(&format!(
        "---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: bench-gw\n  \
         namespace: {NAMESPACE}\nspec:\n  selector:\n    istio: ingressgateway\n  servers:\n  \
         - port:\n      number: 443\n      name: https\n      protocol: HTTPS\n    hosts:\n    \
         - {HOST}\n    tls:\n      mode: SIMPLE\n      serverCertificate: {}\n      \
         privateKey: {}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n\
         metadata:\n  name: bench\n  namespace: default\nspec:\n  hosts:\n  - {HOST}\n  \
         gateways:\n  - {NAMESPACE}/bench-gw\n  http:\n  - route:\n    - destination:\n        \
         host: bench-svc.default.svc.cluster.local\n        port:\n          number: 80\n",
        certs.cert.display(),
        certs.key.display()
    ));
    for &(kind, port) in gateways {
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {}\n  namespace: {NAMESPACE}\n\
             spec:\n  selector:\n    istio: ingressgateway\n    bench: {}\n  ports:\n  \
             - name: https\n    port: 443\n    targetPort: {port}\n",
            service_name(kind),
            kind.name()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_mesh_loads_and_validates() {
        let dir = std::env::temp_dir().join(format!("mast-gw-bench-test-{}", std::process::id()));
        let certs = make_certs(&dir.join("certs")).unwrap();
        let yaml = mesh_yaml(18080, &certs, &[(Kind::Envoy, 18443), (Kind::Mast, 18444)]);
        let config = dir.join("config");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::write(config.join("bench.yaml"), &yaml).unwrap();
        let loaded = mast_config::load_paths(&[&config], &mast_config::LoadOptions::default());
        let pem = std::fs::read_to_string(&certs.cert).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        assert_eq!(loaded.resources.len(), 6, "{yaml}");
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(yaml.contains("targetPort: 18444") && yaml.contains("bench: mast"));
    }
}
