//! The router filter: forwards a request to its route's cluster — destination pick, circuit
//! breakers, endpoint selection (consistent hash, previous hosts), header mutations and
//! rewrites, retries with per-try timeouts and back-off inside the route timeout, mirrors —
//! and turns the upstream's answer (or failure) into the client's response with Envoy's
//! response flags.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Response, Uri, header};
use http_body_util::BodyExt as _;

use super::access_log::Entry;
use super::flags::Flags;
use super::local::{self, Local};
use super::{Env, headers, upgrade};
use crate::body::{self, Body};
use crate::cluster::{Cluster, LbContext, Outcome, SelectError, UpstreamError};
use crate::route::{Forward, Route, UpstreamFailure};
use crate::stats::ProxyStats;

/// Request bodies up to this size are kept for retries and mirrors (Envoy buffers up to the
/// connection buffer limit, 1 MiB; bigger bodies stream and are not retried).
const REPLAY_LIMIT: u64 = 64 * 1024;

/// The request as the router receives it.
pub struct Request<'a> {
    /// Method, URI, headers (already carrying the request id).
    pub parts: &'a mut http::request::Parts,
    /// The body.
    pub body: Body,
    /// `host[:port]` the client asked for.
    pub authority: String,
    /// Path and query (normalised).
    pub path: String,
    /// The consistent-hash key.
    pub hash: Option<u64>,
    /// The upgrade (`websocket`) being forwarded, when allowed.
    pub upgrade: Option<String>,
    /// The connection's original destination (for ORIGINAL_DST clusters).
    pub original_dst: Option<SocketAddr>,
}

/// A body that can be sent more than once, or a stream that can be sent once.
enum Payload {
    Replay(Bytes),
    Stream(Option<Body>),
}

impl Payload {
    async fn new(body: Body, keep: bool) -> Payload {
        if http_body::Body::is_end_stream(&body) {
            return Payload::Replay(Bytes::new());
        }
        let small = http_body::Body::size_hint(&body)
            .exact()
            .is_some_and(|n| n <= REPLAY_LIMIT);
        if keep && small {
            if let Ok(collected) = body.collect().await {
                return Payload::Replay(collected.to_bytes());
            }
            return Payload::Replay(Bytes::new());
        }
        Payload::Stream(Some(body))
    }

    fn take(&mut self) -> Option<Body> {
        match self {
            Payload::Replay(b) => Some(if b.is_empty() {
                body::empty()
            } else {
                body::full(b.clone())
            }),
            Payload::Stream(s) => s.take(),
        }
    }
}

/// Forwards the request (see the module doc).
pub async fn forward(
    env: &Env,
    route: &Route,
    fwd: &Forward,
    mut req: Request<'_>,
    entry: &mut Entry,
) -> Local {
    let dest = fwd.pick(fastrand::u64(..));
    entry.upstream_cluster = Some(dest.cluster.clone());
    let Some(cluster) = env.clusters.get(&dest.cluster) else {
        return local::no_cluster(fwd.cluster_not_found);
    };
    let Ok(_guard) = cluster.try_request() else {
        ProxyStats::cluster(&env.stats.upstream_rq_pending_overflow, &dest.cluster);
        return local::overflow();
    };
    let on_upgrade = req
        .upgrade
        .is_some()
        .then(|| req.parts.extensions.remove::<hyper::upgrade::OnUpgrade>())
        .flatten();
    let mut head = req.parts.headers.clone();
    headers::strip_hop_by_hop(&mut head, req.upgrade.is_some());
    if let Some(new_path) = route.rewritten_path(&req.path) {
        head.insert(
            "x-envoy-original-path",
            HeaderValue::from_str(&req.path).unwrap_or(HeaderValue::from_static("/")),
        );
        req.path = new_path;
    }
    dest.request_headers.apply(&mut head);
    route.request_headers.apply(&mut head);
    let upstream_span =
        crate::trace::upstream::inject_upstream(&req.parts.extensions, &mut head, &dest.cluster);
    let mesh = cluster.config().transports.any_tls();
    crate::istio_stats::http::outbound_request(&dest.cluster, mesh, &mut head);
    let authority = match dest.host_rewrite.as_ref().or(fwd.host_rewrite.as_ref()) {
        Some(h) => h.to_str().unwrap_or(&req.authority).to_owned(),
        None => req.authority.clone(),
    };
    let Ok(uri) = Uri::builder()
        .scheme("http")
        .authority(authority.as_str())
        .path_and_query(req.path.as_str())
        .build()
    else {
        return local::bad_request("invalid_url");
    };
    if let Ok(host) = HeaderValue::from_str(&authority) {
        head.insert(header::HOST, host);
    }
    let keep = fwd.retry.as_ref().is_some_and(|r| r.num_retries > 0) || !fwd.mirrors.is_empty();
    let mut payload = Payload::new(std::mem::replace(&mut req.body, body::empty()), keep).await;
    mirror(env, fwd, req.parts, &uri, &head, &payload);
    let started = Instant::now();
    let target = Target {
        uri: &uri,
        head,
        hash: req.hash,
        original_dst: req.original_dst,
    };
    let attempts = attempt_all(env, &cluster, fwd, req.parts, target, &mut payload);
    let result = match fwd.timeout {
        Some(t) => match tokio::time::timeout(t, attempts).await {
            Ok(r) => r,
            Err(_) => {
                ProxyStats::cluster(&env.stats.upstream_rq_timeout, &dest.cluster);
                Err(local::timeout())
            }
        },
        None => attempts.await,
    };
    let mut response = match result {
        Ok((response, host)) => {
            entry.upstream_host = Some(host);
            let status = response.status().as_u16();
            crate::trace::upstream::finish_upstream(
                upstream_span,
                &dest.cluster,
                status,
                Some(host),
                &env.clusters,
            );
            response
        }
        Err(l) => {
            let status = l.response.status().as_u16();
            crate::trace::upstream::finish_upstream(
                upstream_span,
                &dest.cluster,
                status,
                None,
                &env.clusters,
            );
            return l;
        }
    };
    let elapsed = started.elapsed().as_millis();
    entry.upstream_time = Some(elapsed);
    let switching = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    headers::strip_hop_by_hop(response.headers_mut(), switching && on_upgrade.is_some());
    crate::istio_stats::http::upstream_response(&mut response);
    response.headers_mut().insert(
        "x-envoy-upstream-service-time",
        HeaderValue::from(elapsed as u64),
    );
    dest.response_headers.apply(response.headers_mut());
    if switching && let Some(downstream) = on_upgrade {
        upgrade::splice_upgrade(downstream, &mut response);
    }
    Local {
        response,
        flags: Flags::NONE,
        details: "via_upstream",
    }
}

type Attempt = Result<(Response<Body>, SocketAddr), Local>;

fn build(
    parts: &http::request::Parts,
    uri: &Uri,
    head: http::HeaderMap,
    body: Body,
) -> http::Request<Body> {
    let mut r = http::Request::new(body);
    *r.method_mut() = parts.method.clone();
    *r.uri_mut() = uri.clone();
    *r.version_mut() = parts.version;
    *r.headers_mut() = head;
    r
}

/// Where and what each attempt sends.
struct Target<'a> {
    uri: &'a Uri,
    /// The headers; cloned for an attempt only while another may follow.
    head: http::HeaderMap,
    hash: Option<u64>,
    original_dst: Option<SocketAddr>,
}

async fn attempt_all(
    env: &Env,
    cluster: &Cluster,
    fwd: &Forward,
    parts: &http::request::Parts,
    target: Target<'_>,
    payload: &mut Payload,
) -> Attempt {
    let Target {
        uri,
        mut head,
        hash,
        original_dst,
    } = target;
    let policy = fwd.retry.as_ref();
    let retries = policy.map_or(0, |p| p.num_retries);
    let mut previous: Vec<SocketAddr> = Vec::new();
    let mut retry_guards = Vec::new();
    let mut attempt = 0u32;
    loop {
        let ctx = LbContext {
            hash,
            previous: if policy.is_some_and(|p| p.previous_hosts) {
                &previous
            } else {
                &[]
            },
            max_attempts: policy.map_or(1, |p| p.host_selection_max_attempts.max(1)),
            authority: uri.authority().map(|a| a.as_str()),
            original_dst,
        };
        let endpoint = match cluster.select(&ctx).await {
            Ok(e) => e,
            Err(SelectError::DnsFailure(_)) => return Err(local::dns_failure()),
            Err(_) => {
                ProxyStats::cluster(&env.stats.upstream_cx_none_healthy, cluster.name());
                return Err(local::no_healthy_upstream());
            }
        };
        ProxyStats::cluster(&env.stats.upstream_rq, cluster.name());
        let Some(body) = payload.take() else {
            return Err(local::upstream_reset(Flags::UPSTREAM_REMOTE_RESET));
        };
        let last = attempt >= retries || !matches!(payload, Payload::Replay(_));
        let headers = if last {
            std::mem::take(&mut head)
        } else {
            head.clone()
        };
        let send = endpoint.send(build(parts, uri, headers, body));
        let result = match policy.and_then(|p| p.per_try_timeout) {
            Some(t) => match tokio::time::timeout(t, send).await {
                Ok(r) => r.map_err(Tried::Failed),
                Err(_) => Err(Tried::TimedOut),
            },
            None => send.await.map_err(Tried::Failed),
        };
        let addr = endpoint.address();
        previous.push(addr);
        let can_retry = attempt < retries && matches!(payload, Payload::Replay(_));
        let failure = match result {
            Ok(mut response) => {
                endpoint.report(Outcome::Status(response.status().as_u16()));
                let retriable = policy
                    .is_some_and(|p| p.retry_on_response(response.status(), response.headers()));
                if !(retriable && can_retry && take_retry(cluster, &mut retry_guards)) {
                    crate::istio_stats::http::upstream_endpoint(
                        &mut response,
                        endpoint.metadata().as_deref(),
                    );
                    return Ok((response, addr));
                }
                None
            }
            Err(e) => {
                let (outcome, failure, reply) = classify(&e);
                count_failure(env, cluster.name(), failure);
                // Our own circuit breaker says nothing about the host (Envoy does not count
                // an overflow for outlier detection either).
                if !matches!(failure, UpstreamFailure::Overflow) {
                    endpoint.report(outcome);
                }
                let retriable = policy.is_some_and(|p| p.retry_on_failure(failure));
                if !(retriable && can_retry && take_retry(cluster, &mut retry_guards)) {
                    let mut reply = reply;
                    if retriable && attempt > 0 {
                        reply.flags.insert(Flags::UPSTREAM_RETRY_LIMIT_EXCEEDED);
                    }
                    return Err(reply);
                }
                Some(failure)
            }
        };
        tracing::debug!(?failure, attempt, "retrying");
        ProxyStats::cluster(&env.stats.upstream_rq_retry, cluster.name());
        attempt += 1;
        if let Some(p) = policy {
            tokio::time::sleep(p.back_off(attempt)).await;
        }
    }
}

fn count_failure(env: &Env, cluster: &str, failure: UpstreamFailure) {
    let family = match failure {
        UpstreamFailure::ConnectFailure => &env.stats.upstream_cx_connect_fail,
        UpstreamFailure::PerTryTimeout => &env.stats.upstream_rq_timeout,
        UpstreamFailure::Overflow => &env.stats.upstream_rq_pending_overflow,
        _ => return,
    };
    ProxyStats::cluster(family, cluster);
}

fn take_retry(cluster: &Cluster, guards: &mut Vec<crate::cluster::RetryGuard>) -> bool {
    match cluster.try_retry() {
        Ok(g) => {
            guards.push(g);
            true
        }
        Err(_) => false,
    }
}

/// How an attempt failed.
enum Tried {
    Failed(UpstreamError),
    TimedOut,
}

fn classify(e: &Tried) -> (Outcome, UpstreamFailure, Local) {
    let e = match e {
        Tried::TimedOut => {
            return (
                Outcome::Timeout,
                UpstreamFailure::PerTryTimeout,
                local::timeout(),
            );
        }
        Tried::Failed(e) => e,
    };
    match e {
        UpstreamError::ConnectFailure(_) | UpstreamError::ConnectTimeout => (
            Outcome::ConnectFailure,
            UpstreamFailure::ConnectFailure,
            local::connect_failure(),
        ),
        UpstreamError::Overflow => (
            Outcome::ConnectFailure,
            UpstreamFailure::Overflow,
            local::overflow(),
        ),
        UpstreamError::RefusedStream => (
            Outcome::Reset,
            UpstreamFailure::RefusedStream,
            local::upstream_reset(Flags::UPSTREAM_REMOTE_RESET),
        ),
        UpstreamError::Reset(_) | UpstreamError::Protocol(_) => (
            Outcome::Reset,
            UpstreamFailure::Reset,
            local::upstream_reset(Flags::UPSTREAM_CONNECTION_TERMINATION),
        ),
    }
}

/// Sends a copy to each sampled mirror cluster, fire and forget (replayable bodies only).
fn mirror(
    env: &Env,
    fwd: &Forward,
    parts: &http::request::Parts,
    uri: &Uri,
    head: &http::HeaderMap,
    payload: &Payload,
) {
    let Payload::Replay(bytes) = payload else {
        return;
    };
    for m in &fwd.mirrors {
        if !m.sampled(fastrand::u64(..)) {
            continue;
        }
        let Some(cluster) = env.clusters.get(&m.cluster) else {
            continue;
        };
        let request = build(parts, uri, head.clone(), body::full(bytes.clone()));
        tokio::spawn(async move {
            let ctx = LbContext {
                hash: None,
                previous: &[],
                max_attempts: 1,
                authority: None,
                original_dst: None,
            };
            let Ok(endpoint) = cluster.select(&ctx).await else {
                return;
            };
            let send = endpoint.send(request);
            if let Ok(Ok(response)) = tokio::time::timeout(Duration::from_secs(30), send).await {
                let _ = response.into_body().collect().await;
            }
        });
    }
}
