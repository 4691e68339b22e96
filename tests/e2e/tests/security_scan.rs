//! A TLS scanner against a STRICT inbound port: `sslscan` (Debian's package; scripts/test
//! installs it) sees only TLS 1.2 and 1.3, and no weak cipher suite: every TLS 1.2 suite is
//! ECDHE with AES-GCM or ChaCha20-Poly1305.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mast_e2e::{Mesh, Proxy, Workload, WorkloadSpec, yaml};
use mast_test_support::EchoServer;

/// Whether an accepted TLS 1.2 suite is strong: forward secret (ECDHE) and AEAD (AES-GCM or
/// ChaCha20-Poly1305). OpenSSL names CBC suites without "CBC" (`ECDHE-RSA-AES128-SHA`), so
/// the rule lists what is allowed. TLS 1.3 suites are all AEAD.
fn strong(line: &str) -> bool {
    let Some(name) = line.split_whitespace().nth(4) else {
        return false;
    };
    line.contains("TLSv1.3")
        || (name.starts_with("ECDHE-")
            && (name.contains("-GCM-") || name.contains("CHACHA20-POLY1305")))
}

async fn strict_port_offers_only_modern_tls(proxy: Proxy) {
    let Ok(sslscan) = which("sslscan") else {
        eprintln!("SKIPPED: sslscan is not installed (scripts/test installs it when run as root)");
        return;
    };
    let mesh = Mesh::start(proxy, &[]).await.unwrap();
    let app = EchoServer::start("scan-svc").unwrap();
    let server = Workload::start(
        &mesh,
        WorkloadSpec::server("scan-svc", "scan-svc", app.port()),
    )
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
    // sslscan writes to sockets the server may already have closed: run it with SIGPIPE
    // ignored (a shell's `trap "" PIPE` is inherited through exec), or it dies mid-scan.
    let out = tokio::process::Command::new("sh")
        .args([
            "-c",
            "trap '' PIPE; exec \"$0\" --no-colour --no-heartbleed \"$1\"",
        ])
        .arg(&sslscan)
        .arg(&target)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{} ({sslscan:?} {target}: {})\n{}\n--- stderr\n{}",
        "sslscan",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let protocol = |name: &str| {
        text.lines()
            .find(|l| {
                l.trim_start().starts_with(name)
                    && (l.contains("enabled") || l.contains("disabled"))
            })
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
    assert!(
        !accepted.is_empty(),
        "sslscan listed no accepted cipher:\n{text}"
    );
    let weak: Vec<&&str> = accepted.iter().filter(|l| !strong(l)).collect();
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
