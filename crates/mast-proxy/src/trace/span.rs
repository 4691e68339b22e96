//! One request's span, from the connection manager's hooks: [`start`] makes the tracing
//! decision and continues the caller's trace (or starts one), [`set_operation`] names the
//! span after the route's `decorator`, [`inject`] writes the span as the parent into the
//! upstream request, [`finish`] tags it with the outcome and hands it to the exporter when
//! the response body ends. The state rides in the request's extensions, so requests of
//! connection managers without `tracing` pay nothing.
//!
//! As Envoy (`spawn_upstream_span: false`) each proxy makes one span per request: SERVER on
//! inbound listeners, CLIENT otherwise (with `spawn_upstream_span`, SERVER, and
//! [`super::upstream`] adds a CLIENT child per upstream request). Zipkin: named after the `Host` (`:authority`), B3
//! written upstream, the inbound span sharing the caller's span id under
//! `shared_span_context`. OpenTelemetry: named `ingress` / `egress <host>`, `traceparent`
//! written upstream, always a new span id.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::{Extensions, HeaderMap, HeaderValue, Response, header};

use super::config::{CustomTag, TraceConfig};
use super::context::{self, Incoming, TraceId};
use super::provider::{Provider, Zipkin};
use super::record::{FinishedSpan, Kind, Tag};
use crate::body::Body;
use crate::cluster::ClusterManager;
use crate::hcm::flags::Flags;

/// A request's span while the request runs (kept in its extensions).
#[derive(Debug, Clone)]
pub struct RequestTrace {
    config: Arc<TraceConfig>,
    trace_id: TraceId,
    span_id: u64,
    parent_id: Option<u64>,
    sampled: bool,
    kind: Kind,
    shared: bool,
    tracestate: Option<HeaderValue>,
    name: String,
    start: SystemTime,
    started: Instant,
    tags: Vec<Tag>,
}

/// A random non-zero id.
fn random_id() -> u64 {
    fastrand::u64(1..)
}

fn zipkin_trace_id(z: &Zipkin) -> TraceId {
    let (mut high, mut low) = (if z.trace_id_128bit { random_id() } else { 0 }, random_id());
    if z.timestamp_trace_ids {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() & 0xffff_ffff);
        let word = if z.trace_id_128bit {
            &mut high
        } else {
            &mut low
        };
        *word = (secs << 32) | (*word & 0xffff_ffff);
    }
    TraceId {
        high,
        low,
        wide: z.trace_id_128bit,
    }
}

fn authority(parts: &http::request::Parts) -> &str {
    parts
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| parts.headers.get(header::HOST)?.to_str().ok())
        .unwrap_or("")
}

/// Starts the request's span (see the module doc). Requests with malformed trace headers
/// are not traced and keep their headers, as Envoy's null span.
pub fn start(
    config: &Arc<TraceConfig>,
    inbound: bool,
    peer: SocketAddr,
    parts: &mut http::request::Parts,
) {
    let reason = super::decision::decide(&config.sampling, &mut parts.headers);
    config.counters.count(reason);
    let Some(provider) = &config.provider else {
        return;
    };
    let Some(mut trace) = begin(config, provider, inbound, reason.traced(), parts) else {
        return;
    };
    if trace.sampled {
        trace.tags = start_tags(config, parts, peer);
    }
    parts.extensions.insert(trace);
}

/// The span's ids, decision and name from the incoming headers.
fn begin(
    config: &Arc<TraceConfig>,
    provider: &Provider,
    inbound: bool,
    traced: bool,
    parts: &http::request::Parts,
) -> Option<RequestTrace> {
    let host = authority(parts);
    let (incoming, name) = match provider {
        Provider::Zipkin(z) => {
            let incoming = match context::extract_b3(&parts.headers) {
                Incoming::None if z.w3c => context::extract_w3c(&parts.headers),
                other => other,
            };
            (incoming, host.to_owned())
        }
        Provider::OpenTelemetry(_) => {
            let name = if inbound {
                "ingress".to_owned()
            } else {
                format!("egress {host}")
            };
            (context::extract_w3c(&parts.headers), name)
        }
    };
    let mut trace = RequestTrace {
        config: Arc::clone(config),
        trace_id: TraceId::default(),
        span_id: random_id(),
        parent_id: None,
        sampled: traced,
        kind: if inbound || config.spawn_upstream_span {
            Kind::Server
        } else {
            Kind::Client
        },
        shared: false,
        tracestate: None,
        name,
        start: SystemTime::now(),
        started: Instant::now(),
        tags: Vec::new(),
    };
    match incoming {
        Incoming::Invalid => return None,
        Incoming::Context(ctx) => trace.continue_from(ctx, provider, inbound),
        Incoming::Sampled(sampled) => trace.root(provider, Some(sampled)),
        Incoming::None => trace.root(provider, None),
    }
    Some(trace)
}

impl RequestTrace {
    /// Continues the caller's trace: a child of its span, or (Zipkin inbound with a shared
    /// span context) the caller's span itself. The caller's decision wins over ours.
    fn continue_from(&mut self, ctx: context::SpanContext, provider: &Provider, inbound: bool) {
        self.trace_id = ctx.trace_id;
        self.sampled = ctx.sampled.unwrap_or(self.sampled);
        self.tracestate = ctx.tracestate;
        let share = matches!(provider, Provider::Zipkin(z) if z.shared_span_context);
        if inbound && share {
            self.span_id = ctx.span_id;
            self.parent_id = ctx.parent_id;
            self.shared = true;
        } else {
            self.parent_id = Some(ctx.span_id);
        }
    }

    /// Starts a trace, under the caller's bare decision when it gave one.
    fn root(&mut self, provider: &Provider, sampled: Option<bool>) {
        match provider {
            Provider::Zipkin(z) => {
                // Envoy's Zipkin tracer uses one random number for the span id and the trace
                // id's low half.
                self.trace_id = zipkin_trace_id(z);
                self.span_id = self.trace_id.low;
            }
            Provider::OpenTelemetry(_) => {
                self.trace_id = TraceId {
                    high: random_id(),
                    low: random_id(),
                    wide: true,
                };
            }
        }
        if let Some(s) = sampled {
            self.sampled = s;
        }
    }
}

fn header_or<'a>(h: &'a HeaderMap, name: &str, default: &'a str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or(default)
}

fn protocol(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// `scheme://host/path`, the path cut to `max` characters (Envoy's `buildOriginalUri`).
fn url(parts: &http::request::Parts, max: usize) -> String {
    let h = &parts.headers;
    let scheme = header_or(h, "x-forwarded-proto", "http");
    let path = h
        .get("x-envoy-original-path")
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.path_and_query().map(|p| p.as_str()))
        .unwrap_or("/");
    let cut = path
        .char_indices()
        .nth(max)
        .map_or(path, |(i, _)| &path[..i]);
    format!("{scheme}://{}{cut}", authority(parts))
}

/// The tags known when the request starts.
fn start_tags(config: &TraceConfig, parts: &http::request::Parts, peer: SocketAddr) -> Vec<Tag> {
    let h = &parts.headers;
    let node = super::node();
    let mut tags: Vec<Tag> = Vec::with_capacity(20 + config.custom_tags.len());
    let mut add = |k: &'static str, v: String| {
        if !v.is_empty() {
            tags.push((k.into(), v));
        }
    };
    add("node_id", node.id.clone());
    add("zone", node.zone.clone());
    add(
        "guid:x-request-id",
        header_or(h, "x-request-id", "").to_owned(),
    );
    add("http.url", url(parts, config.max_path_tag_length));
    add("http.method", parts.method.as_str().to_owned());
    add(
        "downstream_cluster",
        header_or(h, "x-envoy-downstream-service-cluster", "-").to_owned(),
    );
    add("user_agent", header_or(h, "user-agent", "-").to_owned());
    add("http.protocol", protocol(parts.version).to_owned());
    add("peer.address", peer.to_string());
    if let Some(id) = h.get("x-client-trace-id").and_then(|v| v.to_str().ok()) {
        add("guid:x-client-trace-id", id.to_owned());
    }
    for tag in &config.custom_tags {
        let (k, v) = match tag {
            CustomTag::Literal { tag, value } => (tag, value.clone()),
            CustomTag::Header { tag, name, default } => (
                tag,
                h.get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(default)
                    .to_owned(),
            ),
        };
        if !v.is_empty() {
            tags.push((k.clone().into(), v));
        }
    }
    tags
}

/// Names the span after the route's `decorator.operation`, when the route has one.
pub fn set_operation(ext: &mut Extensions, decorator: Option<&str>) {
    if let (Some(op), Some(t)) = (decorator, ext.get_mut::<RequestTrace>()) {
        op.clone_into(&mut t.name);
    }
}

/// Writes the request's span into the upstream request's headers (B3 for Zipkin, plus
/// `traceparent` under `USE_B3_WITH_W3C_PROPAGATION`; `traceparent` for OpenTelemetry).
pub fn inject(ext: &Extensions, head: &mut HeaderMap) {
    let Some(t) = ext.get::<RequestTrace>() else {
        return;
    };
    inject_as(t, head, t.span_id, t.parent_id);
}

/// Writes `t`'s trace with span `span_id` (parent `parent_id`) into `head`.
pub(super) fn inject_as(
    t: &RequestTrace,
    head: &mut HeaderMap,
    span_id: u64,
    parent_id: Option<u64>,
) {
    let w3c = |head: &mut HeaderMap| {
        context::inject_w3c(head, t.trace_id, span_id, t.sampled, t.tracestate.as_ref());
    };
    match &t.config.provider {
        Some(Provider::Zipkin(z)) => {
            context::inject_b3(head, t.trace_id, span_id, parent_id, t.sampled);
            if z.w3c {
                w3c(head);
            }
        }
        Some(Provider::OpenTelemetry(_)) => w3c(head),
        None => {}
    }
}

/// How the request ended.
#[derive(Debug)]
pub struct Finish<'a> {
    /// The status sent (0: none).
    pub status: u16,
    /// Envoy's response flags.
    pub flags: Flags,
    /// The upstream cluster, when routed to one.
    pub upstream_cluster: Option<&'a str>,
    /// The upstream host that answered.
    pub upstream_host: Option<SocketAddr>,
    /// Request body bytes received so far (read again when the span ends).
    pub received: Arc<AtomicU64>,
}

/// Tags the request's span with the outcome and returns the response, its body wrapped to
/// export the span when it ends; unchanged when the request has no sampled span.
pub fn finish(
    ext: &mut Extensions,
    done: Finish<'_>,
    clusters: &Arc<ClusterManager>,
    response: Response<Body>,
) -> Response<Body> {
    let Some(t) = ext.remove::<RequestTrace>() else {
        return response;
    };
    if !t.sampled {
        return response;
    }
    let Some(reporter) = t.config.reporter(clusters).cloned() else {
        return response;
    };
    let started = t.started;
    let span = t.into_span(&done);
    super::body::wrap(
        response,
        super::body::Pending {
            span,
            started,
            received: done.received,
            reporter,
        },
    )
}

impl RequestTrace {
    fn into_span(self, done: &Finish<'_>) -> FinishedSpan {
        let mut tags = self.tags;
        tags.push(("component".into(), "proxy".to_owned()));
        tags.push(("http.status_code".into(), done.status.to_string()));
        tags.push(("response_flags".into(), done.flags.to_string()));
        if let Some(c) = done.upstream_cluster {
            tags.push(("upstream_cluster".into(), c.to_owned()));
            tags.push(("upstream_cluster.name".into(), c.to_owned()));
        }
        if let Some(a) = done.upstream_host {
            tags.push(("upstream_address".into(), a.to_string()));
        }
        if done.status == 0 || done.status >= 500 {
            tags.push(("error".into(), "true".to_owned()));
        }
        FinishedSpan {
            trace_id: self.trace_id,
            id: self.span_id,
            parent_id: self.parent_id,
            name: self.name,
            kind: self.kind,
            shared: self.shared,
            tracestate: self
                .tracestate
                .and_then(|v| v.to_str().ok().map(str::to_owned)),
            start_us: self
                .start
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64),
            duration_us: 0,
            tags,
        }
    }

    /// The tracing configuration of the connection manager.
    pub fn config(&self) -> &Arc<TraceConfig> {
        &self.config
    }

    /// The trace id.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The span id written upstream.
    pub fn span_id(&self) -> u64 {
        self.span_id
    }

    /// The parent span id.
    pub fn parent_id(&self) -> Option<u64> {
        self.parent_id
    }

    /// Whether the span is sampled (exported).
    pub fn sampled(&self) -> bool {
        self.sampled
    }

    /// The operation name so far.
    pub fn name(&self) -> &str {
        &self.name
    }
}
