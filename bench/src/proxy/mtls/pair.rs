//! One sidecar pair of a kind: a **client sidecar** (workload `mtls-<kind>-client`, service
//! account `bench-client`, its outbound listener is where the load goes) and a **server
//! sidecar** (workload `mtls-<kind>-server`, service account `bench-server`, an inbound
//! listener on a port chosen beforehand that fronts the upstream); the mesh config that
//! makes the server sidecar the endpoint of Service `mtls-<kind>` (a WorkloadEntry at its
//! inbound port labelled `security.istio.io/tlsMode: istio`) under a namespace-wide STRICT
//! PeerAuthentication; and the one-time check that a request crosses mutual TLS.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use mast_test_support::{MastdProcess, ProxyProcess};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::load::Endpoint;
use crate::mesh::{self, Kind, Tools};
use crate::procs::{self, ProcStats};
use crate::upstream::ECHO_XFCC;

/// The client sidecars' service account.
pub const CLIENT_SA: &str = "bench-client";
/// The server sidecars' service account.
pub const SERVER_SA: &str = "bench-server";
/// The client's identity, as the upstream must see it in `x-forwarded-client-cert`.
pub const CLIENT_URI: &str = "spiffe://cluster.local/ns/default/sa/bench-client";
/// How long a new pair may take to route the first request over mutual TLS.
const CHECK_TIMEOUT: Duration = Duration::from_secs(45);

/// The Service of `kind`'s pair.
pub fn host(kind: Kind) -> &'static str {
    match kind {
        Kind::Envoy => "mtls-envoy",
        Kind::Mast => "mtls-mast",
        Kind::MastNoMetrics => "mtls-mast-nometrics",
        Kind::Direct => crate::load::HOST,
    }
}

/// The URL requested through `kind`'s pair.
pub fn url(kind: Kind) -> &'static str {
    match kind {
        Kind::Envoy => "http://mtls-envoy/",
        Kind::Mast => "http://mtls-mast/",
        Kind::MastNoMetrics => "http://mtls-mast-nometrics/",
        Kind::Direct => crate::load::URL,
    }
}

/// The config folder's one file: per pair a Service and the server sidecar's WorkloadEntry
/// (`inbound` = kind → its inbound listener port), plus the namespace-wide STRICT policy.
pub fn mesh_yaml(inbound: &[(Kind, u16)]) -> String {
    let mut out = String::from(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  \
         namespace: default\nspec:\n  mtls:\n    mode: STRICT\n",
    );
    for &(kind, port) in inbound {
        let svc = host(kind);
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {svc}\n  namespace: default\n\
             spec:\n  selector:\n    app: {svc}\n  ports:\n  - name: http\n    port: 80\n---\n\
             apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: {svc}-server\n  \
             namespace: default\nspec:\n  address: 127.0.0.1\n  serviceAccount: {SERVER_SA}\n  labels:\n    \
             app: {svc}\n    workload: {svc}-server\n    security.istio.io/tlsMode: istio\n  ports:\n    \
             http: {port}\n"
        ));
    }
    out
}

/// A running pair.
pub struct Pair {
    /// Which kind both sidecars are.
    pub kind: Kind,
    /// The client sidecar.
    pub client: ProxyProcess,
    /// The server sidecar.
    pub server: ProxyProcess,
    /// The server sidecar's inbound listener.
    pub inbound: SocketAddr,
    /// Memory of (client, server) once the pair routed its first request.
    pub idle: (ProcStats, ProcStats),
}

/// What starting one sidecar needs.
struct Side<'a> {
    name: String,
    sa: &'a str,
    token: &'a Path,
    inbound: Option<(u16, u16)>,
}

impl Pair {
    /// Starts both sidecars of `kind` (`workers` threads each) with tokens from `mastd`'s CA;
    /// the server's inbound listener on `listen` fronts `app_port`.
    pub async fn start(
        tools: &Tools,
        mastd: &MastdProcess,
        kind: Kind,
        workers: usize,
        (app_port, listen): (u16, u16),
    ) -> anyhow::Result<Self> {
        let client_token = mastd.token_file("default", CLIENT_SA)?;
        let server_token = mastd.token_file("default", SERVER_SA)?;
        let svc = host(kind);
        let server = Side {
            name: format!("{svc}-server"),
            sa: SERVER_SA,
            token: &server_token,
            inbound: Some((app_port, listen)),
        };
        let server = start_side(tools, mastd.xds_addr(), kind, workers, server).await?;
        let client = Side {
            name: format!("{svc}-client"),
            sa: CLIENT_SA,
            token: &client_token,
            inbound: None,
        };
        let client = start_side(tools, mastd.xds_addr(), kind, workers, client).await?;
        let inbound = server
            .inbound_addr(app_port)
            .context("the server sidecar reported no inbound listener")?;
        if inbound.port() != listen {
            bail!("the server sidecar listens on {inbound}, not on port {listen}");
        }
        Ok(Self {
            kind,
            client,
            server,
            inbound,
            idle: (ProcStats::default(), ProcStats::default()),
        })
    }

    /// Where the load goes: the client sidecar's outbound listener, absolute-form requests.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            addr: self.client.outbound_addr(),
            absolute: true,
            url: url(self.kind),
        }
    }

    /// (client pid, server pid): the data planes (Envoy's, not mast-agent's).
    pub fn pids(&self) -> [u32; 2] {
        [self.client.pid(), self.server.pid()]
    }

    /// Waits (bounded) until a request through the client sidecar answers 200 and the
    /// upstream saw `x-forwarded-client-cert` naming the client's SPIFFE identity; then checks
    /// that plaintext to the server's inbound port gets no answer (STRICT); records the idle
    /// memory. Returns a line for the report.
    pub async fn check(&mut self) -> anyhow::Result<String> {
        let ep = self.endpoint();
        let deadline = Instant::now() + CHECK_TIMEOUT;
        let xfcc = loop {
            let last = via_client(ep).await;
            match &last {
                Ok((200, Some(xfcc))) if xfcc.contains(CLIENT_URI) => break xfcc.clone(),
                _ if Instant::now() >= deadline => bail!(
                    "{}: no mTLS 200 with the client's identity within {CHECK_TIMEOUT:?} (last: {last:?}); \
                     client folder {}, server folder {}",
                    self.kind.name(),
                    self.client.keep_dir().display(),
                    self.server.keep_dir().display()
                ),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let plaintext = plaintext_to(self.inbound).await;
        if plaintext.starts_with("answered 200") {
            bail!(
                "{}: STRICT not in force: plaintext {plaintext}",
                self.kind.name()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.idle = (
            procs::read(self.client.pid()),
            procs::read(self.server.pid()),
        );
        Ok(format!(
            "{}: 200 through the pair; the upstream saw `x-forwarded-client-cert: {xfcc}`; \
             plaintext HTTP to the server's inbound port: {plaintext}",
            self.kind.name()
        ))
    }
}

async fn start_side(
    tools: &Tools,
    xds: SocketAddr,
    kind: Kind,
    workers: usize,
    side: Side<'_>,
) -> anyhow::Result<ProxyProcess> {
    let mut options = mesh::sidecar_options(tools, kind, workers, xds, 0, "")
        .context("direct has no sidecar")?
        .workload(&side.name, "default")
        .label("app", &side.name)
        .args(["--service-account", side.sa]);
    options.ca_token_file = Some(side.token.to_path_buf());
    if let Some((app, listen)) = side.inbound {
        options = options.inbound(app, listen);
    }
    if kind == Kind::Envoy {
        options = options.args(["--drain-duration", "0s"]);
    }
    let name = side.name.clone();
    tokio::task::spawn_blocking(move || ProxyProcess::start(options))
        .await?
        .with_context(|| format!("starting sidecar {name}"))
}

/// One request asking the upstream to echo `x-forwarded-client-cert`, on a new connection
/// to the client sidecar: (status, the echoed header).
async fn via_client(ep: Endpoint) -> anyhow::Result<(u16, Option<String>)> {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n{ECHO_XFCC}: 1\r\nConnection: close\r\n\r\n",
        ep.url,
        ep.host()
    );
    let head = exchange(ep.addr, request.as_bytes()).await?;
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3)?.parse().ok())
        .context("not an HTTP/1.1 status line")?;
    let prefix = format!("{ECHO_XFCC}:");
    let xfcc = head.lines().find_map(|l| {
        let lower = l.to_ascii_lowercase();
        lower
            .starts_with(&prefix)
            .then(|| l[prefix.len()..].trim().to_owned())
    });
    Ok((status, xfcc))
}

/// Plain HTTP to a STRICT inbound port: what happened, in words.
async fn plaintext_to(addr: SocketAddr) -> String {
    let request = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    match exchange(addr, request).await {
        Ok(head) if head.is_empty() => "refused (closed without an answer)".to_owned(),
        Ok(head) => format!(
            "answered {}",
            head.lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("HTTP/1.1 ")
        ),
        Err(e) => format!("refused ({e:#})"),
    }
}

/// Writes `request` on a new connection and reads until the peer closes (at most 64 KiB,
/// 5 s); the head of the answer as text.
async fn exchange(addr: SocketAddr, request: &[u8]) -> anyhow::Result<String> {
    let io = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(request).await?;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while out.len() < 64 * 1024 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        anyhow::Ok(out)
    };
    let out = tokio::time::timeout(Duration::from_secs(5), io)
        .await
        .context("no end of answer within 5 s")??;
    let text = String::from_utf8_lossy(&out);
    Ok(text.split("\r\n\r\n").next().unwrap_or("").to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mtls_mesh_loads_and_validates() {
        let yaml = mesh_yaml(&[(Kind::Envoy, 18081), (Kind::Mast, 18082)]);
        let dir = std::env::temp_dir().join(format!("mast-mtls-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("bench.yaml"), &yaml).unwrap();
        let loaded = mast_config::load_paths(&[&dir], &mast_config::LoadOptions::default());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(loaded.resources.len(), 5, "{:?}", loaded.diagnostics);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        assert_eq!(host(Kind::Mast), "mtls-mast");
    }
}
