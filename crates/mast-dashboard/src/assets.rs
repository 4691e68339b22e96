//! The embedded web page: `/` (index.html) and `/static/{file}` (the page's JavaScript modules,
//! its style sheet and the vendored Cytoscape.js), compiled into the binary from `ui/` so the
//! dashboard needs no files, no Node and no network at run time.
//!
//! Every answer carries an `ETag` (a hash of the content) and `Cache-Control: no-cache`: the
//! browser keeps its copy and revalidates it (a `304` when unchanged), so a new mastd never
//! serves a page mixed with stale modules.

use std::hash::{DefaultHasher, Hasher as _};
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::Dashboard;

/// One embedded file.
struct Asset {
    /// Its name under `/static/` (`index.html` is served at `/`).
    name: &'static str,
    /// Its `Content-Type`.
    content_type: &'static str,
    /// Its bytes.
    body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

macro_rules! asset {
    ($name:literal, $path:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/ui/", $path)),
        }
    };
}

/// The files, `index.html` first.
static ASSETS: &[Asset] = &[
    asset!("index.html", "index.html", HTML),
    asset!("boot.js", "boot.js", JS),
    asset!("app.js", "app.js", JS),
    asset!("api.js", "api.js", JS),
    asset!("graph.js", "graph.js", JS),
    asset!("graph-style.js", "graph-style.js", JS),
    asset!("lists.js", "lists.js", JS),
    asset!("workload.js", "workload.js", JS),
    asset!("config.js", "config.js", JS),
    asset!("traces.js", "traces.js", JS),
    asset!("style.css", "style.css", CSS),
    asset!("cytoscape.min.js", "vendor/cytoscape.min.js", JS),
    asset!("cytoscape.LICENSE", "vendor/cytoscape.LICENSE", TEXT),
];

/// The strong `ETag` of every asset, in [`ASSETS`] order (computed once).
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let mut h = DefaultHasher::new();
            h.write(a.body);
            let tag = format!("\"{:016x}-{:x}\"", h.finish(), a.body.len());
            HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"0\""))
        })
        .collect()
});

/// Only this origin's scripts, styles and connections (Cytoscape sets inline styles on its
/// canvases, hence `'unsafe-inline'` for styles only).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The page routes (`/`, `/static/{file}`).
pub fn routes() -> axum::Router<Dashboard> {
    axum::Router::new()
        .route("/", get(index))
        .route("/static/{file}", get(file))
}

async fn index(headers: HeaderMap) -> Response {
    respond(0, &headers)
}

async fn file(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.name == file) {
        Some(i) if i > 0 => respond(i, &headers),
        _ => (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    }
}

/// The asset at `index`, or `304 Not Modified` when the request's `If-None-Match` names its
/// current `ETag`.
fn respond(index: usize, request: &HeaderMap) -> Response {
    let (asset, etag) = (&ASSETS[index], &ETAGS[index]);
    let fresh = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || t.trim().as_bytes() == etag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, etag.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !fresh {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
    }
    if asset.name == "index.html" {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(r: &Response, name: header::HeaderName) -> &str {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[tokio::test]
    async fn serves_the_page_and_its_modules_with_types_and_cache_headers() {
        let page = index(HeaderMap::new()).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(header(&page, header::CONTENT_TYPE), HTML);
        assert_eq!(header(&page, header::CACHE_CONTROL), "no-cache");
        assert!(header(&page, header::CONTENT_SECURITY_POLICY).contains("default-src 'self'"));
        for (name, ty) in [("app.js", JS), ("style.css", CSS), ("cytoscape.min.js", JS)] {
            let r = file(Path(name.to_owned()), HeaderMap::new()).await;
            assert_eq!(r.status(), StatusCode::OK, "{name}");
            assert_eq!(header(&r, header::CONTENT_TYPE), ty, "{name}");
            assert!(header(&r, header::ETAG).starts_with('"'), "{name}");
        }
        let missing = file(Path("nope.js".to_owned()), HeaderMap::new()).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let html_as_static = file(Path("index.html".to_owned()), HeaderMap::new()).await;
        assert_eq!(html_as_static.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_matching_etag_gets_not_modified() {
        let first = file(Path("app.js".to_owned()), HeaderMap::new()).await;
        let etag = first.headers()[header::ETAG].clone();
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, etag.clone());
        let second = file(Path("app.js".to_owned()), again).await;
        assert_eq!(second.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(second.headers()[header::ETAG], etag);
        let mut stale = HeaderMap::new();
        stale.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"old\""));
        let third = file(Path("app.js".to_owned()), stale).await;
        assert_eq!(third.status(), StatusCode::OK);
    }

    #[test]
    fn every_module_the_page_imports_is_embedded() {
        let names: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        let ours = ASSETS.iter().filter(|a| !a.name.starts_with("cytoscape"));
        for a in ours.filter(|a| a.name.ends_with(".js") || a.name.ends_with(".html")) {
            let text = String::from_utf8_lossy(a.body);
            for part in text.split("/static/").skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
                    .collect();
                assert!(
                    names.contains(&name.as_str()),
                    "{} refers to {name}",
                    a.name
                );
            }
            for part in text.split("from './").skip(1) {
                let name = part.split('\'').next().unwrap_or_default();
                assert!(names.contains(&name), "{} imports {name}", a.name);
            }
        }
    }
}
