//! A TLS scanner against a STRICT inbound port: `sslscan` (Debian's package; scripts/test
//! installs it) sees only TLS 1.2 and 1.3, and no weak cipher suite (no RC4, DES/3DES,
//! NULL, export, anonymous, MD5 or CBC suites).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mast_e2e::{Mesh, Proxy, Workload, WorkloadSpec, yaml};
use mast_test_support::EchoServer;

/// Cipher-name fragments that mark a weak suite.
const WEAK: [&str; 8] = ["RC4", "DES", "NULL", "EXP", "ADH", "AECDH", "MD5", "CBC"];

async fn strict_port_offers_only_modern_tls(proxy: Proxy) {
    let Ok(sslscan) = which("sslscan") else {
        eprintln!("SKIPPED: sslscan is not installed (scripts/test installs it when run as root)");
        return;
    };
    let mesh = Mesh::start(proxy, &[]).await.unwrap();
    let app = EchoServer::start("scan-svc").unwrap();
    let server = Workload::start(&mesh, WorkloadSpec::server("scan-svc", "scan-svc", app.port()))
        .await
        .unwrap();
    let strict = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  \
                  namespace: default\nspec:\n  mtls:\n    mode: STRICT\n";
    let files = yaml::docs(&[
        yaml::service("scan-svc", &[("http", 80)]),
        server.entry("scan-svc", "http"),
        strict.to_owned(),
    ]);
    mesh.apply("scan.yaml", &files).await.unwrap();
    let target = server.inbound().unwrap().to_string();
    let out = tokio::process::Command::new(sslscan)
        .args(["--no-colour", "--no-heartbleed", &target])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let protocol = |name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(name) && (l.contains("enabled") || l.contains("disabled")))
            .map(|l| l.contains("enabled"))
    };
    for old in ["SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"] {
        assert_ne!(protocol(old), Some(true), "{old} must be disabled:\n{text}");
    }
    assert_eq!(protocol("TLSv1.2"), Some(true), "TLSv1.2 enabled:\n{text}");
    assert_eq!(protocol("TLSv1.3"), Some(true), "TLSv1.3 enabled:\n{text}");
    let accepted: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("Accepted") || l.starts_with("Preferred"))
        .collect();
    assert!(!accepted.is_empty(), "sslscan listed no accepted cipher:\n{text}");
    let weak: Vec<&&str> = accepted
        .iter()
        .filter(|l| WEAK.iter().any(|w| l.contains(w)))
        .collect();
    assert!(weak.is_empty(), "weak suites accepted: {weak:?}\n{text}");
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

mast_e2e::both! {
    strict_port_offers_only_modern_tls,
}
