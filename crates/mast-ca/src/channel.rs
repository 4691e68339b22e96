//! gRPC channels to mastd, for the CA and xDS clients of both proxies: plaintext for
//! `host:port` and `http://host:port` (mastd's 15010, local meshes), TLS for
//! `https://host:port` (istiod's 15012, pods in a cluster), verified against the mesh root
//! (`roots_pem`, the `istio-ca-root-cert` ConfigMap's `root-cert.pem`) with the address's host
//! as the server name. Channels connect lazily and reconnect after failures.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject as _;
use tonic::transport::{Channel, Endpoint, Uri};

/// Why a channel cannot be made.
#[derive(Debug, thiserror::Error)]
#[error("address {address:?}: {reason}")]
pub struct ChannelError {
    /// The address given.
    pub address: String,
    /// What is wrong.
    pub reason: String,
}

/// `host:port` → `http://host:port`; URLs are kept.
pub fn uri_of(address: &str) -> String {
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    }
}

/// A lazily connected channel to `address`; `https://` needs `roots_pem`.
pub fn channel(
    address: &str,
    roots_pem: Option<&str>,
    timeout: Option<Duration>,
) -> Result<Channel, ChannelError> {
    let fail = |reason: String| ChannelError {
        address: address.to_owned(),
        reason,
    };
    let uri: Uri = uri_of(address)
        .parse()
        .map_err(|e: http::uri::InvalidUri| fail(e.to_string()))?;
    let mut endpoint = Endpoint::from(uri.clone())
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    if let Some(t) = timeout {
        endpoint = endpoint.timeout(t);
    }
    if uri.scheme_str() != Some("https") {
        return Ok(endpoint.connect_lazy());
    }
    let roots = roots_pem.ok_or_else(|| {
        fail("an https:// address needs the mesh root certificate (--xds-root-cert)".into())
    })?;
    let host = uri
        .host()
        .ok_or_else(|| fail("no host".into()))?
        .trim_matches(|c| c == '[' || c == ']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(15012);
    let name = ServerName::try_from(host.clone()).map_err(|e| fail(e.to_string()))?;
    let connector = tokio_rustls::TlsConnector::from(client_config(roots).map_err(fail)?);
    let connect = Connect {
        host: Arc::from(host),
        port,
        name,
        connector,
    };
    Ok(endpoint.connect_with_connector_lazy(connect))
}

/// A rustls client configuration trusting `roots_pem`, offering HTTP/2.
fn client_config(roots_pem: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(roots_pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("the root certificate: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("the root certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the root certificate file holds no certificate".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The connector: TCP to `host:port`, then TLS verified for `name`.
#[derive(Clone)]
struct Connect {
    host: Arc<str>,
    port: u16,
    name: ServerName<'static>,
    connector: tokio_rustls::TlsConnector,
}

type TlsIo = TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

impl tower_service::Service<Uri> for Connect {
    type Response = TlsIo;
    type Error = std::io::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<TlsIo>> + Send>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let tcp = tokio::net::TcpStream::connect((&*this.host, this.port)).await?;
            tcp.set_nodelay(true)?;
            let tls = this.connector.connect(this.name, tcp).await?;
            Ok(TokioIo::new(tls))
        })
    }
}
