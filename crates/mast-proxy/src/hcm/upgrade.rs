//! Connections that stop being HTTP: `CONNECT` tunnels terminated by the proxy (ports
//! capture's way to reach TCP services and unknown hosts) and forwarded upgrades
//! (WebSocket): once both sides have switched, bytes are copied both ways until either
//! side closes.

use http::{Method, Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::access_log::Entry;
use super::local::{self, Local};
use super::{Env, flags::Flags};
use crate::body;
use crate::cluster::{LbContext, SelectError};
use crate::route::Forward;

/// Terminates a `CONNECT`: connects to the route's cluster (the dynamic forward proxy
/// resolves `authority`), answers 200, then tunnels the client's bytes.
pub async fn connect(
    env: &Env,
    fwd: &Forward,
    parts: &mut http::request::Parts,
    authority: &str,
    hash: Option<u64>,
    entry: &mut Entry,
) -> Local {
    debug_assert_eq!(parts.method, Method::CONNECT);
    let dest = fwd.pick(fastrand::u64(..));
    entry.upstream_cluster = Some(dest.cluster.clone());
    let Some(cluster) = env.clusters.get(&dest.cluster) else {
        return local::no_cluster(fwd.cluster_not_found);
    };
    let ctx = LbContext {
        hash,
        previous: &[],
        max_attempts: 1,
        authority: Some(authority),
        original_dst: None,
    };
    let endpoint = match cluster.select(&ctx).await {
        Ok(e) => e,
        Err(SelectError::DnsFailure(_)) => return local::dns_failure(),
        Err(_) => return local::no_healthy_upstream(),
    };
    entry.upstream_host = Some(endpoint.address());
    crate::stats::ProxyStats::cluster(&env.stats.upstream_rq, &dest.cluster);
    let upstream = match endpoint.connect().await {
        Ok(c) => c,
        Err(crate::cluster::UpstreamError::Overflow) => return local::overflow(),
        Err(_) => return local::connect_failure(),
    };
    let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
        return local::bad_request("connect_without_upgrade");
    };
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let mut client = TokioIo::new(upgraded);
                let mut upstream = upstream;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
            Err(e) => tracing::debug!(error = %e, "CONNECT upgrade failed"),
        }
    });
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::OK;
    Local {
        response,
        flags: Flags::NONE,
        details: "via_upstream",
    }
}

/// After a 101 from the upstream: joins the client's and the upstream's upgraded
/// connections once both complete.
pub fn splice_upgrade(downstream: OnUpgrade, response: &mut Response<crate::body::Body>) {
    let upstream = hyper::upgrade::on(response);
    tokio::spawn(async move {
        let (Ok(client), Ok(server)) = (downstream.await, upstream.await) else {
            tracing::debug!("upgrade did not complete on both sides");
            return;
        };
        let mut client = TokioIo::new(client);
        let mut server = TokioIo::new(server);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    });
}
