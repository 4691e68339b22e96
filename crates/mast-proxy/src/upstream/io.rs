//! The byte stream to an endpoint: plaintext or TLS over the same transport, and the TLS
//! handshake of a new upstream connection (bounded by the cluster's `connect_timeout`; a
//! failure is a connect failure, as in Envoy).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::client::TlsStream;

use super::{UpstreamError, UpstreamOptions};
use crate::tls::{Carried, ClientTls};

/// Where and how to connect: the endpoint's address and its transport socket.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub addr: SocketAddr,
    /// `None`: plaintext.
    pub tls: Option<Arc<ClientTls>>,
}

/// Plaintext or TLS over `S`.
#[derive(Debug)]
pub(crate) enum MaybeTls<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
}

/// Wraps `io` in TLS when the target says so.
pub(crate) async fn secure<S>(
    io: S,
    options: &UpstreamOptions,
    target: &Target,
    host: Option<&str>,
    carried: Carried,
) -> Result<MaybeTls<S>, UpstreamError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(tls) = &target.tls else {
        return Ok(MaybeTls::Plain(io));
    };
    let handshake = tls.connect(io, target.addr.ip(), host, carried);
    match tokio::time::timeout(options.connect_timeout, handshake).await {
        Ok(Ok(s)) => Ok(MaybeTls::Tls(Box::new(s))),
        Ok(Err(e)) => {
            tracing::debug!(addr = %target.addr, error = %e, "upstream TLS handshake failed");
            Err(UpstreamError::ConnectFailure(e))
        }
        Err(_) => Err(UpstreamError::ConnectTimeout),
    }
}

/// The host part of a request's authority (for `auto_sni`), without port or brackets.
pub(crate) fn sni_host(req: &http::Request<crate::body::Body>) -> Option<&str> {
    let authority = match req.uri().authority() {
        Some(a) => a.as_str(),
        None => req.headers().get(http::header::HOST)?.to_str().ok()?,
    };
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        match authority.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        }
    };
    (!host.is_empty()).then_some(host)
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeTls<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeTls<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }
}
