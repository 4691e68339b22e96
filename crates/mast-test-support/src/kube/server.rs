//! The HTTP side of the emulator: routes each request (discovery, `/version`, resource
//! collections, objects and their `status` subresource) to the store, and writes the
//! answers as the API server does (JSON, failures as a `Status`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::Request as Logged;
use super::store::{ApiError, Part, Store};
use super::types::{self, ApiType};
use super::util::{FieldSelector, LabelSelector, flag, parse_query};
use super::watch::{WatchFilter, WatchOptions, error_body, stream};

/// A response body: a whole JSON document or a watch stream.
pub type Body = UnsyncBoxBody<Bytes, io::Error>;

/// What the handlers share with the emulator's hooks.
#[derive(Debug)]
pub struct Shared {
    /// The objects.
    pub store: Store,
    /// Bumped to cut every open watch.
    pub drops: watch::Sender<u64>,
    /// While true, new watches wait (up to 30 s) before starting.
    pub held: watch::Sender<bool>,
    /// Every request answered, in order.
    pub log: Mutex<Vec<Logged>>,
    /// How often watches that asked for bookmarks get one.
    pub bookmark_every: Duration,
}

type Query = BTreeMap<String, String>;

/// Answers one request.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let raw_query = req.uri().query().map(str::to_owned);
    let query = parse_query(raw_query.as_deref());
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(failure(&ApiError::new(
                400,
                "BadRequest",
                format!("reading the body: {e}"),
            )));
        }
    };
    let response = match route(&shared, &method, &path, &query, (&content_type, &body)).await {
        Ok(r) => r,
        Err(e) => failure(&e),
    };
    shared.log.lock().push(Logged {
        method: method.to_string(),
        path,
        query: raw_query.unwrap_or_default(),
        status: response.status().as_u16(),
    });
    Ok(response)
}

async fn route(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &Query,
    body: (&str, &Bytes),
) -> Result<Response<Body>, ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let served = || shared.store.types();
    let found = |v: Option<Value>| {
        v.map(|v| json_response(200, &v))
            .ok_or_else(|| not_found(path))
    };
    match segs.as_slice() {
        ["version"] => Ok(json_response(200, &version())),
        ["healthz" | "readyz" | "livez"] => Ok(text_response(200, "ok")),
        ["api"] => Ok(json_response(200, &types::core_versions())),
        ["apis"] => Ok(json_response(200, &types::group_list(&served()))),
        ["api", v] => found(types::resource_list(&served(), "", v)),
        ["apis", g] => found(types::group(&served(), g)),
        ["apis", g, v] => found(types::resource_list(&served(), g, v)),
        ["api", v, rest @ ..] => {
            resource(
                shared,
                method,
                Target::parse(shared, "", v, rest, path)?,
                query,
                body,
            )
            .await
        }
        ["apis", g, v, rest @ ..] => {
            resource(
                shared,
                method,
                Target::parse(shared, g, v, rest, path)?,
                query,
                body,
            )
            .await
        }
        _ => Err(not_found(path)),
    }
}

/// What a resource path names.
struct Target {
    t: ApiType,
    version: String,
    ns: Option<String>,
    name: Option<String>,
    status: bool,
}

impl Target {
    fn parse(
        shared: &Shared,
        group: &str,
        version: &str,
        rest: &[&str],
        path: &str,
    ) -> Result<Self, ApiError> {
        let store = &shared.store;
        let namespaced = rest.len() >= 3
            && rest[0] == "namespaces"
            && store.type_at(group, version, rest[2]).is_some();
        let (ns, rest) = if namespaced {
            (Some(rest[1]), &rest[2..])
        } else {
            (None, rest)
        };
        let (plural, name, sub) = match rest {
            [p] => (*p, None, None),
            [p, n] => (*p, Some(*n), None),
            [p, n, s] => (*p, Some(*n), Some(*s)),
            _ => return Err(not_found(path)),
        };
        let t = store
            .type_at(group, version, plural)
            .ok_or_else(|| not_found(path))?;
        let scope_ok = !matches!(
            (t.namespaced, ns, name),
            (false, Some(_), _) | (true, None, Some(_))
        );
        let sub_ok = match sub {
            None => true,
            Some("status") => t.status,
            Some(_) => false,
        };
        if !scope_ok || !sub_ok {
            return Err(not_found(path));
        }
        Ok(Self {
            t,
            version: version.to_owned(),
            ns: ns.map(str::to_owned),
            name: name.map(str::to_owned),
            status: sub.is_some(),
        })
    }

    fn ns(&self) -> &str {
        self.ns.as_deref().unwrap_or("")
    }

    fn part(&self) -> Part {
        if self.status {
            Part::Status
        } else {
            Part::Main
        }
    }
}

async fn resource(
    shared: &Shared,
    method: &Method,
    target: Target,
    query: &Query,
    (content_type, body): (&str, &Bytes),
) -> Result<Response<Body>, ApiError> {
    let store = &shared.store;
    let (t, v) = (&target.t, target.version.as_str());
    let selectors = (
        LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str)),
        FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str)),
    );
    let name = target.name.as_deref();
    match (method.as_str(), name) {
        ("GET", None) if flag(query, "watch") => watch(shared, &target, query, selectors).await,
        ("GET", None) => {
            let (items, rv) = store.list(t, target.ns.as_deref(), v, (&selectors.0, &selectors.1));
            Ok(json_response(200, &list(t, v, items, rv)))
        }
        ("GET", Some(n)) => Ok(json_response(200, &store.get(t, target.ns(), n, v)?)),
        ("POST", None) if t.namespaced && target.ns.is_none() => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "create a namespaced object under namespaces/<ns>/",
        )),
        ("POST", None) => {
            let dry = query.get("dryRun").is_some_and(|d| d == "All");
            Ok(json_response(
                201,
                &store.create(t, target.ns(), v, parse_body(body)?, dry)?,
            ))
        }
        ("PUT", Some(n)) => Ok(json_response(
            200,
            &store.replace(t, (target.ns(), n), v, parse_body(body)?, target.part())?,
        )),
        ("PATCH", Some(n)) => {
            let apply = patch_kind(content_type, query)?;
            let obj = store.patch(
                t,
                (target.ns(), n),
                v,
                &parse_body(body)?,
                apply.as_deref(),
                target.part(),
            )?;
            Ok(json_response(200, &obj))
        }
        ("DELETE", Some(n)) if !target.status => {
            Ok(json_response(200, &store.delete(t, target.ns(), n, v)?))
        }
        ("DELETE", None) => {
            let (items, rv) = store.list(t, target.ns.as_deref(), v, (&selectors.0, &selectors.1));
            for item in &items {
                let ns = item
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let n = item
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                // Gone already (deleted concurrently) is fine.
                let _ = store.delete(t, ns, n, v);
            }
            Ok(json_response(200, &list(t, v, items, rv)))
        }
        (m, _) => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{m} is not supported here"),
        )),
    }
}

/// For a PATCH: `None` for a merge patch, `Some(manager)` for server-side apply.
fn patch_kind(content_type: &str, query: &Query) -> Result<Option<String>, ApiError> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    match media {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => Ok(None),
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
            match query.get("fieldManager") {
                Some(m) if !m.is_empty() => Ok(Some(m.clone())),
                _ => Err(ApiError::new(
                    422,
                    "Invalid",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                )),
            }
        }
        other => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the emulator does not support patches of type {other:?} (use merge patch or apply)"
            ),
        )),
    }
}

async fn watch(
    shared: &Shared,
    target: &Target,
    query: &Query,
    (labels, fields): (LabelSelector, FieldSelector),
) -> Result<Response<Body>, ApiError> {
    // Subscribed before the hold: a drop at any time after the request arrived cuts it.
    let drops = shared.drops.subscribe();
    let mut held = shared.held.subscribe();
    let released = async move { held.wait_for(|h| !*h).await.is_ok() };
    let _ = tokio::time::timeout(Duration::from_secs(30), released).await;
    let from = match query.get("resourceVersion").map(String::as_str) {
        None | Some("" | "0") => None,
        Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
            ApiError::new(400, "BadRequest", format!("invalid resourceVersion {rv:?}"))
        })?),
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let start = match shared.store.watch(&target.t, target.ns.as_deref(), from) {
        Ok(s) => s,
        Err(e) => {
            return Ok(streaming(
                Full::new(error_body(&e))
                    .map_err(|n| match n {})
                    .boxed_unsync(),
            ));
        }
    };
    let filter = WatchFilter {
        t: target.t.clone(),
        version: target.version.clone(),
        namespace: target.ns.clone(),
        labels,
        fields,
    };
    let options = WatchOptions {
        bookmarks: flag(query, "allowWatchBookmarks"),
        bookmark_every: shared.bookmark_every,
        timeout,
        initial_events_end: flag(query, "sendInitialEvents"),
    };
    let body = stream(start, filter, options, drops);
    Ok(streaming(body.boxed_unsync()))
}

fn list(t: &ApiType, version: &str, items: Vec<Value>, rv: u64) -> Value {
    json!({
        "apiVersion": t.api_version(version),
        "kind": format!("{}List", t.kind),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    })
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            400,
            "BadRequest",
            format!("the emulator reads JSON bodies only (JSON is YAML): {e}"),
        )
    })
}

fn version() -> Value {
    json!({
        "major": "1", "minor": "35", "gitVersion": "v1.35.0-mast-emulator",
        "gitCommit": "", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25", "compiler": "gc", "platform": "linux/amd64",
    })
}

fn not_found(path: &str) -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        format!("the server could not find the requested resource ({path})"),
    )
}

fn failure(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.status())
}

fn json_response(code: u16, value: &Value) -> Response<Body> {
    let body = Full::new(Bytes::from(value.to_string()))
        .map_err(|n| match n {})
        .boxed_unsync();
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn text_response(code: u16, text: &'static str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|n| match n {})
            .boxed_unsync(),
    );
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

fn streaming(body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}
