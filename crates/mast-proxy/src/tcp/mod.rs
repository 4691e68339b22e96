//! The TCP proxy (`envoy.filters.network.tcp_proxy`): picks the chain's cluster (weighted, or
//! the one `sni_cluster` named),
//! an endpoint (ORIGINAL_DST clusters use the connection's original destination), connects
//! (up to `max_connect_attempts`), then copies bytes both ways until either side closes.

pub mod config;

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

pub use config::TcpProxyConfig;

use crate::cluster::LbContext;
use crate::hcm::Env;

/// Proxies `client` (a connection to `original_dst`) to the configured cluster, or to
/// `sni_cluster` when an `envoy.filters.network.sni_cluster` filter named one.
pub async fn proxy<IO>(
    mut client: IO,
    env: &Env,
    config: &TcpProxyConfig,
    (original_dst, sni_cluster): (SocketAddr, Option<&str>),
    tls: &crate::tls::SharedPeerTls,
) where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let name = match sni_cluster {
        Some(sni) => sni,
        None => config.pick(fastrand::u64(..)),
    };
    let Some(cluster) = env.clusters.get(name) else {
        tracing::debug!(cluster = name, "tcp_proxy: no such cluster");
        return;
    };
    let mut istio = crate::istio_stats::tcp::Conn::open(name, tls);
    let mut previous = Vec::new();
    for _ in 0..config.max_connect_attempts {
        let ctx = LbContext {
            hash: None,
            previous: &previous,
            max_attempts: config.max_connect_attempts,
            authority: None,
            original_dst: Some(original_dst),
        };
        let endpoint = match cluster.select(&ctx).await {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(cluster = name, error = ?e, "tcp_proxy: no upstream");
                return;
            }
        };
        match endpoint.connect().await {
            Ok(mut upstream) => {
                if let Some(c) = &mut istio {
                    c.connected(endpoint.metadata().as_deref());
                }
                let copied = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                if let (Some(c), Ok((received, sent))) = (&mut istio, &copied) {
                    c.bytes(*received, *sent);
                }
                tracing::trace!(cluster = name, ?copied, "tcp_proxy: closed");
                return;
            }
            Err(e) => {
                tracing::debug!(cluster = name, endpoint = %endpoint.address(), error = ?e, "tcp_proxy: connect failed");
                previous.push(endpoint.address());
            }
        }
    }
}
