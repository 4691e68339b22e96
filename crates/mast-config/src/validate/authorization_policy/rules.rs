//! One authorization rule's `from` (sources) and `to` (operations): lists not empty when
//! written, entries not empty, values well-formed; and Istio's warning for DENY rules that
//! use only HTTP attributes (they then deny all TCP traffic in scope).

use super::{conditions, shared};
use crate::security::authorization_policy::{Action, Operation, Rule, Source};
use crate::validate::Report;

/// Checks `rule`, found at `f` (`spec.rules[i]`), of a policy with `action`.
pub(super) fn rule(r: &mut Report, f: &str, rule: &Rule, action: Action) {
    let mut tcp_in_from = false;
    let mut tcp_in_to = false;
    if rule.from.as_ref().is_some_and(Vec::is_empty) {
        r.error(format!("{f}.from"), "`from` must not be empty");
    }
    for (j, from) in rule.from.iter().flatten().enumerate() {
        let fs = format!("{f}.from[{j}].source");
        match &from.source {
            None => r.error(&fs, "`from.source` must be set"),
            Some(s) => tcp_in_from |= source(r, &fs, s),
        }
    }
    if rule.to.as_ref().is_some_and(Vec::is_empty) {
        r.error(format!("{f}.to"), "`to` must not be empty");
    }
    for (j, to) in rule.to.iter().flatten().enumerate() {
        let fo = format!("{f}.to[{j}].operation");
        match &to.operation {
            None => r.error(&fo, "`to.operation` must be set"),
            Some(op) => tcp_in_to |= operation(r, &fo, op),
        }
    }
    if rule.when.as_ref().is_some_and(Vec::is_empty) {
        r.error(format!("{f}.when"), "`when` must not be empty");
    }
    for (k, c) in rule.when.iter().flatten().enumerate() {
        conditions::condition(r, &format!("{f}.when[{k}]"), c);
    }
    let has_from = rule.from.iter().flatten().any(|x| x.source.is_some());
    let has_to = rule.to.iter().flatten().any(|x| x.operation.is_some());
    if action == Action::Deny && ((has_from && !has_to && !tcp_in_from) || (has_to && !tcp_in_to)) {
        r.warn(
            f,
            "configured AuthorizationPolicy will deny all traffic to TCP ports under its scope due to \
             the use of only HTTP attributes in a DENY rule; it is recommended to explicitly specify the port",
        );
    }
}

/// Checks a source at `f`; returns whether it uses attributes that TCP traffic has.
fn source(r: &mut Report, f: &str, s: &Source) -> bool {
    if s.is_empty() {
        r.error(f, "`from.source` must not be empty: set at least one field");
        return false;
    }
    let identity =
        s.principals.len() + s.not_principals.len() + s.namespaces.len() + s.not_namespaces.len();
    if identity > 0 && s.service_accounts.len() + s.not_service_accounts.len() > 0 {
        r.error(
            format!("{f}.serviceAccounts"),
            "cannot set serviceAccounts with namespaces or principals",
        );
    }
    let plain: [(&str, &[String]); 6] = [
        ("principals", &s.principals),
        ("notPrincipals", &s.not_principals),
        ("requestPrincipals", &s.request_principals),
        ("notRequestPrincipals", &s.not_request_principals),
        ("namespaces", &s.namespaces),
        ("notNamespaces", &s.not_namespaces),
    ];
    for (name, values) in plain {
        shared::no_empty(r, &format!("{f}.{name}"), name, values);
        shared::wildcards(r, &format!("{f}.{name}"), values);
    }
    let addresses: [(&str, &[String]); 4] = [
        ("ipBlocks", &s.ip_blocks),
        ("notIpBlocks", &s.not_ip_blocks),
        ("remoteIpBlocks", &s.remote_ip_blocks),
        ("notRemoteIpBlocks", &s.not_remote_ip_blocks),
    ];
    for (name, values) in addresses {
        shared::no_empty(r, &format!("{f}.{name}"), name, values);
        shared::ips(r, &format!("{f}.{name}"), values);
    }
    shared::service_accounts(
        r,
        &format!("{f}.serviceAccounts"),
        "serviceAccounts",
        &s.service_accounts,
    );
    shared::service_accounts(
        r,
        &format!("{f}.notServiceAccounts"),
        "notServiceAccounts",
        &s.not_service_accounts,
    );
    // Every field but the request principals (which come from a JWT) is known for TCP traffic.
    let tcp = [
        &s.principals,
        &s.not_principals,
        &s.namespaces,
        &s.not_namespaces,
        &s.ip_blocks,
        &s.not_ip_blocks,
        &s.remote_ip_blocks,
        &s.not_remote_ip_blocks,
        &s.service_accounts,
        &s.not_service_accounts,
    ];
    tcp.iter().any(|v| !v.is_empty())
}

/// Checks an operation at `f`; returns whether it names ports (the TCP attribute).
fn operation(r: &mut Report, f: &str, op: &Operation) -> bool {
    if op.is_empty() {
        r.error(
            f,
            "`to.operation` must not be empty: set at least one field",
        );
        return false;
    }
    let all: [(&str, &[String]); 8] = [
        ("hosts", &op.hosts),
        ("notHosts", &op.not_hosts),
        ("ports", &op.ports),
        ("notPorts", &op.not_ports),
        ("methods", &op.methods),
        ("notMethods", &op.not_methods),
        ("paths", &op.paths),
        ("notPaths", &op.not_paths),
    ];
    for (name, values) in all {
        let field = format!("{f}.{name}");
        shared::no_empty(r, &field, name, values);
        match name {
            "hosts" | "notHosts" => shared::wildcards(r, &field, values),
            "ports" | "notPorts" => shared::ports(r, &field, values),
            "methods" | "notMethods" => methods(r, &field, values),
            _ => paths(r, &field, name, values),
        }
    }
    !op.ports.is_empty() || !op.not_ports.is_empty()
}

/// Methods are matched case-sensitively against `:method`, which is upper case.
fn methods(r: &mut Report, field: &str, values: &[String]) {
    const TCHARS: &str = "!#$%&'*+-.^_`|~";
    for (i, m) in values.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if !m
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || TCHARS.contains(c))
        {
            r.error(f, format!("method {m:?} is not a valid HTTP method token"));
        } else if m.chars().any(|c| c.is_ascii_lowercase()) && m != "*" {
            r.warn(
                f,
                format!("method {m:?} is matched case-sensitively and HTTP methods are upper case; did you mean {:?}?", m.to_ascii_uppercase()),
            );
        }
    }
}

/// Paths: `{*}`/`{**}` templates as Istio's `CheckValidPathTemplate`, otherwise `*` only as
/// a prefix or suffix; a path that cannot start with `/` never matches.
fn paths(r: &mut Report, field: &str, name: &str, values: &[String]) {
    for (i, p) in values.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if p.is_empty() {
            continue;
        }
        if p.contains('{') || p.contains('}') {
            if let Err(e) = path_template(p) {
                r.error(
                    f,
                    format!("invalid or unsupported path {p}, found in {name}. {e}"),
                );
            }
            continue;
        }
        shared::wildcard(r, &f, p);
        if !p.starts_with('/') && !p.starts_with('*') {
            r.warn(
                f,
                format!("path {p:?} does not start with '/' and will never match a request path"),
            );
        }
    }
}

/// A path with `{*}` (one segment) and `{**}` (any segments, last operator only).
fn path_template(path: &str) -> Result<(), String> {
    let mut seen_any = false;
    for glob in path.trim_matches('/').split('/') {
        match glob {
            "{*}" | "{**}" if seen_any => return Err("{**} is not the last operator".into()),
            "{*}" => {}
            "{**}" => seen_any = true,
            g if g.contains(['{', '}']) => {
                return Err("Contains '{' or '}' beyond a supported path template".into());
            }
            g if !is_path_literal(g) => {
                return Err(format!("Contains segment {g} with invalid string literal"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A segment of RFC 3986 `pchar`s, as Envoy's URI template matcher requires.
fn is_path_literal(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~%!$&'()+,;:@=".contains(c))
}
