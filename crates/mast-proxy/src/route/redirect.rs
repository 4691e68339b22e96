//! Routes answered without an upstream: redirects (`RedirectAction`, Envoy's `newUri` rules
//! for scheme, host, port, path and query; the path from `path_redirect`, or from
//! `prefix_rewrite`, which swaps the part of the path the route matched as a forwarding
//! route's `prefix_rewrite` does) and direct responses (`DirectResponseAction`).

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::DataSource;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::route::v3::redirect_action::{
    PathRewriteSpecifier, SchemeRewriteSpecifier,
};
use envoy_types::pb::envoy::config::route::v3::{DirectResponseAction, RedirectAction};
use http::{HeaderValue, StatusCode};

use super::RequestHead;
use super::matcher::{PathMatch, path_only};
use super::proto::{Ctx, join};
use super::rewrite::PathRewrite;
use crate::error::ConfigError;

/// A redirect route.
#[derive(Clone, Debug)]
pub struct Redirect {
    status: StatusCode,
    scheme: Option<Box<str>>,
    host: Option<Box<str>>,
    /// `:<port>`, or empty.
    port: Box<str>,
    path: Option<Box<str>>,
    /// `prefix_rewrite` with the route's path match it applies to.
    prefix: Option<(PathRewrite, PathMatch)>,
    strip_query: bool,
    /// The request's authority as received, port included (the SSL redirect of a virtual
    /// host with `require_tls`).
    verbatim_host: bool,
}

impl Redirect {
    /// Status and Location for a request (scheme/host/port/path redirect; path keeps the query
    /// unless strip_query; Envoy's rules for ports: the request's port is dropped when a port
    /// is configured, or when the scheme changes and the port is the request scheme's default).
    pub fn location(&self, req: &RequestHead<'_>) -> (StatusCode, HeaderValue) {
        let scheme = self.scheme.as_deref().unwrap_or(req.scheme);
        let host = match &self.host {
            Some(h) => h,
            None if self.verbatim_host => req.authority,
            None => self.request_host(req, scheme),
        };
        let mut path = match &self.path {
            // A configured path with a query keeps it, whatever strip_query says.
            Some(p) if p.contains('?') => p.to_string(),
            Some(p) => {
                let query = req.path.find('?').map_or("", |i| &req.path[i..]);
                format!("{p}{}", if self.strip_query { "" } else { query })
            }
            None => {
                let rewritten = self
                    .prefix
                    .as_ref()
                    .and_then(|(rw, matcher)| rw.apply(matcher, req.path));
                let full = rewritten.unwrap_or_else(|| req.path.to_owned());
                if self.strip_query {
                    path_only(&full).to_owned()
                } else {
                    full
                }
            }
        };
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        let uri = format!("{scheme}://{host}{}{path}", self.port);
        // The parts come from a parsed request and a validated config; an invalid byte can
        // only come from a broken caller, and then the redirect points at the root.
        let value = HeaderValue::from_str(&uri).unwrap_or(HeaderValue::from_static("/"));
        (self.status, value)
    }

    /// The request's host, without its port when Envoy drops it.
    fn request_host<'r>(&self, req: &RequestHead<'r>, new_scheme: &str) -> &'r str {
        let host = req.authority;
        let port_start = if host.starts_with('[') {
            host.rfind("]:").map(|i| i + 1)
        } else {
            host.rfind(':')
        };
        let Some(i) = port_start else {
            return host;
        };
        let port = &host[i..];
        let proto = req
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(req.scheme);
        let remove = !self.port.is_empty()
            || (new_scheme != proto
                && ((proto == "https" && port == ":443") || (proto == "http" && port == ":80")));
        if remove { &host[..i] } else { host }
    }

    /// Converts a `RedirectAction` at `path` of a route whose path condition is `matcher`.
    pub(crate) fn from_proto(
        ctx: Ctx<'_>,
        path: &str,
        r: &RedirectAction,
        matcher: &PathMatch,
    ) -> Result<Self, ConfigError> {
        let status = match r.response_code {
            0 => StatusCode::MOVED_PERMANENTLY,
            1 => StatusCode::FOUND,
            2 => StatusCode::SEE_OTHER,
            3 => StatusCode::TEMPORARY_REDIRECT,
            4 => StatusCode::PERMANENT_REDIRECT,
            other => {
                return Err(ctx.err(
                    join(path, "response_code"),
                    format!("unknown value {other}"),
                ));
            }
        };
        let scheme = match &r.scheme_rewrite_specifier {
            Some(SchemeRewriteSpecifier::HttpsRedirect(true)) => Some("https".into()),
            Some(SchemeRewriteSpecifier::HttpsRedirect(false)) | None => None,
            Some(SchemeRewriteSpecifier::SchemeRedirect(s)) if s.is_empty() => None,
            Some(SchemeRewriteSpecifier::SchemeRedirect(s)) => Some(s.to_ascii_lowercase().into()),
        };
        let (redirect_path, prefix) = match &r.path_rewrite_specifier {
            Some(PathRewriteSpecifier::PathRedirect(p)) if !p.is_empty() => {
                (Some(p.as_str().into()), None)
            }
            Some(PathRewriteSpecifier::PathRedirect(_)) | None => (None, None),
            Some(PathRewriteSpecifier::PrefixRewrite(p)) => {
                if matches!(matcher, PathMatch::Connect) {
                    return Err(ctx.err(
                        join(path, "prefix_rewrite"),
                        "not allowed on a CONNECT route",
                    ));
                }
                let rw = PathRewrite::from_proto(ctx, path, p, None)?;
                (None, rw.map(|rw| (rw, matcher.clone())))
            }
            Some(PathRewriteSpecifier::RegexRewrite(_)) => {
                return Err(ctx.err(
                    join(path, "regex_rewrite"),
                    "not supported by mast-proxy (path_redirect or prefix_rewrite only)",
                ));
            }
            Some(PathRewriteSpecifier::PathRewrite(_)) => {
                return Err(ctx.err(
                    join(path, "path_rewrite"),
                    "not supported by mast-proxy (path_redirect or prefix_rewrite only)",
                ));
            }
        };
        let port = match r.port_redirect {
            0 => String::new(),
            p if p <= 65535 => format!(":{p}"),
            p => return Err(ctx.err(join(path, "port_redirect"), format!("{p} is not a port"))),
        };
        let check = |field: &str, s: &str| {
            HeaderValue::from_str(s)
                .map(|_| ())
                .map_err(|e| ctx.err(join(path, field), format!("invalid: {e}")))
        };
        check("host_redirect", &r.host_redirect)?;
        check("path_redirect", redirect_path.as_deref().unwrap_or(""))?;
        if let Some(PathRewriteSpecifier::PrefixRewrite(p)) = &r.path_rewrite_specifier {
            check("prefix_rewrite", p)?;
        }
        check("scheme_redirect", scheme.as_deref().unwrap_or(""))?;
        Ok(Redirect {
            status,
            scheme,
            host: (!r.host_redirect.is_empty()).then(|| r.host_redirect.as_str().into()),
            port: port.into(),
            path: redirect_path,
            prefix,
            strip_query: r.strip_query,
            verbatim_host: false,
        })
    }

    /// Envoy's SSL redirect (`require_tls`): 301 to `https://<host as received><path>`.
    pub(crate) fn ssl() -> Self {
        Redirect {
            status: StatusCode::MOVED_PERMANENTLY,
            scheme: Some("https".into()),
            host: None,
            port: "".into(),
            path: None,
            prefix: None,
            strip_query: false,
            verbatim_host: true,
        }
    }
}

/// A route answered with a fixed status and body.
#[derive(Clone, Debug)]
pub struct DirectResponse {
    /// The status to answer with.
    pub status: StatusCode,
    /// The body, if any (an empty body is `None`).
    pub body: Option<Bytes>,
}

impl DirectResponse {
    /// Converts a `DirectResponseAction` at `path`; bodies above `max_body` are refused.
    pub(crate) fn from_proto(
        ctx: Ctx<'_>,
        path: &str,
        d: &DirectResponseAction,
        max_body: usize,
    ) -> Result<Self, ConfigError> {
        ctx.deny(path, &[("body_format", d.body_format.is_some())])?;
        let status = u16::try_from(d.status)
            .ok()
            .filter(|s| (100..600).contains(s))
            .and_then(|s| StatusCode::from_u16(s).ok())
            .ok_or_else(|| {
                ctx.err(
                    join(path, "status"),
                    format!("{} is not in [100, 600)", d.status),
                )
            })?;
        let body = match &d.body {
            Some(b) => body(ctx, &join(path, "body"), b)?,
            None => None,
        };
        if let Some(b) = &body
            && b.len() > max_body
        {
            return Err(ctx.err(
                join(path, "body"),
                format!(
                    "{} bytes exceed max_direct_response_body_size_bytes ({max_body})",
                    b.len()
                ),
            ));
        }
        Ok(DirectResponse { status, body })
    }
}

fn body(ctx: Ctx<'_>, path: &str, b: &DataSource) -> Result<Option<Bytes>, ConfigError> {
    ctx.deny(
        path,
        &[("watched_directory", b.watched_directory.is_some())],
    )?;
    let bytes = match &b.specifier {
        Some(Specifier::InlineBytes(v)) => Bytes::copy_from_slice(v),
        Some(Specifier::InlineString(s)) => Bytes::copy_from_slice(s.as_bytes()),
        Some(Specifier::Filename(_)) => {
            return Err(ctx.err(join(path, "filename"), "not supported by mast-proxy"));
        }
        Some(Specifier::EnvironmentVariable(_)) => {
            return Err(ctx.err(
                join(path, "environment_variable"),
                "not supported by mast-proxy",
            ));
        }
        None => Bytes::new(),
    };
    Ok((!bytes.is_empty()).then_some(bytes))
}
