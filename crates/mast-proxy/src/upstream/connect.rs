//! TCP connections to endpoints: `connect_timeout`, `upstream_bind_config`, TCP keepalive and
//! `TCP_NODELAY`.

use std::net::SocketAddr;

use tokio::net::{TcpSocket, TcpStream};

use super::{UpstreamError, UpstreamOptions};

/// Connects to `addr` within the options' connect timeout.
pub(crate) async fn connect_tcp(
    options: &UpstreamOptions,
    addr: SocketAddr,
) -> Result<TcpStream, UpstreamError> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(UpstreamError::ConnectFailure)?;
    if let Some(bind) = options.bind
        && bind.is_ipv4() == addr.is_ipv4()
    {
        socket.bind(bind).map_err(UpstreamError::ConnectFailure)?;
    }
    let stream = match tokio::time::timeout(options.connect_timeout, socket.connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(UpstreamError::ConnectFailure(e)),
        Err(_) => return Err(UpstreamError::ConnectTimeout),
    };
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%addr, error = %e, "TCP_NODELAY");
    }
    if let Some(ka) = options.keepalive {
        let mut params = socket2::TcpKeepalive::new();
        if let Some(t) = ka.time {
            params = params.with_time(t);
        }
        if let Some(i) = ka.interval {
            params = params.with_interval(i);
        }
        if let Some(p) = ka.probes {
            params = params.with_retries(p);
        }
        if let Err(e) = socket2::SockRef::from(&stream).set_tcp_keepalive(&params) {
            tracing::debug!(%addr, error = %e, "TCP keepalive");
        }
    }
    Ok(stream)
}
