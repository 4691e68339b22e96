//! Running the JWT filter on one request: the rule that applies, Envoy's verifier tree
//! (any / all / allow-missing aggregation), the effects of an accepted token (payload to
//! metadata and header, claims to headers, token removal), and the local reply.

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Map, Value};

use super::extract::{self, Found};
use super::remote::RemoteJwks;
use super::token::{Jwt, Status, b64url_encode};
use super::{JWT_AUTHN_FILTER, JwtAuthn, Keys, Provider, Requirement};
use crate::cluster::ClusterManager;
use crate::hcm::flags::Flags;
use crate::hcm::local::{self, Local};
use crate::rbac::{Metadata, Subject};

/// Per-request state while the tree is evaluated.
struct Ctx<'a> {
    headers: &'a mut HeaderMap,
    path: &'a str,
    now: i64,
    extracted: Map<String, Value>,
}

impl JwtAuthn {
    /// Whether a provider fetches its keys.
    pub fn has_remote_keys(&self) -> bool {
        self.providers
            .iter()
            .any(|p| matches!(p.keys, Keys::Remote(_)))
    }

    /// Makes sure remote keys are fresh before a request carrying a token is verified
    /// (fetches through `clusters` when stale).
    pub async fn prefetch(&self, clusters: &ClusterManager, headers: &HeaderMap, path: &str) {
        let stale: Vec<&RemoteJwks> = self
            .providers
            .iter()
            .filter_map(|p| match &p.keys {
                Keys::Remote(r) if r.current().is_none() => Some(&**r),
                _ => None,
            })
            .collect();
        if stale.is_empty()
            || !self
                .all_locations
                .iter()
                .any(|l| extract::find(l, headers, path).is_some())
        {
            return;
        }
        for r in stale {
            r.refresh(clusters).await;
        }
    }

    /// Removes the headers this filter sets (a client must not forge them).
    pub fn sanitize(&self, headers: &mut HeaderMap) {
        for h in &self.sanitize {
            headers.remove(h);
        }
    }

    /// The requirement of the first rule matching the request (`None`: nothing to verify;
    /// CORS preflights are skipped with `bypass_cors_preflight`).
    pub fn requirement_for(&self, s: &Subject<'_>) -> Option<usize> {
        if self.bypass_cors_preflight
            && s.method == Method::OPTIONS.as_str()
            && s.headers.contains_key(header::ORIGIN)
            && s.headers
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        self.rules.iter().position(|(m, _)| m.matches(s))
    }

    /// Verifies the request against rule `rule`'s requirement at time `now` (Unix seconds);
    /// accepted payloads go to `metadata`. Counts the outcome.
    pub fn verify(
        &self,
        rule: usize,
        headers: &mut HeaderMap,
        path: &str,
        metadata: &mut Metadata,
        now: i64,
    ) -> Status {
        let Some((_, req)) = self.rules.get(rule) else {
            return Status::Ok;
        };
        let mut cx = Ctx {
            headers,
            path,
            now,
            extracted: Map::new(),
        };
        let status = self.eval(req, &mut cx);
        if !cx.extracted.is_empty() {
            let entry = metadata
                .entry(JWT_AUTHN_FILTER)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(o) = entry {
                o.extend(cx.extracted);
            }
        }
        self.count(status == Status::Ok);
        status
    }

    fn eval(&self, r: &Requirement, cx: &mut Ctx<'_>) -> Status {
        match r {
            Requirement::Provider(i, aud) => self.verify_provider(*i, aud.as_deref(), cx),
            Requirement::Any {
                children,
                allow_missing,
                allow_failed,
            } => {
                if children.is_empty() {
                    return self.verify_any_issuer(*allow_failed, cx);
                }
                let mut final_status = Status::Missing;
                for c in children {
                    let s = self.eval(c, cx);
                    if s == Status::Ok {
                        return s;
                    }
                    final_status = prefer(final_status, s);
                }
                if *allow_failed || (*allow_missing && final_status == Status::Missing) {
                    Status::Ok
                } else {
                    final_status
                }
            }
            Requirement::All(children) => children
                .iter()
                .map(|c| self.eval(c, cx))
                .find(|s| *s != Status::Ok)
                .unwrap_or(Status::Ok),
            Requirement::AllowMissing => self.verify_any_issuer(false, cx),
            Requirement::AllowFailed => self.verify_any_issuer(true, cx),
            Requirement::AllowAll => Status::Ok,
        }
    }

    fn verify_provider(&self, i: usize, aud: Option<&[String]>, cx: &mut Ctx<'_>) -> Status {
        let Some(p) = self.providers.get(i) else {
            return Status::Missing;
        };
        let found: Vec<Found> = p
            .locations
            .iter()
            .filter_map(|l| {
                extract::find(l, cx.headers, cx.path).map(|token| Found {
                    token,
                    location: l.clone(),
                })
            })
            .collect();
        let mut last = Status::Missing;
        for f in &found {
            let s = match Jwt::parse(&f.token) {
                Ok(jwt) if !p.issuer.is_empty() && jwt.iss != p.issuer => Status::UnknownIssuer,
                Ok(jwt) => check(p, &f.token, &jwt, aud.unwrap_or(&p.audiences), cx.now)
                    .inspect(|()| accept(p, f, &jwt, cx))
                    .err()
                    .unwrap_or(Status::Ok),
                Err(s) => s,
            };
            if s == Status::Ok {
                return s;
            }
            last = s;
        }
        last
    }

    /// `allow_missing` / `allow_missing_or_failed`: tokens from every location, each checked
    /// by the provider of its issuer.
    fn verify_any_issuer(&self, allow_failed: bool, cx: &mut Ctx<'_>) -> Status {
        let found: Vec<Found> = self
            .all_locations
            .iter()
            .filter_map(|l| {
                extract::find(l, cx.headers, cx.path).map(|token| Found {
                    token,
                    location: l.clone(),
                })
            })
            .collect();
        let mut last = Status::Missing;
        for f in &found {
            let s = match Jwt::parse(&f.token) {
                Ok(jwt) => match self.providers.iter().find(|p| p.issuer == jwt.iss) {
                    None => Status::UnknownIssuer,
                    Some(p) => check(p, &f.token, &jwt, &p.audiences, cx.now)
                        .inspect(|()| accept(p, f, &jwt, cx))
                        .err()
                        .unwrap_or(Status::Ok),
                },
                Err(s) => s,
            };
            last = s;
            if s == Status::Ok && !allow_failed {
                break;
            }
        }
        match last {
            _ if allow_failed => Status::Ok,
            Status::Missing => Status::Ok,
            s => s,
        }
    }

    /// The local reply for a rejected request: 401 (403 for a disallowed audience), the
    /// status text as body, `www-authenticate: Bearer realm="<uri>"` (+ `error="invalid_token"`).
    pub fn reply(&self, status: Status, uri: &str) -> Local {
        let code = if status == Status::AudienceNotAllowed {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        };
        let body = if self.strip_failure_response {
            ""
        } else {
            status.message()
        };
        let mut l = local::reply(code, body, Flags::NONE, status.details());
        if !self.strip_failure_response {
            let mut value = format!("Bearer realm=\"{uri}\"");
            if status != Status::Missing {
                value.push_str(", error=\"invalid_token\"");
            }
            if let Ok(v) = HeaderValue::from_str(&value) {
                l.response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        l
    }
}

/// Envoy's `requires_any` aggregation step: a real error wins (the last one), then
/// `UnknownIssuer`, then `Missing`.
fn prefer(so_far: Status, next: Status) -> Status {
    if !matches!(next, Status::Missing | Status::UnknownIssuer) || so_far == Status::Missing {
        next
    } else {
        so_far
    }
}

/// Time, audience and signature checks for a parsed token of provider `p`.
fn check(
    p: &Provider,
    token: &str,
    jwt: &Jwt<'_>,
    audiences: &[String],
    now: i64,
) -> Result<(), Status> {
    let t = jwt.check_time(now, p.skew, p.require_expiration);
    if t != Status::Ok {
        return Err(t);
    }
    if !jwt.audience_allowed(audiences) {
        return Err(Status::AudienceNotAllowed);
    }
    if p.seen(token) {
        return Ok(());
    }
    match p.keys() {
        None => Err(Status::JwksFetchFail),
        Some(keys) => match keys.verify(jwt) {
            Status::Ok => {
                p.remember(token);
                Ok(())
            }
            s => Err(s),
        },
    }
}

/// The effects of an accepted token.
fn accept(p: &Provider, f: &Found, jwt: &Jwt<'_>, cx: &mut Ctx<'_>) {
    tracing::debug!(provider = %p.name, iss = %jwt.iss, "JWT accepted");
    if !p.payload_in_metadata.is_empty() {
        let mut payload = jwt.payload.clone();
        for claim in &p.space_delimited {
            if let Some(Value::String(s)) = payload.get(claim) {
                let items = s
                    .split(' ')
                    .filter(|x| !x.is_empty())
                    .map(|x| Value::String(x.to_owned()));
                let list = Value::Array(items.collect());
                payload.insert(claim.clone(), list);
            }
        }
        cx.extracted
            .insert(p.payload_in_metadata.clone(), Value::Object(payload));
    }
    if let Some(h) = &p.forward_payload_header {
        let text = if p.pad_forward_payload_header {
            b64url_encode(&jwt.payload_raw, true)
        } else {
            jwt.payload_b64.to_owned()
        };
        if let Ok(v) = HeaderValue::from_str(&text) {
            cx.headers.insert(h.clone(), v);
        }
    }
    for (h, path) in &p.claim_to_headers {
        let mut keys = path.iter();
        let mut v = keys.next().and_then(|k| jwt.payload.get(k.as_str()));
        for k in keys {
            v = v.and_then(|x| x.get(k.as_str()));
        }
        if let Some(text) = v.and_then(claim_text)
            && let Ok(v) = HeaderValue::from_str(&text)
        {
            cx.headers.insert(h.clone(), v);
        }
    }
    if !p.forward {
        extract::remove(&f.location, cx.headers);
    }
}

/// A claim as a header value: strings, numbers, booleans, and lists of those joined by `,`.
fn claim_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => {
            let parts: Option<Vec<String>> = items
                .iter()
                .map(|i| match i {
                    Value::Array(_) | Value::Object(_) => None,
                    other => claim_text(other),
                })
                .collect();
            parts.map(|p| p.join(","))
        }
        _ => None,
    }
}
