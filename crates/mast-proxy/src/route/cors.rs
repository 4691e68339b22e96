//! CORS per route (`typed_per_filter_config["envoy.filters.http.cors"]`, a `CorsPolicy`) with
//! the behaviour of Envoy's CORS filter: preflight answers and the allow-* headers on
//! responses to requests whose `Origin` is allowed.

use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::matcher::StrMatch;
use super::proto::{Ctx, Fraction, join};
use crate::error::ConfigError;

const ALLOW_PRIVATE_NETWORK: &str = "access-control-allow-private-network";
const REQUEST_PRIVATE_NETWORK: &str = "access-control-request-private-network";

/// What the CORS filter decides for a request.
#[derive(Debug)]
pub enum Preflight {
    /// Not a preflight (or CORS is disabled): route the request; call
    /// [`Cors::on_response`] on its response.
    NotPreflight,
    /// A preflight answered here: send this status (always 200) with these headers and no
    /// body, without routing upstream.
    Respond(StatusCode, HeaderMap),
    /// A preflight whose origin is not allowed, forwarded upstream
    /// (`forward_not_matching_preflights`).
    Forward,
}

/// A route's CORS policy.
#[derive(Clone, Debug)]
pub struct Cors {
    enabled: bool,
    origins: Vec<StrMatch>,
    allow_methods: Option<HeaderValue>,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
    allow_credentials: bool,
    allow_private_network: bool,
    forward_not_matching: bool,
}

impl Cors {
    /// Envoy's CORS filter on the request: an OPTIONS with Origin and
    /// Access-Control-Request-Method is a preflight; answered 200 with the allow-* headers when
    /// the origin matches, else forwarded or answered per forward_not_matching_preflights.
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Preflight {
        let Some(origin) = self.origin(headers) else {
            return Preflight::NotPreflight;
        };
        let request_method = headers
            .get(ACCESS_CONTROL_REQUEST_METHOD)
            .filter(|v| !v.is_empty());
        let Some(request_method) = request_method.filter(|_| method == Method::OPTIONS) else {
            return Preflight::NotPreflight;
        };
        let allowed = self.allowed(origin);
        if !allowed && self.forward_not_matching {
            return Preflight::Forward;
        }
        let mut out = HeaderMap::new();
        if allowed {
            out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        }
        if self.allow_credentials {
            out.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(m) = &self.allow_methods {
            let v = if m == "*" {
                request_method.clone()
            } else {
                m.clone()
            };
            out.insert(ACCESS_CONTROL_ALLOW_METHODS, v);
        }
        if let Some(h) = &self.allow_headers {
            let v = if h == "*" {
                headers
                    .get(ACCESS_CONTROL_REQUEST_HEADERS)
                    .cloned()
                    .unwrap_or(HeaderValue::from_static(""))
            } else {
                h.clone()
            };
            out.insert(ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        if let Some(age) = &self.max_age {
            out.insert(ACCESS_CONTROL_MAX_AGE, age.clone());
        }
        if self.allow_private_network
            && headers
                .get(REQUEST_PRIVATE_NETWORK)
                .is_some_and(|v| v == "true")
        {
            out.insert(ALLOW_PRIVATE_NETWORK, HeaderValue::from_static("true"));
        }
        Preflight::Respond(StatusCode::OK, out)
    }

    /// On a normal response: access-control-allow-origin / -credentials / -expose-headers when the
    /// request's Origin matches.
    pub fn on_response(&self, request_headers: &HeaderMap, response: &mut HeaderMap) {
        let Some(origin) = self.origin(request_headers).filter(|o| self.allowed(o)) else {
            return;
        };
        response.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        if self.allow_credentials {
            response.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(e) = &self.expose_headers {
            response.insert(ACCESS_CONTROL_EXPOSE_HEADERS, e.clone());
        }
    }

    /// The request's non-empty Origin when the policy is enabled.
    fn origin<'h>(&self, headers: &'h HeaderMap) -> Option<&'h HeaderValue> {
        headers
            .get(ORIGIN)
            .filter(|o| self.enabled && !o.is_empty())
    }

    /// Envoy: an origin matcher that matches `*` allows every origin.
    fn allowed(&self, origin: &HeaderValue) -> bool {
        let origin = origin.to_str().unwrap_or_default();
        self.origins
            .iter()
            .any(|m| m.matches("*") || m.matches(origin))
    }

    /// Converts a `CorsPolicy` at `path`.
    pub(crate) fn from_proto(
        ctx: Ctx<'_>,
        path: &str,
        p: &CorsPolicy,
    ) -> Result<Self, ConfigError> {
        let origins = p
            .allow_origin_string_match
            .iter()
            .enumerate()
            .map(|(i, m)| {
                StrMatch::from_proto(ctx, &format!("{path}.allow_origin_string_match[{i}]"), m)
            })
            .collect::<Result<_, _>>()?;
        let value = |field: &str, s: &str| -> Result<Option<HeaderValue>, ConfigError> {
            if s.is_empty() {
                return Ok(None);
            }
            HeaderValue::from_str(s)
                .map(Some)
                .map_err(|e| ctx.err(join(path, field), format!("invalid header value: {e}")))
        };
        let enabled = runtime_switch(
            ctx,
            &join(path, "filter_enabled"),
            p.filter_enabled.as_ref(),
            true,
        )?;
        if runtime_switch(
            ctx,
            &join(path, "shadow_enabled"),
            p.shadow_enabled.as_ref(),
            false,
        )? {
            return Err(ctx.err(join(path, "shadow_enabled"), "not supported by mast-proxy"));
        }
        Ok(Cors {
            enabled,
            origins,
            allow_methods: value("allow_methods", &p.allow_methods)?,
            allow_headers: value("allow_headers", &p.allow_headers)?,
            expose_headers: value("expose_headers", &p.expose_headers)?,
            max_age: value("max_age", &p.max_age)?,
            allow_credentials: p.allow_credentials.is_some_and(|b| b.value),
            allow_private_network: p.allow_private_network_access.is_some_and(|b| b.value),
            forward_not_matching: p.forward_not_matching_preflights.is_none_or(|b| b.value),
        })
    }
}

/// A runtime fraction that must be 0% or 100% (`default` when unset): a per-request draw
/// would need the preflight and response decisions tied together.
fn runtime_switch(
    ctx: Ctx<'_>,
    path: &str,
    p: Option<&RuntimeFractionalPercent>,
    default: bool,
) -> Result<bool, ConfigError> {
    let Some(p) = p else {
        return Ok(default);
    };
    let f = Fraction::from_proto(
        ctx,
        &join(path, "default_value"),
        &p.default_value.unwrap_or_default(),
    )?;
    match (f.is_zero(), f.is_full()) {
        (true, _) => Ok(false),
        (_, true) => Ok(true),
        _ => Err(ctx.err(join(path, "default_value"), "only 0% or 100% are supported")),
    }
}
