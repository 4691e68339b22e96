//! istiod's 15017: the sidecar injection and Istio config validation webhooks over HTTPS
//! (`--webhook-addr`; on by default in a pod at `0.0.0.0:15017`, off elsewhere). The API
//! server POSTs AdmissionReview v1 to `/inject` (MutatingWebhookConfiguration) and
//! `/validate` (ValidatingWebhookConfiguration); the answers come from
//! `mast_inject::inject::admission`. The serving certificate is issued by the mesh CA for the
//! same names as the xDS TLS port (`--xds-tls-dns-names`) and renewed at half life, so the
//! webhook configurations' `caBundle` is the mesh root.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mast_ca::server::SharedCa;
use mast_inject::inject::{InjectConfig, admission};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::Args;

/// The webhook port in a pod, as istiod's.
pub const DEFAULT_IN_POD: &str = "0.0.0.0:15017";
/// The largest AdmissionReview accepted (the API server's own request limit is 3 MiB).
const MAX_BODY: usize = 8 << 20;

/// `--webhook-addr`: `off`, an address, or (not given) 15017 in a pod and off elsewhere.
pub fn resolve_addr(flag: Option<&str>, in_pod: bool) -> anyhow::Result<Option<SocketAddr>> {
    let text = match flag {
        Some("off") => return Ok(None),
        Some(a) => a,
        None if in_pod => DEFAULT_IN_POD,
        None => return Ok(None),
    };
    text.parse()
        .map(Some)
        .with_context(|| format!("--webhook-addr {text:?}: expected host:port or off"))
}

/// Starts the webhook server when `--webhook-addr` asks for it; it stops on `shutdown`.
pub async fn spawn(
    args: &Args,
    ca: Option<SharedCa>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Option<JoinHandle<anyhow::Result<()>>>> {
    let in_pod = mast_ca::kube_auth::KubeAuthConfig::in_cluster_available();
    let Some(addr) = resolve_addr(args.webhook_addr.as_deref(), in_pod)? else {
        return Ok(None);
    };
    let ca = match ca {
        Some(ca) => ca,
        None if args.webhook_addr.is_none() => {
            tracing::warn!("webhooks off: they need the certificate authority (give --ca-dir)");
            return Ok(None);
        }
        None => {
            anyhow::bail!("--webhook-addr {addr} needs the certificate authority (give --ca-dir)")
        }
    };
    let names: Vec<String> = args
        .xds_tls_dns_names
        .split(',')
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect();
    let acceptor =
        crate::xds_tls::acceptor(ca, names, args.cert_default_ttl, crate::xds_tls::ALPN_HTTP)?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the webhook address {addr}"))?;
    tracing::info!(%addr, "injection and validation webhooks listening (HTTPS)");
    let inject = InjectConfig {
        trust_domain: args.trust_domain.clone(),
        native_sidecars: args.native_sidecars,
        ..InjectConfig::default()
    };
    let hooks = Arc::new(Webhooks { inject });
    Ok(Some(tokio::spawn(serve(
        listener, acceptor, hooks, shutdown,
    ))))
}

/// What the handlers need.
#[derive(Debug)]
pub struct Webhooks {
    /// The injection configuration.
    pub inject: InjectConfig,
}

/// Accepts TLS connections on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    hooks: Arc<Webhooks>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("webhook accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        tokio::spawn(connection(tcp, peer, acceptor.clone(), Arc::clone(&hooks)));
    }
}

/// One connection: the TLS handshake, then HTTP/2 when negotiated, else HTTP/1.1.
async fn connection(tcp: TcpStream, peer: SocketAddr, acceptor: TlsAcceptor, hooks: Arc<Webhooks>) {
    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return tracing::debug!(%peer, "webhook TLS handshake failed: {e}"),
        Err(_) => return tracing::debug!(%peer, "webhook TLS handshake timed out"),
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
    let io = TokioIo::new(tls);
    let service = hyper::service::service_fn(move |req| handle(req, Arc::clone(&hooks)));
    let served = if h2 {
        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, service)
            .await
    } else {
        hyper::server::conn::http1::Builder::new()
            .serve_connection(io, service)
            .await
    };
    if let Err(e) = served {
        tracing::debug!(%peer, "webhook connection: {e}");
    }
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

/// Routes `/inject`, `/validate` (POST) and `/ready` (GET).
async fn handle(
    req: Request<Incoming>,
    hooks: Arc<Webhooks>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let text = "text/plain; charset=utf-8";
    match (req.method(), path.as_str()) {
        (&Method::POST, "/inject" | "/validate") => {}
        (&Method::GET, "/ready") => return Ok(reply(StatusCode::OK, text, "ok\n")),
        (_, "/inject" | "/validate") => {
            return Ok(reply(
                StatusCode::METHOD_NOT_ALLOWED,
                text,
                "POST an AdmissionReview\n",
            ));
        }
        _ => return Ok(reply(StatusCode::NOT_FOUND, text, "not found\n")),
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let msg = format!("cannot read the request body: {e}\n");
            return Ok(reply(StatusCode::PAYLOAD_TOO_LARGE, text, msg));
        }
    };
    let answer = if path == "/inject" {
        admission::inject(&body, &hooks.inject, None)
    } else {
        admission::validate(&body)
    };
    Ok(match answer {
        Ok(v) => reply(
            StatusCode::OK,
            "application/json",
            serde_json::to_vec(&v).unwrap_or_default(),
        ),
        Err(e) => {
            tracing::info!(path = %path, "bad webhook request: {e}");
            reply(StatusCode::BAD_REQUEST, text, format!("{e}\n"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_addr_defaults_to_15017_in_a_pod_only() {
        assert_eq!(resolve_addr(None, false).unwrap(), None);
        assert_eq!(
            resolve_addr(None, true).unwrap(),
            Some("0.0.0.0:15017".parse().unwrap())
        );
        assert_eq!(resolve_addr(Some("off"), true).unwrap(), None);
        let a = resolve_addr(Some("127.0.0.1:9443"), false).unwrap();
        assert_eq!(a, Some("127.0.0.1:9443".parse().unwrap()));
        let err = resolve_addr(Some("nowhere"), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--webhook-addr \"nowhere\""), "{err}");
    }
}
