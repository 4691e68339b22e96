//! One accepted connection: its original destination, the listener that serves it (a
//! `use_original_dst` listener hands it to the bind_to_port=false listener for that
//! address, as Envoy does), the best-matching filter chain, the chain's TLS termination (the
//! TLS inspector only peeked, so the ClientHello is still in the socket for rustls), its
//! network RBAC filters (a denied connection is closed), and the chain's terminal filter.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::chain_match::{self, Facts};
use super::convert::{FilterChain, ListenerConfig, NetworkFilter};
use super::inspect::{self, Inspected};
use crate::hcm::{self, Env, stream::ConnInfo};
use crate::signals::Signals;

/// The listeners a connection can be handed to (bind_to_port=false ones).
pub type Virtuals = Arc<Vec<Arc<ListenerConfig>>>;

/// The connection's original destination: `SO_ORIGINAL_DST` when iptables redirected it,
/// else its local address.
pub fn original_dst(stream: &TcpStream) -> Option<SocketAddr> {
    let local = stream.local_addr().ok()?;
    let sock = socket2::SockRef::from(stream);
    let original = if local.is_ipv4() {
        sock.original_dst_v4()
    } else {
        sock.original_dst_v6()
    };
    Some(original.ok().and_then(|a| a.as_socket()).unwrap_or(local))
}

/// The listener for `dst` among `virtuals`: exact address first, then the wildcard address
/// on the same port.
pub fn virtual_for(
    virtuals: &[Arc<ListenerConfig>],
    dst: SocketAddr,
) -> Option<Arc<ListenerConfig>> {
    let exact = virtuals.iter().find(|l| l.address == dst);
    let wildcard = || {
        virtuals.iter().find(|l| {
            l.address.port() == dst.port()
                && (l.address.ip() == IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                    || l.address.ip().is_unspecified())
        })
    };
    exact.or_else(wildcard).cloned()
}

/// The chain for a connection from `peer` to `dst`, given what the TLS inspector saw
/// (Envoy's filter chain match; no match: the default chain, else `None`).
pub fn select_chain<'a>(
    listener: &'a ListenerConfig,
    dst: SocketAddr,
    peer: SocketAddr,
    seen: &Inspected,
) -> Option<&'a FilterChain> {
    let facts = Facts {
        dst,
        peer,
        server_name: seen.server_name.as_deref(),
        transport: seen.transport,
        alpn: &seen.alpn,
    };
    chain_match::select(&listener.chains, &facts).or(listener.default_chain.as_ref())
}

/// Envoy's `listener_filters_timeout` default.
const INSPECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Serves one connection accepted by `listener`.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<ListenerConfig>,
    virtuals: Virtuals,
    env: Arc<Env>,
    signals: Signals,
) {
    let _guard = signals.connection();
    let _ = stream.set_nodelay(true);
    let Some(dst) = original_dst(&stream) else {
        return;
    };
    let target = if listener.use_original_dst {
        virtual_for(&virtuals, dst).unwrap_or(listener)
    } else {
        listener
    };
    let seen = if target.tls_inspector {
        inspect::inspect(&stream, INSPECT_TIMEOUT).await
    } else {
        Inspected {
            transport: "raw_buffer",
            ..Inspected::default()
        }
    };
    let Some(chain) = select_chain(&target, dst, peer, &seen) else {
        tracing::debug!(listener = %target.name, %dst, "no filter chain matched (NR)");
        return;
    };
    let Some(tls) = &chain.tls else {
        let conn = ConnInfo {
            local: dst,
            peer,
            tls: None,
        };
        return dispatch(stream, chain, conn, env, &signals, &target, &seen).await;
    };
    match tls.accept(stream).await {
        Ok((stream, facts)) => {
            let conn = ConnInfo {
                local: dst,
                peer,
                tls: Some(Arc::new(facts)),
            };
            dispatch(stream, chain, conn, env, &signals, &target, &seen).await;
        }
        Err(e) => {
            tracing::debug!(listener = %target.name, chain = %chain.name, %peer, error = %e, "downstream TLS handshake failed");
        }
    }
}

/// Runs the chain's network RBAC filters (a denied connection is closed), then its terminal
/// filter (a TCP proxy after `sni_cluster` connects to the cluster the SNI names).
async fn dispatch<IO>(
    io: IO,
    chain: &FilterChain,
    conn: ConnInfo,
    env: Arc<Env>,
    signals: &Signals,
    listener: &ListenerConfig,
    seen: &Inspected,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if let Some(denied) = chain.rbac.iter().find(|r| !r.allows_connection(&conn)) {
        tracing::debug!(chain = %chain.name, peer = %conn.peer, filter = ?denied.stat_prefix(), "connection closed by network RBAC");
        return;
    }
    match &chain.filter {
        NetworkFilter::Http(config) => {
            let drains = hcm::server::Drains {
                proxy: signals.draining(),
                listener: Some(listener.replaced.subscribe()),
            };
            hcm::server::serve_with(io, env, Arc::clone(config), conn, drains).await;
        }
        NetworkFilter::Tcp(config) => {
            let config = Arc::clone(config);
            // sni_cluster: the SNI names the cluster (Envoy's `envoy.tcp_proxy.cluster`
            // filter state; a missing cluster closes the connection, as in Envoy).
            let sni_cluster = seen
                .server_name
                .as_deref()
                .filter(|s| chain.sni_cluster && !s.is_empty());
            crate::tcp::proxy(io, &env, &config, (conn.local, sni_cluster), &conn.tls).await;
        }
    }
}
