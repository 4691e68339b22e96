//! One HTTP request through the connection manager: authority and path (normalised as
//! Envoy's `maybeNormalizePath`), request id, `x-forwarded-client-cert`, the authorization
//! filters (`jwt_authn`, `rbac`, in list order), route selection, then the filters in
//! Envoy's order — CORS, fault, and the router (or a direct response / redirect) — and the
//! access log line when the response body ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::{HeaderValue, Method, Request, Response, Version, header};
use hyper::body::Incoming;

use super::access_log::Entry;
use super::count::{Counted, ResponseLog};
use super::local::{self, Local};
use super::normalize::{self, Normalized};
use super::{Env, HcmConfig, RouteSource, authz, headers, router, upgrade};
use crate::body::{self, Body};
use crate::route::{Action, Preflight, RequestHead, Route};

/// The connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The local (original destination) address.
    pub local: SocketAddr,
    /// The client's address.
    pub peer: SocketAddr,
    /// What downstream TLS established; `None` for plaintext.
    pub tls: crate::tls::SharedPeerTls,
}

fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    }
}

/// Handles one request; never fails (errors become local replies).
pub async fn handle(
    env: Arc<Env>,
    hcm: Arc<HcmConfig>,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let start = Instant::now();
    let (mut parts, incoming) = req.into_parts();
    let (body, received) = Counted::request(incoming);
    let istio =
        crate::istio_stats::http::Tracker::start(hcm.inbound, &conn.tls, &mut parts.headers);
    let mut entry = Entry {
        start: Some(SystemTime::now()),
        method: parts.method.to_string(),
        protocol: protocol(parts.version),
        downstream_local: Some(conn.local),
        downstream_remote: Some(conn.peer),
        ..Entry::default()
    };
    let mutated = super::edge::mutate_request(
        &mut parts.headers,
        (conn.peer, conn.local, conn.tls.is_some()),
        (hcm.use_remote_address, hcm.xff_num_trusted_hops),
        &hcm.edge,
    );
    let force_id = mutated.edge && !hcm.edge.preserve_external_request_id;
    if hcm.generate_request_id && (force_id || !parts.headers.contains_key("x-request-id")) {
        parts.headers.insert("x-request-id", headers::request_id());
    }
    if let Some(tracing) = &hcm.tracing {
        crate::trace::start(tracing, hcm.inbound, conn.peer, &mut parts);
    }
    let outcome = route(&env, &hcm, conn, &mut parts, body, &mut entry).await;
    entry.status = outcome.response.status().as_u16();
    entry.flags.insert(outcome.flags);
    entry.details = outcome.details;
    let response = match istio {
        Some(t) => t.finish(
            outcome.response,
            entry.upstream_cluster.as_deref(),
            &entry.authority,
            entry.flags,
            Arc::clone(&received),
        ),
        None => outcome.response,
    };
    let mut response = if hcm.tracing.is_some() {
        finish_span(&env, &entry, &received, &mut parts, response)
    } else {
        response
    };
    hcm.edge.server_header(response.headers_mut());
    entry.request_id = header_string(&parts.headers, "x-request-id");
    entry.user_agent = header_string(&parts.headers, "user-agent");
    entry.forwarded_for = header_string(&parts.headers, "x-forwarded-for");
    let log = env.access_log.clone().map(|log| ResponseLog {
        log,
        entry,
        start,
        received,
    });
    Ok(Counted::response(response, log))
}

/// Completes the request's span (when it has one) with the outcome in `entry`.
fn finish_span(
    env: &Env,
    entry: &Entry,
    received: &Arc<std::sync::atomic::AtomicU64>,
    parts: &mut http::request::Parts,
    response: Response<Body>,
) -> Response<Body> {
    let done = crate::trace::Finish {
        status: entry.status,
        flags: entry.flags,
        upstream_cluster: entry.upstream_cluster.as_deref(),
        upstream_host: entry.upstream_host,
        received: Arc::clone(received),
    };
    crate::trace::finish(&mut parts.extensions, done, &env.clusters, response)
}

fn count_hcm(
    family: &prometheus_client::metrics::family::Family<
        crate::stats::HcmLabel,
        prometheus_client::metrics::counter::Counter,
    >,
    hcm: &HcmConfig,
) {
    family
        .get_or_create(&crate::stats::HcmLabel {
            envoy_http_conn_manager_prefix: hcm.stat_prefix.clone(),
        })
        .inc();
}

fn header_string(h: &http::HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn authority(parts: &http::request::Parts) -> Option<String> {
    if let Some(a) = parts.uri.authority() {
        return Some(a.as_str().to_owned());
    }
    let host = parts.headers.get(header::HOST)?.to_str().ok()?;
    (!host.is_empty()).then(|| host.to_owned())
}

/// Rewrites the request's authority (`:authority` and `host`) after port stripping.
fn set_authority(parts: &mut http::request::Parts, authority: &str) {
    let Ok(value) = HeaderValue::from_str(authority) else {
        return;
    };
    if parts.headers.contains_key(header::HOST) || parts.uri.authority().is_none() {
        parts.headers.insert(header::HOST, value);
    }
    if parts.uri.authority().is_some() {
        let mut uri = parts.uri.clone().into_parts();
        uri.authority = authority.parse().ok();
        if let Ok(u) = http::Uri::from_parts(uri) {
            parts.uri = u;
        }
    }
}

async fn route(
    env: &Env,
    hcm: &HcmConfig,
    conn: ConnInfo,
    parts: &mut http::request::Parts,
    body: Body,
    entry: &mut Entry,
) -> Local {
    if parts.version == Version::HTTP_10 && !hcm.accept_http_10 {
        return local::http10_refused();
    }
    let Some(mut authority) = authority(parts) else {
        return local::bad_request("missing_host_header");
    };
    let stripped = hcm.edge.strip(&authority, conn.local.port());
    if stripped.len() != authority.len() {
        authority.truncate(stripped.len());
        set_authority(parts, &authority);
    }
    entry.authority.clone_from(&authority);
    let connect = parts.method == Method::CONNECT;
    let path = if connect {
        String::new()
    } else {
        match request_path(hcm, parts) {
            Ok(p) => p,
            Err(reply) => return *reply,
        }
    };
    entry.path.clone_from(&path);
    hcm.xfcc.apply(&mut parts.headers, conn.tls.as_deref());
    if let Err(reply) = authorize(env, hcm, &conn, parts, &authority, &path).await {
        return *reply;
    }
    let table = match &hcm.routes {
        RouteSource::Rds(name) => env.routes.get(name),
        RouteSource::Inline(t) => Some(Arc::clone(t)),
    };
    let Some(table) = table else {
        count_hcm(&env.stats.no_route, hcm);
        return local::no_route();
    };
    let head = RequestHead {
        method: &parts.method,
        scheme: "http",
        authority: &authority,
        path: &path,
        headers: &parts.headers,
    };
    let Some(route) = table.select(&head) else {
        count_hcm(&env.stats.no_route, hcm);
        return local::no_route();
    };
    entry.route_name = Some(route.name.clone());
    let hash = match &route.action {
        Action::Forward(f) => f.hash(&head, Some(conn.peer.ip())),
        _ => None,
    };
    let size_limit = table.max_direct_response_body_size();
    filters(
        env, hcm, route, parts, body, authority, path, hash, size_limit, entry,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn filters(
    env: &Env,
    hcm: &HcmConfig,
    route: &Route,
    parts: &mut http::request::Parts,
    body: Body,
    authority: String,
    path: String,
    hash: Option<u64>,
    size_limit: usize,
    entry: &mut Entry,
) -> Local {
    if hcm.tracing.is_some() {
        crate::trace::set_operation(&mut parts.extensions, route.decorator.as_deref());
    }
    let cors = route.cors.as_ref().filter(|_| hcm.cors);
    if let Some(cors) = cors
        && let Preflight::Respond(status, h) = cors.preflight(&parts.method, &parts.headers)
    {
        let mut response = Response::new(body::empty());
        *response.status_mut() = status;
        *response.headers_mut() = h;
        return Local {
            response,
            flags: Default::default(),
            details: "cors_response",
        };
    }
    if let Some(fault) = route.fault.as_ref().filter(|_| hcm.fault) {
        if let Some(delay) = fault.delay() {
            entry.flags.insert(super::flags::Flags::DELAY_INJECTED);
            tokio::time::sleep(delay).await;
        }
        if let Some(abort) = fault.abort() {
            return local::fault_abort(&abort);
        }
    }
    let mut outcome = match &route.action {
        Action::Direct(d) => direct(d, size_limit),
        Action::Redirect(r) => {
            let head = RequestHead {
                method: &parts.method,
                scheme: "http",
                authority: &authority,
                path: &path,
                headers: &parts.headers,
            };
            let (status, location) = r.location(&head);
            let mut response = Response::new(body::empty());
            *response.status_mut() = status;
            response.headers_mut().insert(header::LOCATION, location);
            Local {
                response,
                flags: Default::default(),
                details: "direct_response",
            }
        }
        Action::Forward(f) if parts.method == Method::CONNECT => {
            if !f.connect {
                return local::no_route();
            }
            upgrade::connect(env, f, parts, &authority, hash, entry).await
        }
        Action::Forward(f) => {
            let upgrade = hcm_upgrade(hcm, f, &parts_headers_upgrade(parts));
            let request = router::Request {
                parts,
                body,
                authority,
                path,
                hash,
                upgrade,
                original_dst: entry.downstream_local,
            };
            router::forward(env, route, f, request, entry).await
        }
    };
    route.response_headers.apply(outcome.response.headers_mut());
    if let Some(cors) = cors {
        cors.on_response(&parts.headers, outcome.response.headers_mut());
    }
    outcome
}

/// The request's path and query after Envoy's normalisation, or the local reply that ends it.
fn request_path(hcm: &HcmConfig, parts: &http::request::Parts) -> Result<String, Box<Local>> {
    let original = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    match normalize::normalize(original, hcm.path_config()) {
        Normalized::Unchanged => Ok(original.to_owned()),
        Normalized::Changed(p) => Ok(p),
        Normalized::Reject => Err(Box::new(path_rejected())),
        Normalized::Redirect(p) => Err(Box::new(path_redirect(&p))),
    }
}

/// Runs the authorization filters (`jwt_authn`, `rbac`); `Err` is a 401/403 to send.
async fn authorize(
    env: &Env,
    hcm: &HcmConfig,
    conn: &ConnInfo,
    parts: &mut http::request::Parts,
    authority: &str,
    path: &str,
) -> Result<(), Box<Local>> {
    if hcm.authz.is_empty() {
        return Ok(());
    }
    let facts = authz::RequestFacts {
        method: parts.method.as_str(),
        authority,
        path,
        scheme: "http",
        remote_ip: authz::remote_ip(
            &parts.headers,
            conn.peer.ip(),
            hcm.use_remote_address,
            hcm.xff_num_trusted_hops,
        ),
    };
    authz::run(&hcm.authz, &facts, &mut parts.headers, conn, &env.clusters)
        .await
        .map(drop)
}

/// 400: the path cannot be normalised (or carries escaped slashes under REJECT_REQUEST).
fn path_rejected() -> Local {
    local::reply(
        http::StatusCode::BAD_REQUEST,
        "",
        Default::default(),
        "path_normalization_failed",
    )
}

/// 307 to the unescaped path (UNESCAPE_AND_REDIRECT).
fn path_redirect(path: &str) -> Local {
    let mut l = local::reply(
        http::StatusCode::TEMPORARY_REDIRECT,
        "",
        Default::default(),
        "path_normalization_redirect",
    );
    if let Ok(v) = HeaderValue::from_str(path) {
        l.response.headers_mut().insert(header::LOCATION, v);
    }
    l
}

fn parts_headers_upgrade(parts: &http::request::Parts) -> Option<String> {
    headers::upgrade_type(&parts.headers)
}

fn hcm_upgrade(
    hcm: &HcmConfig,
    f: &crate::route::Forward,
    kind: &Option<String>,
) -> Option<String> {
    let kind = kind.as_ref()?;
    (hcm.allows_upgrade(kind) || f.upgrades.iter().any(|u| u == kind)).then(|| kind.clone())
}

fn direct(d: &crate::route::DirectResponse, limit: usize) -> Local {
    let body = match &d.body {
        Some(b) if b.len() <= limit => body::full(b.clone()),
        _ => body::empty(),
    };
    let mut response = Response::new(body);
    *response.status_mut() = d.status;
    if let Some(b) = &d.body {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(b.len()));
    }
    Local {
        response,
        flags: Default::default(),
        details: "direct_response",
    }
}
