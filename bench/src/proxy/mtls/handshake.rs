//! New TLS handshakes against a server sidecar's inbound port, measured directly: a rustls
//! client holding a mesh certificate (issued by mastd's CA for the client's service account)
//! opens a TCP connection, completes a full handshake (no resumption, client certificate
//! sent, ALPN `istio-peer-exchange`/`istio` as a sidecar offers), sends `close_notify` and
//! reads until the server closes, so the server has processed the client's certificate and
//! `Finished` before the next handshake starts. Closed loop, `concurrency` connections at a
//! time, bounded in count and in time; every step has a timeout.
//!
//! The gateway mode ([`crate::gateway`]) uses the same loop with [`After::Request`]: after the
//! handshake one HTTP/1.1 request (`Connection: close`), its answer read to the server's
//! close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use mast_ca::CertBundle;
use parking_lot::Mutex;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;

/// How long one connection (connect, handshake, close) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// Verifies the server's chain against the mesh roots but not its name: mesh certificates
/// carry only a SPIFFE URI SAN, which sidecars match instead of a DNS name.
#[derive(Debug)]
struct MeshVerifier(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for MeshVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict =
            self.0
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        match verdict {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A client's TLS settings: `bundle`'s certificate and key, its roots to verify the server,
/// ALPN as a sidecar offers it, session resumption off (every handshake is a full one).
pub fn client_config(bundle: &CertBundle) -> anyhow::Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for root in bundle.roots_der()? {
        roots.add(root).context("adding a mesh root")?;
    }
    let webpki =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .context("building the server verifier")?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(MeshVerifier(webpki)))
        .with_client_auth_cert(bundle.chain_der()?, bundle.key_der()?)
        .context("the client certificate")?;
    config.alpn_protocols = vec![b"istio-peer-exchange".to_vec(), b"istio".to_vec()];
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// The SNI a client sidecar sends for `host` port 80 (Istio's `outbound_.80_._.<fqdn>`), or
/// the plain FQDN if that is not a name rustls accepts.
pub fn server_name(host: &str) -> anyhow::Result<ServerName<'static>> {
    let fqdn = format!("{host}.default.svc.cluster.local");
    ServerName::try_from(format!("outbound_.80_._.{fqdn}"))
        .or_else(|_| ServerName::try_from(fqdn))
        .context("no valid server name")
}

/// What a connection does once its handshake is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Send `close_notify` and read until the server closes; the time recorded is TCP
    /// connect → handshake complete.
    CloseNotify,
    /// Send this HTTP/1.1 request (it must say `Connection: close`) and read the answer
    /// until the server closes; it must start with `HTTP/1.1 200`. The time recorded is TCP
    /// connect → the answer read.
    Request(&'static [u8]),
}

/// What a handshake run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Latency per connection (see [`After`]), µs.
    pub hist: Histogram<u64>,
    /// Completed handshakes (the server then closed cleanly).
    pub ok: u64,
    /// Failed connections.
    pub failed: u64,
    /// From start to the last connection's end.
    pub elapsed: Duration,
    /// The first failure.
    pub first_error: Option<String>,
}

impl Outcome {
    /// Completed handshakes per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One connection: connect, full handshake, then [`After`]. Returns the time recorded.
pub async fn one(
    addr: SocketAddr,
    connector: &TlsConnector,
    name: &ServerName<'static>,
    after: After,
) -> Result<Duration, String> {
    let exchange = async {
        let started = Instant::now();
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let mut tls = connector
            .connect(name.clone(), tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let took = started.elapsed();
        match after {
            After::CloseNotify => tls
                .shutdown()
                .await
                .map_err(|e| format!("close_notify: {e}"))?,
            After::Request(request) => tls
                .write_all(request)
                .await
                .map_err(|e| format!("request: {e}"))?,
        }
        let answer = read_to_close(&mut tls).await?;
        match after {
            After::CloseNotify => Ok(took),
            After::Request(_) if answer.starts_with(b"HTTP/1.1 200") => Ok(started.elapsed()),
            After::Request(_) => Err(format!(
                "answer: {:?}",
                String::from_utf8_lossy(&answer[..answer.len().min(80)])
            )),
        }
    };
    tokio::time::timeout(STEP_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("not done within {STEP_TIMEOUT:?}")))
}

/// Reads until the server closes (a missing `close_notify` counts as closed); at most 64 KiB.
async fn read_to_close(
    tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < 64 * 1024 {
        match tls.read(&mut buf).await {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(out),
            Err(e) => return Err(format!("after the handshake: {e}")),
        }
    }
    Err("more than 64 KiB before the server closed".to_owned())
}

/// Runs `load` (a [`closed_loop`]) on a runtime of its own with `threads` threads, so the
/// client does not share the load generator's thread (a handshake costs the client about
/// what it costs the server).
pub async fn on_own_runtime(
    threads: usize,
    load: impl Future<Output = anyhow::Result<Outcome>> + Send + 'static,
) -> anyhow::Result<Outcome> {
    let threads = threads.max(1);
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
            .block_on(load)
    })
    .await?
}

struct Tally {
    hist: Histogram<u64>,
    ok: u64,
    failed: u64,
    first_error: Option<String>,
}

/// How many connections a [`closed_loop`] keeps going, for how long, at most how many in all.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections in flight at a time.
    pub concurrency: usize,
    /// How long new connections are started.
    pub duration: Duration,
    /// At most this many connections.
    pub max_count: u64,
}

/// Closed loop: `limits.concurrency` tasks each run [`one`] after the other until
/// `limits.duration` has passed or `limits.max_count` connections were started.
pub async fn closed_loop(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    after: After,
    limits: Limits,
) -> anyhow::Result<Outcome> {
    let Limits {
        concurrency,
        duration,
        max_count,
    } = limits;
    let tally = Arc::new(Mutex::new(Tally {
        hist: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        ok: 0,
        failed: 0,
        first_error: None,
    }));
    let started = Arc::new(AtomicU64::new(0));
    let connector = TlsConnector::from(config);
    let start = Instant::now();
    let end = start + duration;
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (tally, started) = (Arc::clone(&tally), Arc::clone(&started));
        let (connector, name) = (connector.clone(), name.clone());
        tasks.spawn(async move {
            while Instant::now() < end && started.fetch_add(1, Ordering::Relaxed) < max_count {
                let result = one(addr, &connector, &name, after).await;
                let mut t = tally.lock();
                match result {
                    Ok(took) => {
                        t.ok += 1;
                        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
                        t.hist.saturating_record(micros.max(1));
                    }
                    Err(e) => {
                        t.failed += 1;
                        t.first_error.get_or_insert(e);
                    }
                }
            }
        });
    }
    let limit = duration + STEP_TIMEOUT + Duration::from_secs(1);
    if tokio::time::timeout(limit, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tasks.abort_all();
    }
    let elapsed = start.elapsed();
    let t = tally.lock();
    Ok(Outcome {
        hist: t.hist.clone(),
        ok: t.ok,
        failed: t.failed,
        elapsed,
        first_error: t.first_error.clone(),
    })
}
