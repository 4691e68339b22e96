//! The HTTP hooks: [`Tracker::start`] when a request arrives (reads and strips the peer's
//! metadata on inbound listeners), [`outbound_request`] / [`upstream_response`] in the
//! router (send ours upstream, read and strip the server's), and [`Tracker::finish`] on the
//! response, whose body then records the request's metrics when it ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use http::{HeaderMap, Response};

use super::cache::{self, HttpHandles, HttpKey};
use super::identity::Workload;
use super::peer::{METADATA, METADATA_ID};
use super::{IstioStats, UNKNOWN, global};
use crate::body::Body;
use crate::hcm::flags::Flags;
use crate::metered::{End, Metered, OnEnd};
use crate::tls::SharedPeerTls;

/// The server's metadata, carried from the router to [`Tracker::finish`] in the
/// response's extensions.
#[derive(Debug, Clone)]
pub struct UpstreamPeer(pub Arc<Workload>);

/// Adds this proxy's metadata to a request for `cluster` when it goes to the mesh: an
/// `outbound|…` cluster that may use (Istio's auto m)TLS (`mesh`), so that plaintext
/// services outside the mesh never see it.
pub fn outbound_request(cluster: &str, mesh: bool, head: &mut HeaderMap) {
    if let Some(stats) = global() {
        outbound_request_in(stats, cluster, mesh, head);
    }
}

pub(super) fn outbound_request_in(
    stats: &IstioStats,
    cluster: &str,
    mesh: bool,
    head: &mut HeaderMap,
) {
    if !mesh || !cluster.starts_with("outbound|") {
        return;
    }
    head.insert(METADATA_ID, stats.identity.id_header.clone());
    head.insert(METADATA, stats.identity.metadata_header.clone());
}

/// Before the server's own metadata is read: the workload the chosen endpoint's Istio
/// metadata names, for servers that exchange none (Envoy sidecars, plaintext). Costs a
/// lookup only when the response carries no exchanged metadata.
pub fn upstream_endpoint(
    response: &mut Response<Body>,
    metadata: Option<&envoy_types::pb::envoy::config::core::v3::Metadata>,
) {
    if global().is_some() {
        upstream_endpoint_in(response, metadata);
    }
}

pub(super) fn upstream_endpoint_in(
    response: &mut Response<Body>,
    metadata: Option<&envoy_types::pb::envoy::config::core::v3::Metadata>,
) {
    if response.headers().contains_key(METADATA) {
        return;
    }
    if let Some(peer) = metadata.and_then(super::peer::endpoint_lookup) {
        response.extensions_mut().insert(UpstreamPeer(peer));
    }
}

/// Reads and strips the server's metadata from an upstream response.
pub fn upstream_response(response: &mut Response<Body>) {
    if let Some(stats) = global() {
        upstream_response_in(stats, response);
    }
}

pub(super) fn upstream_response_in(stats: &IstioStats, response: &mut Response<Body>) {
    let headers = response.headers_mut();
    headers.remove(METADATA_ID);
    let Some(value) = headers.remove(METADATA) else {
        return;
    };
    if let Some(peer) = super::peer::lookup(value.as_bytes(), &stats.identity.trust_domain) {
        response.extensions_mut().insert(UpstreamPeer(peer));
    }
}

/// One request being measured.
#[derive(Debug)]
pub struct Tracker {
    stats: &'static IstioStats,
    inbound: bool,
    peer: Option<Arc<Workload>>,
    tls: SharedPeerTls,
    grpc: bool,
    exchanged: bool,
    start: Instant,
}

/// Whether the request is gRPC (`content-type: application/grpc…`).
fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

impl Tracker {
    /// Starts measuring a request on a connection manager of an `inbound` listener (the
    /// server side) or an outbound one; on the server side the client's metadata headers are read and
    /// removed. `None` when no metrics are installed.
    pub fn start(inbound: bool, tls: &SharedPeerTls, headers: &mut HeaderMap) -> Option<Self> {
        Some(Self::start_in(global()?, inbound, tls, headers))
    }

    pub(super) fn start_in(
        stats: &'static IstioStats,
        inbound: bool,
        tls: &SharedPeerTls,
        headers: &mut HeaderMap,
    ) -> Self {
        let mut peer = None;
        let mut exchanged = false;
        if inbound {
            exchanged = headers.remove(METADATA_ID).is_some();
            if let Some(v) = headers.remove(METADATA) {
                exchanged = true;
                peer = super::peer::lookup(v.as_bytes(), &stats.identity.trust_domain);
            }
        }
        Self {
            stats,
            inbound,
            peer,
            tls: if inbound { tls.clone() } else { None },
            grpc: is_grpc(headers),
            exchanged,
            start: Instant::now(),
        }
    }

    /// Wraps the response so that its end records the metrics. `cluster` is the upstream
    /// cluster (if routed), `authority` the request's, `received` the request body's byte
    /// counter. On the server side, answers the client's metadata with this proxy's.
    pub fn finish(
        mut self,
        mut response: Response<Body>,
        cluster: Option<&str>,
        authority: &str,
        flags: Flags,
        received: Arc<AtomicU64>,
    ) -> Response<Body> {
        if self.inbound {
            if self.exchanged {
                let h = response.headers_mut();
                h.insert(METADATA_ID, self.stats.identity.id_header.clone());
                h.insert(METADATA, self.stats.identity.metadata_header.clone());
            }
        } else if let Some(UpstreamPeer(p)) = response.extensions_mut().remove::<UpstreamPeer>() {
            self.peer = Some(p);
        }
        let grpc_in_headers = grpc_status(response.headers());
        let code = response.status().as_u16();
        let handles = if !self.grpc || grpc_in_headers.is_some() {
            Some(self.handles(cluster, authority, code, grpc_in_headers, flags))
        } else {
            None
        };
        let deferred = handles.is_none().then(|| {
            Box::new(Deferred {
                service: service(cluster, authority).to_owned(),
                code,
                flags,
            })
        });
        let pending = Pending {
            tracker: self,
            handles,
            deferred,
            received,
        };
        Metered::wrap(response, pending)
    }

    fn handles(
        &self,
        cluster: Option<&str>,
        authority: &str,
        code: u16,
        grpc: Option<u32>,
        flags: Flags,
    ) -> HttpHandles {
        let principal = self
            .tls
            .as_deref()
            .and_then(|t| t.peer_uri_sans.first())
            .map_or(UNKNOWN, String::as_str);
        let security = match (self.inbound, &self.tls) {
            (false, _) => UNKNOWN,
            (true, Some(t)) if t.principal().is_some() => "mutual_tls",
            (true, _) => "none",
        };
        let key = HttpKey {
            inbound: self.inbound,
            peer: self.peer.as_ref(),
            principal,
            service: service(cluster, authority),
            protocol: if self.grpc { "grpc" } else { "http" },
            code,
            grpc: if self.grpc { grpc } else { None },
            flags,
            security,
        };
        cache::http(self.stats, key)
    }
}

/// The destination service host: the cluster's host part, else the authority's host.
fn service<'a>(cluster: Option<&'a str>, authority: &'a str) -> &'a str {
    if let Some((host, _, _)) = cluster.and_then(super::service_of_cluster) {
        return host;
    }
    match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(']') => h,
        _ => authority,
    }
}

fn grpc_status(h: &HeaderMap) -> Option<u32> {
    h.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// Labels still to resolve when a gRPC status arrives in the trailers.
#[derive(Debug)]
struct Deferred {
    service: String,
    code: u16,
    flags: Flags,
}

#[derive(Debug)]
struct Pending {
    tracker: Tracker,
    handles: Option<HttpHandles>,
    deferred: Option<Box<Deferred>>,
    received: Arc<AtomicU64>,
}

/// Records the request when its response body ends or is dropped; a gRPC status in the
/// trailers ends it there.
impl OnEnd for Pending {
    const AT_TRAILERS: bool = true;

    fn end(self, sent: u64, end: End<'_>) {
        let trailers_status = match end {
            End::Trailers(trailers) => grpc_status(trailers),
            End::Complete | End::Dropped(_) => None,
        };
        self.record(sent, trailers_status);
    }
}

impl Pending {
    fn record(self, sent: u64, trailers_status: Option<u32>) {
        let handles = match (self.handles, self.deferred) {
            (Some(h), _) => h,
            (None, Some(d)) => {
                let flags = d.flags;
                self.tracker
                    .handles(None, &d.service, d.code, trailers_status, flags)
            }
            (None, None) => return,
        };
        handles.requests.inc();
        let ms = self.tracker.start.elapsed().as_secs_f64() * 1000.0;
        handles.duration.observe(ms);
        handles
            .request_bytes
            .observe(self.received.load(Ordering::Relaxed) as f64);
        handles.response_bytes.observe(sent as f64);
    }
}
