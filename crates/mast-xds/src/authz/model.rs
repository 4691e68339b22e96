//! One AuthorizationPolicy rule as Istio's `authz/model` sees it (`model.go`): the `from`,
//! `to` and `when` conditions consolidated into lists of principals and permissions, then
//! generated into one Envoy RBAC `Policy`.
//!
//! Each `from` source becomes one principal (the AND of its fields, followed by the `when`
//! conditions that are about the caller); each `to` operation becomes one permission (the AND
//! of its fields, followed by the `when` conditions that are about the request's destination).
//! Within a field, values are ORed and `not*` values become `not(or(...))`. A field a chain
//! cannot evaluate (HTTP-only fields on a TCP chain) is an error: for ALLOW it drops the whole
//! rule (the policy allows less), for DENY and AUDIT only that value is left out (the policy
//! matches more), exactly as Istio's `checkError`.

use envoy_types::pb::envoy::config::rbac::v3::Policy;
use mast_config::security::authorization_policy::{Operation, Rule, Source};

use super::{permissions, principals};

/// What a rule condition is about; decides which generator turns its values into matchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    /// `source.ip` / `ipBlocks`: the peer address (`direct_remote_ip`).
    SrcIp,
    /// `remote.ip` / `remoteIpBlocks`: the original client (`remote_ip`).
    RemoteIp,
    /// `source.namespace` / `namespaces`.
    SrcNamespace,
    /// `source.serviceAccount` / `serviceAccounts` (`<sa>` or `<ns>/<sa>`).
    SrcServiceAccount,
    /// `source.principal` / `principals`.
    SrcPrincipal,
    /// `request.auth.principal` / `requestPrincipals` (`<iss>/<sub>`).
    RequestPrincipal,
    /// `request.auth.audiences`.
    RequestAudiences,
    /// `request.auth.presenter`.
    RequestPresenter,
    /// `request.headers[<name>]`.
    RequestHeader(String),
    /// `request.auth.claims[<a>][<b>]...`.
    RequestClaims(Vec<String>),
    /// `destination.ip`.
    DestIp,
    /// `destination.port` / `ports`.
    DestPort,
    /// `connection.sni`.
    ConnSni,
    /// `experimental.envoy.filters.<filter>[<key>]`.
    EnvoyFilter {
        /// The metadata namespace.
        filter: String,
        /// The key in it.
        key: String,
    },
    /// `hosts` (`:authority`).
    Host,
    /// `methods` (`:method`).
    Method,
    /// `paths`.
    Path,
}

impl Key {
    /// Whether the values of this key are generated together (Istio's "extended"
    /// generators: one matcher for all values rather than an OR of one per value).
    fn is_extended(&self) -> bool {
        matches!(
            self,
            Key::RequestPrincipal
                | Key::RequestAudiences
                | Key::RequestPresenter
                | Key::RequestClaims(_)
                | Key::EnvoyFilter { .. }
        )
    }
}

/// A generator's refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GenError {
    /// The field needs HTTP (a TCP chain cannot evaluate it).
    #[error("{0:?} is HTTP only")]
    HttpOnly(String),
    /// The field does not apply to this side (a principal key used as a permission or the
    /// reverse; cannot happen with the keys [`Model::new`] builds).
    #[error("unimplemented")]
    Unimplemented,
    /// A value Envoy cannot express (bad CIDR, bad port, malformed key).
    #[error("{0}")]
    Invalid(String),
}

/// One field of a rule: its key, its values and its `not` values.
#[derive(Debug, Clone)]
pub(crate) struct Cond<'a> {
    /// What it is about.
    pub key: Key,
    /// The key as written (for messages).
    pub name: &'a str,
    /// Values, ORed.
    pub values: &'a [String],
    /// Values that must not match, ORed under a `not`.
    pub not_values: &'a [String],
}

/// Whether a generator error is fatal for the rule (ALLOW) or leaves the value out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strictness {
    /// ALLOW: any error drops the whole rule.
    DropRule,
    /// DENY, AUDIT (and CUSTOM): an erroring value is left out.
    DropValue,
}

/// A rule consolidated into principals and permissions.
#[derive(Debug, Clone, Default)]
pub(crate) struct Model<'a> {
    permissions: Vec<Vec<Cond<'a>>>,
    principals: Vec<Vec<Cond<'a>>>,
}

fn cond<'a>(key: Key, name: &'a str, values: &'a [String], not: &'a [String]) -> Option<Cond<'a>> {
    (!values.is_empty() || !not.is_empty()).then_some(Cond {
        key,
        name,
        values,
        not_values: not,
    })
}

/// The text between `[` and `]` of `s`, which must be exactly `[<NAME>]`.
fn name_in_brackets(s: &str) -> Result<String, String> {
    s.strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .map(str::to_owned)
        .ok_or_else(|| format!("expecting format [<NAME>], but found {s}"))
}

/// Istio's `extractNameInNestedBrackets`: `[a][b]` → `[a, b]`; otherwise the single
/// `[<NAME>]` form.
fn names_in_nested_brackets(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let Some(inner) = rest.strip_prefix('[') else {
            return name_in_brackets(s).map(|n| vec![n]);
        };
        match inner.find(['[', ']']) {
            Some(i) if inner.as_bytes()[i] == b']' => {
                out.push(inner[..i].to_owned());
                rest = &inner[i + 1..];
            }
            _ => return name_in_brackets(s).map(|n| vec![n]),
        }
    }
    Ok(out)
}

/// The key of a `when` condition, and whether it is about the caller (a principal) rather
/// than the destination (a permission).
fn when_key(k: &str) -> Result<(Key, bool), String> {
    let key = match k {
        "destination.ip" => (Key::DestIp, false),
        "destination.port" => (Key::DestPort, false),
        "connection.sni" => (Key::ConnSni, false),
        "source.ip" => (Key::SrcIp, true),
        "remote.ip" => (Key::RemoteIp, true),
        "source.namespace" => (Key::SrcNamespace, true),
        "source.serviceAccount" => (Key::SrcServiceAccount, true),
        "source.principal" => (Key::SrcPrincipal, true),
        "request.auth.principal" => (Key::RequestPrincipal, true),
        "request.auth.audiences" => (Key::RequestAudiences, true),
        "request.auth.presenter" => (Key::RequestPresenter, true),
        _ => return when_key_prefixed(k),
    };
    Ok(key)
}

fn when_key_prefixed(k: &str) -> Result<(Key, bool), String> {
    if let Some(rest) = k.strip_prefix("experimental.envoy.filters.") {
        let full = format!("envoy.filters.{rest}");
        let trimmed = full.strip_suffix(']').unwrap_or(&full);
        return match trimmed.split_once('[') {
            Some((filter, key)) => Ok((
                Key::EnvoyFilter {
                    filter: filter.to_owned(),
                    key: key.to_owned(),
                },
                false,
            )),
            None => Err(format!("invalid key: {k}")),
        };
    }
    if let Some(rest) = k.strip_prefix("request.headers") {
        return Ok((Key::RequestHeader(name_in_brackets(rest)?), true));
    }
    if let Some(rest) = k.strip_prefix("request.auth.claims") {
        return Ok((Key::RequestClaims(names_in_nested_brackets(rest)?), true));
    }
    Err(format!("unknown attribute {k}"))
}

/// The `when` conditions of `rule`, split into (permission, principal) conditions.
type WhenConds<'a> = (Vec<Cond<'a>>, Vec<Cond<'a>>);

fn when_conds(rule: &Rule) -> Result<WhenConds<'_>, String> {
    let (mut perm, mut princ) = (Vec::new(), Vec::new());
    for w in rule.when.iter().flatten() {
        let (key, is_principal) = when_key(&w.key)?;
        if let Some(c) = cond(key, &w.key, &w.values, &w.not_values) {
            if is_principal {
                princ.push(c);
            } else {
                perm.push(c);
            }
        }
    }
    Ok((perm, princ))
}

/// A source's fields in Istio's order (principals, request principals, service accounts,
/// namespaces, remote IPs, IPs).
fn source_conds(s: &Source) -> Vec<Cond<'_>> {
    [
        cond(
            Key::SrcPrincipal,
            "principals",
            &s.principals,
            &s.not_principals,
        ),
        cond(
            Key::RequestPrincipal,
            "requestPrincipals",
            &s.request_principals,
            &s.not_request_principals,
        ),
        cond(
            Key::SrcServiceAccount,
            "serviceAccounts",
            &s.service_accounts,
            &s.not_service_accounts,
        ),
        cond(
            Key::SrcNamespace,
            "namespaces",
            &s.namespaces,
            &s.not_namespaces,
        ),
        cond(
            Key::RemoteIp,
            "remoteIpBlocks",
            &s.remote_ip_blocks,
            &s.not_remote_ip_blocks,
        ),
        cond(Key::SrcIp, "ipBlocks", &s.ip_blocks, &s.not_ip_blocks),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// An operation's fields in Istio's order (hosts, methods, paths, ports).
fn operation_conds(o: &Operation) -> Vec<Cond<'_>> {
    [
        cond(Key::Host, "hosts", &o.hosts, &o.not_hosts),
        cond(Key::Method, "methods", &o.methods, &o.not_methods),
        cond(Key::Path, "paths", &o.paths, &o.not_paths),
        cond(Key::DestPort, "ports", &o.ports, &o.not_ports),
    ]
    .into_iter()
    .flatten()
    .collect()
}

impl<'a> Model<'a> {
    /// Consolidates `rule` (Istio's `model.New`). An unknown `when` key is an error that
    /// skips the rule whatever the action, as in Istio.
    pub(crate) fn new(rule: &'a Rule) -> Result<Self, String> {
        let (base_perm, base_princ) = when_conds(rule)?;
        let mut m = Model::default();
        for from in rule.from.iter().flatten() {
            let mut list: Vec<Cond<'a>> =
                from.source.as_ref().map(source_conds).unwrap_or_default();
            list.extend(base_princ.iter().cloned());
            m.principals.push(list);
        }
        if rule.from.as_ref().is_none_or(Vec::is_empty) {
            m.principals.push(base_princ);
        }
        for to in rule.to.iter().flatten() {
            let mut list: Vec<Cond<'a>> = to
                .operation
                .as_ref()
                .map(operation_conds)
                .unwrap_or_default();
            list.extend(base_perm.iter().cloned());
            m.permissions.push(list);
        }
        if rule.to.as_ref().is_none_or(Vec::is_empty) {
            m.permissions.push(base_perm);
        }
        Ok(m)
    }

    /// The RBAC policy of this rule (Istio's `Model.Generate`), for a TCP chain when
    /// `for_tcp`. `policy_ns` is the policy's namespace (the default namespace of
    /// `serviceAccounts` values). Errors when the rule must be dropped.
    pub(crate) fn generate(
        &self,
        for_tcp: bool,
        strict: Strictness,
        policy_ns: &str,
    ) -> Result<Policy, GenError> {
        let mut perms = Vec::with_capacity(self.permissions.len());
        for list in &self.permissions {
            let mut and = Vec::new();
            for c in list {
                and.extend(permissions::for_cond(c, for_tcp, strict)?);
            }
            if and.is_empty() {
                and.push(permissions::any());
            }
            perms.push(permissions::and(and));
        }
        let mut princs = Vec::with_capacity(self.principals.len());
        for list in &self.principals {
            let mut and = Vec::new();
            for c in list {
                and.extend(principals::for_cond(c, for_tcp, strict, policy_ns)?);
            }
            if and.is_empty() {
                and.push(principals::any());
            }
            princs.push(principals::and(and));
        }
        Ok(Policy {
            permissions: perms,
            principals: princs,
            ..Default::default()
        })
    }
}

/// Applies Istio's `checkError`: an error is returned for ALLOW, swallowed (the value left
/// out) otherwise.
pub(crate) fn check<T>(r: Result<T, GenError>, strict: Strictness) -> Result<Option<T>, GenError> {
    match (r, strict) {
        (Ok(v), _) => Ok(Some(v)),
        (Err(e), Strictness::DropRule) => Err(e),
        (Err(_), Strictness::DropValue) => Ok(None),
    }
}

/// Shared shape of [`permissions::for_cond`] and [`principals::for_cond`]: the OR of the
/// values (or the extended generator's single matcher), then the `not` of the OR of the not
/// values.
pub(crate) fn generate_cond<T>(
    c: &Cond<'_>,
    strict: Strictness,
    one: impl Fn(&str) -> Result<T, GenError>,
    all: impl Fn(&[String]) -> Result<T, GenError>,
    or: impl Fn(Vec<T>) -> T,
    not: impl Fn(T) -> T,
) -> Result<Vec<T>, GenError> {
    let mut out = Vec::new();
    for (values, negate) in [(c.values, false), (c.not_values, true)] {
        if values.is_empty() {
            continue;
        }
        let item = if c.key.is_extended() {
            check(all(values), strict)?
        } else {
            let mut ors = Vec::new();
            for v in values {
                ors.extend(check(one(v), strict)?);
            }
            (!ors.is_empty()).then(|| or(ors))
        };
        if let Some(item) = item {
            out.push(if negate { not(item) } else { item });
        }
    }
    Ok(out)
}
