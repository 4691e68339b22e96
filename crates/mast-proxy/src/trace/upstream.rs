//! `spawn_upstream_span: true` (Istio sets it on gateways): the connection manager's span is
//! SERVER, and the router makes a CLIENT child span per upstream request, named
//! `router <cluster> egress` as Envoy's router does; the child's context (not the parent's)
//! goes upstream. The child ends when the upstream answers (or fails), tagged with the
//! cluster, the upstream address and the status.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::{Extensions, HeaderMap};

use super::record::{FinishedSpan, Kind};
use super::span::RequestTrace;
use crate::cluster::ClusterManager;

/// An upstream request's span, while the request runs.
#[derive(Debug)]
pub struct UpstreamSpan {
    span: FinishedSpan,
    started: Instant,
    config: Arc<super::TraceConfig>,
}

/// Writes the trace context into the upstream request `head`: the request's span, or (with
/// `spawn_upstream_span`) a new child span, returned to be finished with
/// [`finish_upstream`].
pub fn inject_upstream(
    ext: &Extensions,
    head: &mut HeaderMap,
    cluster: &str,
) -> Option<UpstreamSpan> {
    let t = ext.get::<RequestTrace>()?;
    if !t.config().spawn_upstream_span {
        super::span::inject(ext, head);
        return None;
    }
    let child = FinishedSpan {
        trace_id: t.trace_id(),
        id: fastrand::u64(1..),
        parent_id: Some(t.span_id()),
        name: format!("router {cluster} egress"),
        kind: Kind::Client,
        shared: false,
        tracestate: None,
        start_us: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64),
        duration_us: 0,
        tags: Vec::new(),
    };
    super::span::inject_as(t, head, child.id, Some(t.span_id()));
    t.sampled().then(|| UpstreamSpan {
        span: child,
        started: Instant::now(),
        config: Arc::clone(t.config()),
    })
}

/// Ends an upstream span: `status` 0 when no response came.
pub fn finish_upstream(
    span: Option<UpstreamSpan>,
    cluster: &str,
    status: u16,
    host: Option<SocketAddr>,
    clusters: &Arc<ClusterManager>,
) {
    let Some(mut u) = span else {
        return;
    };
    let Some(reporter) = u.config.reporter(clusters).cloned() else {
        return;
    };
    let tags = &mut u.span.tags;
    tags.push(("component".into(), "proxy".to_owned()));
    tags.push(("upstream_cluster".into(), cluster.to_owned()));
    tags.push(("upstream_cluster.name".into(), cluster.to_owned()));
    if let Some(h) = host {
        tags.push(("upstream_address".into(), h.to_string()));
        tags.push(("peer.address".into(), h.to_string()));
    }
    tags.push(("http.status_code".into(), status.to_string()));
    if status == 0 || status >= 500 {
        tags.push(("error".into(), "true".to_owned()));
    }
    u.span.duration_us = u.started.elapsed().as_micros() as u64;
    reporter.report(u.span);
}
