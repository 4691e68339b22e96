//! istiod's 15012: xDS and the CA over TLS (`--xds-tls-addr`), for proxies that reach mastd
//! across a network (pods in a cluster). The serving certificate is issued by the mesh CA
//! itself for `--xds-tls-dns-names` (`mastd.mast-system.svc`, `istiod.istio-system.svc`, …),
//! so proxies verify mastd against the mesh root they already hold (the `istio-ca-root-cert`
//! ConfigMap), and re-issued at half its life. The same gRPC services as the plaintext port
//! are served; callers of the CA still authenticate with their bearer token.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use mast_ca::server::SharedCa;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The names mastd's serving certificate carries by default.
pub const DEFAULT_DNS_NAMES: &str = "mastd.mast-system.svc,mastd.mast-system.svc.cluster.local,istiod.istio-system.svc,istiod.istio-system.svc.cluster.local,localhost";

/// The current serving certificate, swapped when re-issued.
#[derive(Debug)]
struct Resolver(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// Issues a serving certificate for `names` valid for `ttl`.
fn issue(ca: &SharedCa, names: &[String], ttl: Duration) -> anyhow::Result<CertifiedKey> {
    let (chain_pem, key_pem, _roots) = ca
        .get()
        .issue_serving(names, ttl)
        .context("issuing mastd's serving certificate")?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .context("reading the serving chain")?;
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).context("reading the serving key")?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(certs, key, &provider).context("loading the serving certificate")
}

/// ALPN of the gRPC port: HTTP/2 only.
pub const ALPN_GRPC: &[&[u8]] = &[b"h2"];
/// ALPN of the webhook port: the API server may speak either.
pub const ALPN_HTTP: &[&[u8]] = &[b"h2", b"http/1.1"];

/// A TLS acceptor offering `alpn`, whose certificate mastd's CA issues and renews (at half of
/// `ttl`).
pub fn acceptor(
    ca: SharedCa,
    names: Vec<String>,
    ttl: Duration,
    alpn: &[&[u8]],
) -> anyhow::Result<TlsAcceptor> {
    let resolver = Arc::new(Resolver(ArcSwap::from_pointee(issue(&ca, &names, ttl)?)));
    let renew = Arc::clone(&resolver);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(ttl / 2).await;
            match issue(&ca, &names, ttl) {
                Ok(k) => {
                    renew.0.store(Arc::new(k));
                    tracing::info!("renewed mastd's serving certificate");
                }
                Err(e) => tracing::error!("cannot renew mastd's serving certificate: {e:#}"),
            }
        }
    });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A TLS connection as tonic's server takes it.
pub struct TlsIo(TlsStream<TcpStream>);

impl tonic::transport::server::Connected for TlsIo {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.get_ref().0.connect_info()
    }
}

impl tokio::io::AsyncRead for TlsIo {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsIo {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// TLS connections accepted on `listener`: handshakes run concurrently (a slow client does
/// not hold up the others) and failures are logged and dropped.
pub fn incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> tokio_stream::wrappers::ReceiverStream<Result<TlsIo, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("xDS TLS accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, conn_tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let handshake =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await;
                match handshake {
                    Ok(Ok(tls)) => {
                        let _ = conn_tx.send(Ok(TlsIo(tls))).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, "xDS TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!(%peer, "xDS TLS handshake timed out"),
                }
            });
            if tx.is_closed() {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
