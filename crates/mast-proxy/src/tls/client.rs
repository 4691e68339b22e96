//! Upstream TLS (`UpstreamTlsContext` on a cluster or a `transport_socket_matches` entry): the
//! rustls client configuration and the handshake. SNI is the context's `sni`, else (with
//! `auto_sni`) the request's host, else none. ALPN is the context's list; when it is empty, the
//! HTTP pools send Envoy's fallback (`h2` for HTTP/2, `http/1.1` for HTTP/1.1). The client
//! certificate is resolved at each handshake (SDS `default` as it is now).

use std::net::IpAddr;
use std::sync::Arc;

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
use rustls::ClientConfig;
use rustls::client::ResolvesClientCert;
use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;

use super::context::{CertSource, CommonSpec, Fail, common};
use super::protocol_versions;
use super::secrets::SecretStore;
use super::verify::ServerVerifier;

/// What the connection will carry (selects the ALPN fallback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carried {
    /// Raw bytes (TCP proxy, `CONNECT`): the configured ALPN only.
    Raw,
    /// HTTP/1.1.
    Http1,
    /// HTTP/2.
    Http2,
}

/// A converted `UpstreamTlsContext`.
#[derive(Clone)]
pub struct ClientTls {
    spec: CommonSpec,
    sni: Option<String>,
    /// `auto_sni` (from the HTTP protocol options, or `auto_host_sni`).
    auto_sni: bool,
    auto_san: bool,
    configs: [Arc<ClientConfig>; 3],
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("spec", &self.spec)
            .field("sni", &self.sni)
            .field("auto_sni", &self.auto_sni)
            .field("auto_san", &self.auto_san)
            .finish()
    }
}

impl PartialEq for ClientTls {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
            && self.sni == other.sni
            && self.auto_sni == other.auto_sni
            && self.auto_san == other.auto_san
    }
}

#[derive(Debug)]
struct ClientCert(Option<CertSourceDebug>);

struct CertSourceDebug(CertSource);

impl std::fmt::Debug for CertSourceDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertSource")
    }
}

impl ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _hints: &[&[u8]],
        _schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0.as_ref().and_then(|c| c.0.current())
    }

    fn has_certs(&self) -> bool {
        self.0.is_some()
    }
}

impl ClientTls {
    /// Converts an `UpstreamTlsContext` (errors relative to it). `auto_sni` / `auto_san`: the
    /// cluster's `upstream_http_protocol_options`.
    pub fn from_proto(
        ctx: &UpstreamTlsContext,
        store: &Arc<SecretStore>,
        auto_sni: bool,
        auto_san: bool,
    ) -> Result<Self, Fail> {
        let c = ctx.common_tls_context.clone().unwrap_or_default();
        let spec =
            common(&c, store, false).map_err(|(f, r)| (format!("common_tls_context.{f}"), r))?;
        if matches!(spec.cert, Some(super::source::CertSource::Several(_))) {
            return Err((
                "common_tls_context.tls_certificates".into(),
                "a client context presents one certificate (as in Envoy)".into(),
            ));
        }
        if spec.validation.as_ref().is_some_and(|v| v.crl) {
            return Err((
                "common_tls_context.validation_context.crl".into(),
                "revocation lists are not supported on upstream TLS".into(),
            ));
        }
        let auto_sni = auto_sni || ctx.auto_host_sni;
        let auto_san = (auto_san || ctx.auto_sni_san_validation) && spec.validation.is_some();
        let configs = [
            Arc::new(build(&spec, auto_san, &[])?),
            Arc::new(build(&spec, auto_san, b"http/1.1")?),
            Arc::new(build(&spec, auto_san, b"h2")?),
        ];
        Ok(Self {
            spec,
            sni: (!ctx.sni.is_empty()).then(|| ctx.sni.clone()),
            auto_sni,
            auto_san,
            configs,
        })
    }

    /// Whether the SNI comes from each request's host (connections are then pooled per SNI).
    pub fn auto_sni(&self) -> bool {
        self.auto_sni
    }

    /// The SNI a connection sends: with `auto_sni`, the request's `host` (as Envoy, it
    /// overrides `sni`), else the configured `sni`.
    pub fn sni<'a>(&'a self, host: Option<&'a str>) -> Option<&'a str> {
        host.filter(|_| self.auto_sni).or(self.sni.as_deref())
    }

    /// Runs the handshake on `io`, a connection to `peer`. `host`: the request's host for
    /// `auto_sni`. A failure is a connect failure (Envoy's `TLS_error`).
    pub async fn connect<IO>(
        &self,
        io: IO,
        peer: IpAddr,
        host: Option<&str>,
        carried: Carried,
    ) -> std::io::Result<TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let config = match carried {
            Carried::Raw => &self.configs[0],
            Carried::Http1 => &self.configs[1],
            Carried::Http2 => &self.configs[2],
        };
        let name = match self.sni(host) {
            Some(sni) => ServerName::try_from(sni.to_owned()).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("SNI {sni:?}: {e}"),
                )
            })?,
            // No SNI: an IP server name (rustls sends no SNI for it).
            None => ServerName::IpAddress(peer.into()),
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
        connector
            .connect(name, io)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("TLS_error:|{e}:TLS_error_end")))
    }
}

fn build(spec: &CommonSpec, auto_san: bool, fallback: &[u8]) -> Result<ClientConfig, Fail> {
    let builder = ClientConfig::builder_with_provider(spec.params.provider())
        .with_protocol_versions(protocol_versions(spec.versions))
        .map_err(|e| ("common_tls_context.tls_params".to_owned(), e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(ServerVerifier::new(spec.validation.clone(), auto_san));
    let resolver = ClientCert(spec.cert.clone().map(CertSourceDebug));
    let mut config = builder.with_client_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = if spec.alpn.is_empty() && !fallback.is_empty() {
        vec![fallback.to_vec()]
    } else {
        spec.alpn.clone()
    };
    Ok(config)
}
