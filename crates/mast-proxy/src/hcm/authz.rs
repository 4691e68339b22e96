//! The authorization HTTP filters of an HCM, run in their list order before the router:
//! `envoy.filters.http.jwt_authn` (verify, write the payload to dynamic metadata, 401/403)
//! and `envoy.filters.http.rbac` (403 `RBAC: access denied`). The dynamic metadata they share
//! lives for the request only.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};

use super::flags::Flags;
use super::jwt::{JwtAuthn, Status};
use super::local::{self, Local};
use super::stream::ConnInfo;
use crate::cluster::ClusterManager;
use crate::rbac::{Check, HttpRbac, Metadata, Subject};

/// `envoy.filters.http.jwt_authn`.
pub const JWT_AUTHN: &str = super::jwt::JWT_AUTHN_FILTER;

/// `envoy.filters.http.rbac`.
pub const RBAC: &str = "envoy.filters.http.rbac";

/// One authorization filter of the chain.
#[derive(Debug, Clone)]
pub enum AuthzFilter {
    /// `envoy.filters.http.jwt_authn`.
    Jwt(Arc<JwtAuthn>),
    /// `envoy.filters.http.rbac`.
    Rbac(Arc<HttpRbac>),
}

/// The request facts the filters read besides the headers.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// `:method`.
    pub method: &'a str,
    /// `:authority`.
    pub authority: &'a str,
    /// `:path` (normalised) with the query.
    pub path: &'a str,
    /// `:scheme`.
    pub scheme: &'a str,
    /// The downstream remote address RBAC's `remote_ip` sees.
    pub remote_ip: IpAddr,
}

fn subject<'a>(
    f: &RequestFacts<'a>,
    headers: &'a HeaderMap,
    conn: &'a ConnInfo,
    metadata: &'a Metadata,
) -> Subject<'a> {
    Subject {
        method: f.method,
        authority: f.authority,
        path: f.path,
        scheme: f.scheme,
        headers,
        local: conn.local,
        peer: conn.peer,
        remote_ip: f.remote_ip,
        tls: conn.tls.as_deref(),
        metadata,
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Runs `filters` in order; `Err` is the local reply that ends the request. `clusters`
/// serves remote JWKS fetches.
pub async fn run(
    filters: &[AuthzFilter],
    facts: &RequestFacts<'_>,
    headers: &mut HeaderMap,
    conn: &ConnInfo,
    clusters: &ClusterManager,
) -> Result<Metadata, Box<Local>> {
    let mut metadata = Metadata::new();
    for f in filters {
        match f {
            AuthzFilter::Jwt(j) => {
                j.sanitize(headers);
                let rule = j.requirement_for(&subject(facts, headers, conn, &metadata));
                let Some(rule) = rule else {
                    continue;
                };
                if j.has_remote_keys() {
                    j.prefetch(clusters, headers, facts.path).await;
                }
                let status = j.verify(rule, headers, facts.path, &mut metadata, now());
                if status != Status::Ok {
                    let uri = format!("{}://{}{}", facts.scheme, facts.authority, facts.path);
                    return Err(Box::new(j.reply(status, &uri)));
                }
            }
            AuthzFilter::Rbac(r) => {
                let check = r.check(&subject(facts, headers, conn, &metadata));
                let (allowed, details) = (check.enforced.allowed, check.enforced.details);
                let writes = rbac_metadata(r, &check);
                for (ns, k, v) in writes {
                    set(&mut metadata, ns, k, v);
                }
                if !allowed {
                    tracing::debug!(peer = %conn.peer, details, "request denied by RBAC");
                    return Err(Box::new(denied(details)));
                }
            }
        }
    }
    Ok(metadata)
}

/// Envoy's RBAC denial: 403 `RBAC: access denied`.
pub fn denied(details: &'static str) -> Local {
    local::reply(
        StatusCode::FORBIDDEN,
        "RBAC: access denied",
        Flags::NONE,
        details,
    )
}

/// The dynamic metadata an RBAC filter writes: shadow results under its own name, the LOG
/// action's `access_log_hint` under `envoy.common`.
fn rbac_metadata(r: &HttpRbac, c: &Check<'_>) -> Vec<(&'static str, String, Value)> {
    let mut out = Vec::new();
    if let Some(s) = c.shadow {
        let p = r.shadow_prefix();
        if let Some(id) = s.policy {
            out.push((
                RBAC,
                format!("{p}shadow_effective_policy_id"),
                Value::from(id),
            ));
        }
        let result = if s.allowed { "allowed" } else { "denied" };
        out.push((
            RBAC,
            format!("{p}shadow_engine_result"),
            Value::from(result),
        ));
    }
    if c.log_hint {
        out.push((
            "envoy.common",
            "access_log_hint".to_owned(),
            Value::Bool(true),
        ));
    }
    out
}

fn set(md: &mut Metadata, ns: &str, key: String, v: Value) {
    let entry = md.entry(ns).or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(o) = entry {
        o.insert(key, v);
    }
}

/// The downstream remote address (Envoy's XFF original-IP detection): without
/// `use_remote_address`, the x-forwarded-for address `xff_num_trusted_hops` from the right;
/// with it, the peer unless hops are trusted (then the address `hops - 1` from the right of
/// the received header). Falls back to the peer.
pub fn remote_ip(headers: &HeaderMap, peer: IpAddr, use_remote: bool, trusted_hops: u32) -> IpAddr {
    let skip = match (use_remote, trusted_hops) {
        (true, 0) => return peer,
        (true, n) => n - 1,
        (false, n) => n,
    };
    let mut values: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    values.reverse();
    values
        .iter()
        .flat_map(|v| v.rsplit(','))
        .nth(skip as usize)
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_ip_follows_xff_detection() {
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(remote_ip(&h, peer, false, 0), peer);
        h.insert("x-forwarded-for", "1.1.1.1, 2.2.2.2".parse().unwrap());
        assert_eq!(remote_ip(&h, peer, false, 0).to_string(), "2.2.2.2");
        assert_eq!(remote_ip(&h, peer, false, 1).to_string(), "1.1.1.1");
        assert_eq!(remote_ip(&h, peer, false, 2), peer);
        assert_eq!(remote_ip(&h, peer, true, 0), peer);
        assert_eq!(remote_ip(&h, peer, true, 1).to_string(), "2.2.2.2");
        h.insert("x-forwarded-for", "junk".parse().unwrap());
        assert_eq!(remote_ip(&h, peer, false, 0), peer);
    }
}
