//! Downstream TLS (`DownstreamTlsContext` on a filter chain): the rustls server configuration
//! and the handshake. The certificate is resolved at each handshake (the SDS `default` secret
//! as it is now), so a rotation applies to new connections only. ALPN follows Envoy/BoringSSL:
//! when the client offers none of our protocols the handshake goes on without ALPN (rustls
//! alone would refuse it), so each context keeps a second configuration without ALPN.

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;

use super::context::{CertSource, CommonSpec, Fail, common};
use super::secrets::SecretStore;
use super::verify::ClientVerifier;
use super::{PeerTls, protocol_versions};

/// Envoy's default bound on a downstream TLS handshake is the listener's; we bound it here.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// A converted `DownstreamTlsContext`, ready to accept.
#[derive(Clone)]
pub struct ServerTls {
    spec: CommonSpec,
    require_client_certificate: bool,
    /// Keep the peer's certificates in [`PeerTls::peer_chain_der`] (XFCC `Cert`/`Chain`).
    keep_peer_chain: bool,
    with_alpn: Arc<ServerConfig>,
    without_alpn: Arc<ServerConfig>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("spec", &self.spec)
            .field(
                "require_client_certificate",
                &self.require_client_certificate,
            )
            .finish()
    }
}

impl PartialEq for ServerTls {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
            && self.require_client_certificate == other.require_client_certificate
    }
}

#[derive(Debug)]
struct Resolver(CertSourceDebug);

struct CertSourceDebug(CertSource);

impl std::fmt::Debug for CertSourceDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertSource")
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0
            .0
            .select(hello.server_name(), hello.signature_schemes())
    }
}

/// Why a downstream handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The handshake failed (bad or missing client certificate, no certificate to present,
    /// plaintext on a TLS chain, ...).
    #[error("TLS handshake: {0}")]
    Handshake(std::io::Error),
    /// The handshake did not finish in time.
    #[error("TLS handshake timed out")]
    Timeout,
}

impl ServerTls {
    /// Converts a `DownstreamTlsContext` (errors are relative to it).
    pub fn from_proto(ctx: &DownstreamTlsContext, store: &Arc<SecretStore>) -> Result<Self, Fail> {
        if ctx.session_ticket_keys_type.is_some() {
            return Err(("session_ticket_keys".into(), "not supported".into()));
        }
        if ctx.require_sni.is_some_and(|b| b.value) {
            return Err(("require_sni".into(), "not supported".into()));
        }
        let c = ctx.common_tls_context.clone().unwrap_or_default();
        let spec =
            common(&c, store, true).map_err(|(f, r)| (format!("common_tls_context.{f}"), r))?;
        let require = ctx.require_client_certificate.is_some_and(|b| b.value);
        let Some(cert) = spec.cert.clone() else {
            return Err((
                "common_tls_context.tls_certificates".into(),
                "a server certificate is required".into(),
            ));
        };
        if require && spec.validation.is_none() {
            return Err((
                "require_client_certificate".into(),
                "requires a validation context with trusted roots".into(),
            ));
        }
        let prefer_client = ctx.prefer_client_ciphers;
        let with_alpn = Arc::new(build(&spec, &cert, (require, prefer_client), true)?);
        let without_alpn = Arc::new(build(&spec, &cert, (require, prefer_client), false)?);
        Ok(Self {
            spec,
            require_client_certificate: require,
            keep_peer_chain: false,
            with_alpn,
            without_alpn,
        })
    }

    /// Keeps the peer's certificates of each connection (a connection manager writes them
    /// into `x-forwarded-client-cert`).
    pub fn keep_peer_chain(mut self, keep: bool) -> Self {
        self.keep_peer_chain = keep;
        self
    }

    /// Terminates TLS on `io` (the ClientHello still unread: the TLS inspector only peeked)
    /// and tells what the handshake established.
    pub async fn accept<IO>(&self, io: IO) -> Result<(TlsStream<IO>, PeerTls), AcceptError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let handshake = async {
            let acceptor =
                tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io);
            let start = acceptor.await?;
            let hello = start.client_hello();
            let sni = hello.server_name().map(str::to_owned);
            let overlap = match hello.alpn() {
                None => true,
                Some(mut offered) => offered.any(|p| self.spec.alpn.iter().any(|a| a == p)),
            };
            let config = if overlap || self.spec.alpn.is_empty() {
                Arc::clone(&self.with_alpn)
            } else {
                Arc::clone(&self.without_alpn)
            };
            let stream = start.into_stream(config).await?;
            Ok::<_, std::io::Error>((stream, sni))
        };
        let (stream, sni) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Err(_) => return Err(AcceptError::Timeout),
            Ok(Err(e)) => return Err(AcceptError::Handshake(e)),
            Ok(Ok(s)) => s,
        };
        let local = self
            .spec
            .cert
            .as_ref()
            .map(CertSource::uri_sans)
            .unwrap_or_default();
        let mut peer = super::peer::peer_tls(stream.get_ref().1, local, sni);
        if self.keep_peer_chain
            && let Some(chain) = stream.get_ref().1.peer_certificates()
        {
            peer.peer_chain_der = chain.iter().map(|c| c.as_ref().to_vec()).collect();
        }
        Ok((stream, peer))
    }
}

fn build(
    spec: &CommonSpec,
    cert: &CertSource,
    (require, prefer_client): (bool, bool),
    alpn: bool,
) -> Result<ServerConfig, Fail> {
    let builder = ServerConfig::builder_with_provider(spec.params.provider())
        .with_protocol_versions(protocol_versions(spec.versions))
        .map_err(|e| ("common_tls_context.tls_params".to_owned(), e.to_string()))?;
    let builder = match &spec.validation {
        Some(v) => builder.with_client_cert_verifier(ClientVerifier::new(v.clone(), require)),
        None => builder.with_client_cert_verifier(WebPkiClientVerifier::no_client_auth()),
    };
    let mut config = builder.with_cert_resolver(Arc::new(Resolver(CertSourceDebug(cert.clone()))));
    if alpn {
        config.alpn_protocols = spec.alpn.clone();
    }
    config.ignore_client_order = spec.params.server_order() && !prefer_client;
    Ok(config)
}
