//! The HTTPS client's TLS: rustls trusting only the test CA, verifying the gateway's
//! certificate for [`HOST`] (SNI [`HOST`]), session resumption off (every new connection is
//! a full handshake), ALPN `http/1.1` or `h2`; and the one-time check that a gateway serves
//! [`URL`] over both protocols, with what TLS it negotiated.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use super::process::Gateway;
use super::setup::{Certs, HOST, URL};
use crate::load::{self, Endpoint, Proto, Tls};

/// How long a started gateway may take to serve its first 200 over both protocols.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// The client's TLS settings offering `alpn`.
pub fn config(certs: &Certs, alpn: &[&[u8]]) -> anyhow::Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(certs.ca_der.clone())
        .context("adding the test CA")?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// The load generator's TLS: ALPN `http/1.1` and `h2` connectors, SNI [`HOST`].
pub fn tls(certs: &Certs) -> anyhow::Result<Tls> {
    Ok(Tls {
        h1: TlsConnector::from(config(certs, &[b"http/1.1"])?),
        h2: TlsConnector::from(config(certs, &[b"h2"])?),
        name: server_name()?,
    })
}

/// [`HOST`] as a server name.
pub fn server_name() -> anyhow::Result<ServerName<'static>> {
    ServerName::try_from(HOST).context("the SNI")
}

/// Where HTTPS requests to `gateway` go: origin form with `Host: bench.example`, HTTP/2
/// with `:authority bench.example`.
pub fn endpoint(gateway: &Gateway) -> Endpoint {
    Endpoint {
        addr: gateway.addr,
        absolute: false,
        url: URL,
    }
}

/// Waits (bounded) until `GET https://bench.example/` answers 200 with the 1 KiB body over
/// HTTP/1.1 and over HTTP/2 on new connections; records the idle memory; returns a line
/// for the report (with the negotiated TLS version, cipher suite and ALPN).
pub async fn check(gateway: &mut Gateway, tls: &Tls) -> anyhow::Result<String> {
    let ep = endpoint(gateway);
    let deadline = Instant::now() + CHECK_TIMEOUT;
    for proto in [Proto::H1, Proto::H2] {
        loop {
            let last = load::one_request(ep, proto, Some(tls)).await;
            match last {
                Ok(true) => break,
                _ if !gateway.alive() => bail!(
                    "the {} gateway exited; its folder: {}",
                    gateway.kind.name(),
                    gateway.dir.display()
                ),
                _ if Instant::now() >= deadline => bail!(
                    "{}: no 200 for GET {URL} over {} at {} within {CHECK_TIMEOUT:?} (last: {last:?}); \
                     its folder: {}",
                    gateway.kind.name(),
                    proto.label(),
                    gateway.addr,
                    gateway.dir.display()
                ),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    let h1 = negotiated(gateway, &tls.h1).await?;
    let h2 = negotiated(gateway, &tls.h2).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    gateway.settle();
    Ok(format!(
        "{}: 200 for GET {URL} at {} over HTTP/1.1 ({h1}) and HTTP/2 ({h2})",
        gateway.kind.name(),
        gateway.addr
    ))
}

/// One handshake: "TLSv1_3 TLS13_AES_256_GCM_SHA384, ALPN h2".
async fn negotiated(gateway: &Gateway, connector: &TlsConnector) -> anyhow::Result<String> {
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect(gateway.addr).await?;
        let tls = connector.connect(server_name()?, tcp).await?;
        let session = tls.get_ref().1;
        let version = session
            .protocol_version()
            .map_or_else(|| "?".to_owned(), |v| format!("{v:?}"));
        let suite = session
            .negotiated_cipher_suite()
            .map_or_else(|| "?".to_owned(), |s| format!("{:?}", s.suite()));
        let alpn = session.alpn_protocol().map_or_else(
            || "none".to_owned(),
            |a| String::from_utf8_lossy(a).into_owned(),
        );
        anyhow::Ok(format!("{version} {suite}, ALPN {alpn}"))
    };
    tokio::time::timeout(Duration::from_secs(5), handshake)
        .await
        .context("no handshake within 5 s")?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mtls::handshake;
    use hyper::server::conn::{http1, http2};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::net::SocketAddr;

    /// A TLS server with the generated certificate answering as the upstream does (ALPN h2
    /// or http/1.1).
    async fn tls_server(certs: &Certs) -> SocketAddr {
        let pem = std::fs::read(&certs.cert).unwrap();
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(&std::fs::read(&certs.key).unwrap()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                    let io = TokioIo::new(tls);
                    let service = hyper::service::service_fn(crate::upstream::respond);
                    if h2 {
                        let builder = http2::Builder::new(TokioExecutor::new());
                        let _ = builder.serve_connection(io, service).await;
                    } else {
                        let _ = http1::Builder::new().serve_connection(io, service).await;
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn https_keep_alive_and_new_connections_against_a_tls_server() {
        let dir = std::env::temp_dir().join(format!("mast-gw-client-test-{}", std::process::id()));
        let certs = super::super::setup::make_certs(&dir).unwrap();
        let addr = tls_server(&certs).await;
        let tls = tls(&certs).unwrap();
        let ep = Endpoint {
            addr,
            absolute: false,
            url: URL,
        };
        for proto in [Proto::H1, Proto::H2] {
            let first = load::one_request(ep, proto, Some(&tls)).await;
            assert_eq!(first, Ok(true), "{proto:?}");
            let out = load::closed_loop_tls(ep, proto, &tls, 4, Duration::from_millis(300))
                .await
                .unwrap();
            assert!(
                out.ok > 10 && out.failures() == 0,
                "{proto:?}: {:?}",
                out.first_error
            );
        }
        let wrong_name = Tls {
            name: ServerName::try_from("other.example").unwrap(),
            ..tls.clone()
        };
        let refused = load::one_request(ep, Proto::H1, Some(&wrong_name)).await;
        assert!(refused.is_err_and(|e| e.contains("TLS handshake")));
        let limits = handshake::Limits {
            concurrency: 2,
            duration: Duration::from_millis(300),
            max_count: 50,
        };
        let config = config(&certs, &[b"http/1.1"]).unwrap();
        let after = handshake::After::Request(super::super::CLOSE_REQUEST);
        let out = handshake::closed_loop(addr, config, server_name().unwrap(), after, limits)
            .await
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(out.ok > 0 && out.failed == 0, "{:?}", out.first_error);
    }
}
