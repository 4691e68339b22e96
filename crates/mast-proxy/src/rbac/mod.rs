//! Envoy's RBAC filters (`envoy.filters.http.rbac`, `envoy.filters.network.rbac`): the policy
//! engine (principals and permissions, ALLOW/DENY/LOG actions, shadow rules) and its
//! conversion from the protos. Owned by the authorization work (issue 6).
//!
//! Interface used by the listener and the HTTP connection manager:
//! - [`NetworkRbac::from_any`] converts a network filter's typed config;
//!   [`NetworkRbac::allows_connection`] decides a new connection (denied → closed).
//! - [`HttpRbac::from_any`] converts the HTTP filter's typed config; the HCM runs
//!   [`HttpRbac::check`] on each request (see `hcm::authz`).
//!
//! Everything is compiled at conversion (regexes, header names, CIDRs); evaluation walks the
//! trees and allocates only to join multi-valued headers.

pub mod matchers;
pub mod policy;
pub mod template;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use envoy_types::pb::envoy::config::rbac::v3::Rbac as RbacRules;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbacProto;
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbacProto;
use envoy_types::pb::google::protobuf::Any;
use http::HeaderMap;
use prost::Message;

use crate::hcm::stream::ConnInfo;
use crate::tls::PeerTls;
use policy::CompiledPolicy;

/// `envoy.filters.network.rbac`'s type URL.
pub const NETWORK_RBAC_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC";

/// `envoy.filters.http.rbac`'s type URL.
pub const HTTP_RBAC_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";

/// A conversion failure: `(field, reason)`, the field relative to the typed config.
pub type Failure = (String, String);

pub(crate) fn fail(field: impl Into<String>, reason: impl Into<String>) -> Failure {
    (field.into(), reason.into())
}

pub(crate) fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// A stream's dynamic metadata: filter name → that filter's `Struct` (as a JSON object).
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// What RBAC looks at: the request (empty for a connection) and the connection.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// `:method` (empty for a connection).
    pub method: &'a str,
    /// `:authority`.
    pub authority: &'a str,
    /// `:path` with its query (after normalisation).
    pub path: &'a str,
    /// `:scheme`.
    pub scheme: &'a str,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The local (destination) address.
    pub local: SocketAddr,
    /// The connection's peer (`direct_remote_ip`).
    pub peer: SocketAddr,
    /// The downstream remote address (`remote_ip`): x-forwarded-for's last address when
    /// the HCM trusts it, else the peer.
    pub remote_ip: IpAddr,
    /// Downstream TLS facts, `None` for plaintext.
    pub tls: Option<&'a PeerTls>,
    /// Dynamic metadata (JWT payloads).
    pub metadata: &'a Metadata,
}

/// `RBAC.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Allow when a policy matches, deny otherwise.
    Allow,
    /// Deny when a policy matches, allow otherwise.
    Deny,
    /// Always allow; a match is only logged.
    Log,
}

/// One engine: an action and its policies, in Envoy's order (sorted by name).
#[derive(Debug)]
pub struct Engine {
    action: Action,
    policies: Vec<(Box<str>, CompiledPolicy, &'static str)>,
}

/// What an engine decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'e> {
    /// The request may proceed.
    pub allowed: bool,
    /// The first matching policy (the "effective policy id").
    pub policy: Option<&'e str>,
    /// `%RESPONSE_CODE_DETAILS%` when denied.
    pub details: &'static str,
}

const DENIED_NONE: &str = "rbac_access_denied_matched_policy[none]";

impl Engine {
    /// Converts `config.rbac.v3.RBAC` found at `path`.
    pub fn from_proto(path: &str, r: &RbacRules) -> Result<Self, Failure> {
        let action = match r.action {
            0 => Action::Allow,
            1 => Action::Deny,
            2 => Action::Log,
            a => return Err(fail(join(path, "action"), format!("unknown action {a}"))),
        };
        if r.audit_logging_options.is_some() {
            return Err(fail(
                join(path, "audit_logging_options"),
                "not supported by mast-proxy",
            ));
        }
        let mut names: Vec<&String> = r.policies.keys().collect();
        names.sort();
        let mut policies = Vec::with_capacity(names.len());
        for name in names {
            let p = &r.policies[name];
            let compiled = CompiledPolicy::from_proto(&format!("{path}.policies[{name:?}]"), p)?;
            let details = if action == Action::Deny {
                intern(format!("rbac_access_denied_matched_policy[{name}]"))
            } else {
                DENIED_NONE
            };
            policies.push((name.as_str().into(), compiled, details));
        }
        Ok(Engine { action, policies })
    }

    /// The engine's action.
    pub fn action(&self) -> Action {
        self.action
    }

    /// Evaluates the request.
    pub fn evaluate(&self, s: &Subject<'_>) -> Decision<'_> {
        let matched = self.policies.iter().find(|(_, p, _)| p.matches(s));
        let policy = matched.map(|(n, _, _)| &**n);
        match (self.action, matched) {
            (Action::Allow, Some(_)) | (Action::Deny, None) | (Action::Log, _) => Decision {
                allowed: true,
                policy,
                details: "",
            },
            (Action::Allow, None) => Decision {
                allowed: false,
                policy,
                details: DENIED_NONE,
            },
            (Action::Deny, Some((_, _, details))) => Decision {
                allowed: false,
                policy,
                details,
            },
        }
    }
}

/// Interns a details string (`Local::details` is `&'static str`): the same policy names come
/// back on every config push, so the set stays bounded by the distinct names ever seen
/// (capped; past the cap the generic "denied" details are used).
fn intern(s: String) -> &'static str {
    static SET: parking_lot::Mutex<Option<HashSet<&'static str>>> = parking_lot::Mutex::new(None);
    const CAP: usize = 16_384;
    let mut guard = SET.lock();
    let set = guard.get_or_insert_with(HashSet::new);
    if let Some(found) = set.get(s.as_str()) {
        return found;
    }
    if set.len() >= CAP {
        return "rbac_access_denied_matched_policy[...]";
    }
    let leaked: &'static str = Box::leak(s.into_boxed_str());
    set.insert(leaked);
    leaked
}

/// Envoy-named RBAC counters (`<prefix>rbac.allowed` and friends).
#[derive(Debug, Default)]
pub struct RbacStats {
    /// `rbac.allowed`.
    pub allowed: AtomicU64,
    /// `rbac.denied`.
    pub denied: AtomicU64,
    /// `rbac.shadow_allowed`.
    pub shadow_allowed: AtomicU64,
    /// `rbac.shadow_denied`.
    pub shadow_denied: AtomicU64,
}

impl RbacStats {
    fn count(&self, allowed: bool, shadow: bool) {
        let c = match (allowed, shadow) {
            (true, false) => &self.allowed,
            (false, false) => &self.denied,
            (true, true) => &self.shadow_allowed,
            (false, true) => &self.shadow_denied,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// The outcome of one filter on one request or connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check<'e> {
    /// The enforced decision (`rules`); allowed when there are none.
    pub enforced: Decision<'e>,
    /// The shadow decision, when `shadow_rules` are set: evaluated and counted only.
    pub shadow: Option<Decision<'e>>,
    /// A LOG policy matched (Envoy's `access_log_hint`).
    pub log_hint: bool,
}

/// Both engines of a filter and its counters.
#[derive(Debug)]
struct Engines {
    rules: Option<Engine>,
    shadow: Option<Engine>,
    stats: RbacStats,
    stat_prefix: String,
    shadow_prefix: String,
}

impl Engines {
    fn new(
        rules: Option<&RbacRules>,
        shadow: Option<&RbacRules>,
        stat_prefix: String,
        shadow_prefix: String,
    ) -> Result<Self, Failure> {
        Ok(Engines {
            rules: rules.map(|r| Engine::from_proto("rules", r)).transpose()?,
            shadow: shadow
                .map(|r| Engine::from_proto("shadow_rules", r))
                .transpose()?,
            stats: RbacStats::default(),
            stat_prefix,
            shadow_prefix,
        })
    }

    fn check(&self, s: &Subject<'_>) -> Check<'_> {
        let allow_all = Decision {
            allowed: true,
            policy: None,
            details: "",
        };
        let shadow = self.shadow.as_ref().map(|e| {
            let d = e.evaluate(s);
            self.stats.count(d.allowed, true);
            d
        });
        let (enforced, log_hint) = match &self.rules {
            Some(e) => {
                let d = e.evaluate(s);
                self.stats.count(d.allowed, false);
                (d, e.action == Action::Log && d.policy.is_some())
            }
            None => (allow_all, false),
        };
        Check {
            enforced,
            shadow,
            log_hint,
        }
    }
}

fn decode<M: Message + Default>(any: &Any, type_url: &str) -> Result<M, Failure> {
    if any.type_url != type_url {
        return Err(fail(
            "type_url",
            format!("expected {type_url}, got {}", any.type_url),
        ));
    }
    M::decode(any.value.as_slice()).map_err(|e| fail("value", format!("cannot decode: {e}")))
}

/// A converted `envoy.filters.http.rbac`.
#[derive(Debug)]
pub struct HttpRbac {
    engines: Engines,
}

impl HttpRbac {
    /// Converts the filter's typed config; the error is `(field, reason)` relative to it.
    pub fn from_any(any: &Any) -> Result<Self, Failure> {
        Self::from_proto(&decode::<HttpRbacProto>(any, HTTP_RBAC_TYPE)?)
    }

    /// Converts the decoded typed config.
    pub fn from_proto(p: &HttpRbacProto) -> Result<Self, Failure> {
        if p.matcher.is_some() || p.shadow_matcher.is_some() {
            let f = if p.matcher.is_some() {
                "matcher"
            } else {
                "shadow_matcher"
            };
            return Err(fail(f, "the matcher API is not supported by mast-proxy"));
        }
        Ok(HttpRbac {
            engines: Engines::new(
                p.rules.as_ref(),
                p.shadow_rules.as_ref(),
                p.rules_stat_prefix.clone(),
                p.shadow_rules_stat_prefix.clone(),
            )?,
        })
    }

    /// Decides a request (and counts it).
    pub fn check(&self, s: &Subject<'_>) -> Check<'_> {
        self.engines.check(s)
    }

    /// The filter's counters.
    pub fn stats(&self) -> &RbacStats {
        &self.engines.stats
    }

    /// `rules_stat_prefix`.
    pub fn stat_prefix(&self) -> &str {
        &self.engines.stat_prefix
    }

    /// `shadow_rules_stat_prefix` (also prefixes the shadow metadata keys).
    pub fn shadow_prefix(&self) -> &str {
        &self.engines.shadow_prefix
    }
}

/// A converted network RBAC filter.
#[derive(Debug)]
pub struct NetworkRbac {
    engines: Engines,
}

impl NetworkRbac {
    /// Converts the filter's typed config; the error is `(field, reason)` relative to the
    /// typed config.
    pub fn from_any(any: &Any) -> Result<Self, (String, String)> {
        let p = decode::<NetworkRbacProto>(any, NETWORK_RBAC_TYPE)?;
        if p.matcher.is_some() || p.shadow_matcher.is_some() {
            let f = if p.matcher.is_some() {
                "matcher"
            } else {
                "shadow_matcher"
            };
            return Err(fail(f, "the matcher API is not supported by mast-proxy"));
        }
        if p.delay_deny.is_some() {
            return Err(fail("delay_deny", "not supported by mast-proxy"));
        }
        if p.stat_prefix.is_empty() {
            return Err(fail("stat_prefix", "must not be empty"));
        }
        Ok(NetworkRbac {
            engines: Engines::new(
                p.rules.as_ref(),
                p.shadow_rules.as_ref(),
                p.stat_prefix.clone(),
                p.shadow_rules_stat_prefix.clone(),
            )?,
        })
    }

    /// Whether a new connection may proceed.
    pub fn allows_connection(&self, conn: &ConnInfo) -> bool {
        self.check_connection(conn).enforced.allowed
    }

    /// Decides a new connection (and counts it).
    pub fn check_connection(&self, conn: &ConnInfo) -> Check<'_> {
        let headers = HeaderMap::new();
        let metadata = Metadata::new();
        let s = Subject {
            method: "",
            authority: "",
            path: "",
            scheme: "",
            headers: &headers,
            local: conn.local,
            peer: conn.peer,
            remote_ip: conn.peer.ip(),
            tls: conn.tls.as_deref(),
            metadata: &metadata,
        };
        let check = self.engines.check(&s);
        if !check.enforced.allowed {
            tracing::debug!(peer = %conn.peer, details = check.enforced.details, "connection denied by RBAC");
        }
        check
    }

    /// The filter's counters (`<stat_prefix>rbac.allowed`...).
    pub fn stats(&self) -> &RbacStats {
        &self.engines.stats
    }

    /// `stat_prefix`.
    pub fn stat_prefix(&self) -> &str {
        &self.engines.stat_prefix
    }
}
