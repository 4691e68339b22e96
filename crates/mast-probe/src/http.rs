//! The `httpGet` probe: one HTTP/1.1 GET to the application on 127.0.0.1, over TLS without
//! verification for `scheme: HTTPS` (as the kubelet). The kubelet's headers are forwarded
//! (hop-by-hop ones dropped), then the probe's `httpHeaders` set on top; `Host` is the
//! application's address unless a header sets it.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, header};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::{HttpGetAction, Scheme};
use crate::{APP_HOST, Answer, MAX_BODY};

/// Headers never forwarded to the application.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::HOST,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TE,
];

/// Runs the probe (the caller bounds its time).
pub async fn probe(action: &HttpGetAction, incoming: &HeaderMap) -> Answer {
    let addr = SocketAddr::new(APP_HOST, action.port);
    let request = match request(action, incoming, addr) {
        Ok(r) => r,
        Err(e) => return Answer::failed(e),
    };
    let tcp = match tokio::net::TcpStream::connect(addr).await {
        Ok(tcp) => tcp,
        Err(e) => return Answer::failed(format!("connecting to {addr}: {e}")),
    };
    let result = match action.scheme {
        Scheme::Http => exchange(tcp, request).await,
        Scheme::Https => https(tcp, request, addr).await,
    };
    match result {
        Ok((status, _)) if (200..400).contains(&status) => Answer::new(200, Bytes::new()),
        Ok((status, body)) => Answer::new(status, body),
        Err(e) => Answer::failed(e),
    }
}

fn request(
    action: &HttpGetAction,
    incoming: &HeaderMap,
    addr: SocketAddr,
) -> Result<Request<Empty<Bytes>>, String> {
    let mut request = Request::get(&action.path)
        .body(Empty::new())
        .map_err(|e| format!("probe path {:?}: {e}", action.path))?;
    let headers = request.headers_mut();
    for (name, value) in incoming {
        if !HOP_BY_HOP.contains(name) {
            headers.append(name, value.clone());
        }
    }
    headers.insert(
        header::HOST,
        HeaderValue::from_str(&addr.to_string()).map_err(|e| e.to_string())?,
    );
    for (name, value) in &action.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
        let value = HeaderValue::from_str(value).map_err(|e| e.to_string())?;
        headers.insert(name, value);
    }
    Ok(request)
}

/// TLS (unverified) on `tcp`, then the exchange.
async fn https(
    tcp: tokio::net::TcpStream,
    request: Request<Empty<Bytes>>,
    addr: SocketAddr,
) -> Result<(u16, Bytes), String> {
    let connector = tokio_rustls::TlsConnector::from(insecure_client()?);
    let name = rustls::pki_types::ServerName::IpAddress(APP_HOST.into());
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS to {addr}: {e}"))?;
    exchange(tls, request).await
}

/// Sends `request` on `io`; the status and (at most [`MAX_BODY`] of) the body.
async fn exchange<IO>(io: IO, request: Request<Empty<Bytes>>) -> Result<(u16, Bytes), String>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP request: {e}"))?;
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Ok((status, body))
}

/// A TLS client that accepts any certificate (the kubelet does not verify HTTPS probes).
fn insecure_client() -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyCertificate(Arc::clone(&provider)));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS client: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Accepts every certificate; signatures are still checked so the handshake is sound.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
