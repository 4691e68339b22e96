//! Validation of `AuthorizationPolicy`, following Istio's `ValidateAuthorizationPolicy`
//! (`pkg/config/validation`) and the attribute checks of `pkg/config/security`.
//!
//! Owns the policy-level rules (attachment, action and provider, DENY and CUSTOM
//! restrictions); [`rules`] checks each rule's `from` and `to`, [`conditions`] its `when`.
//! [`shared`] holds the checks the other two security kinds reuse.

mod conditions;
mod rules;
pub(super) mod shared;
#[cfg(test)]
mod tests;

use super::Report;
use crate::resource::Resource;
use crate::security::AuthorizationPolicy;
use crate::security::authorization_policy::{Action, Rule};

/// Checks an `AuthorizationPolicy`; `res` gives its name, namespace and API version.
pub(crate) fn validate(spec: &AuthorizationPolicy, res: &Resource, r: &mut Report) {
    let action = spec.action();
    shared::attachment(
        r,
        spec.selector.as_ref(),
        spec.target_ref.as_ref(),
        &spec.target_refs,
    );
    shared::dry_run_annotation(r, res, Some(action));
    match action {
        Action::Custom => custom(spec, r),
        _ if spec.provider.is_some() => {
            r.error(
                "spec.provider",
                format!("`provider` must not be with non CUSTOM action, found {action}"),
            );
        }
        _ => {}
    }
    if action == Action::Deny && spec.rules.is_empty() {
        r.error(
            "spec.rules",
            "DENY action without `rules` is meaningless as it will never be triggered, \
             add an empty rule `{}` if you want it be triggered for every request",
        );
    }
    for (i, rule) in spec.rules.iter().enumerate() {
        rules::rule(r, &format!("spec.rules[{i}]"), rule, action);
    }
}

/// CUSTOM: Mast has no external authorizer yet, so the action itself is an error; Istio's
/// own CUSTOM rules are checked too so the message list is complete.
fn custom(spec: &AuthorizationPolicy, r: &mut Report) {
    r.error(
        "spec.action",
        "action CUSTOM is not supported by Mast yet; use ALLOW, DENY or AUDIT",
    );
    if spec.rules.is_empty() {
        r.error(
            "spec.rules",
            "CUSTOM action without `rules` is meaningless as it will never be triggered, \
             add an empty rule `{}` if you want it be triggered for every request",
        );
    } else if spec.provider.as_ref().is_none_or(|p| p.name.is_empty()) {
        r.error("spec.provider.name", "`provider.name` must not be empty");
    }
    for (i, rule) in spec.rules.iter().enumerate() {
        custom_rule(r, &format!("spec.rules[{i}]"), rule);
    }
}

/// The source fields and `when` keys Istio does not support with CUSTOM.
fn custom_rule(r: &mut Report, f: &str, rule: &Rule) {
    for (j, from) in rule.from.iter().flatten().enumerate() {
        let Some(s) = &from.source else { continue };
        let fields: [(&str, &str, bool); 8] = [
            ("namespaces", "From.Namespaces", !s.namespaces.is_empty()),
            (
                "notNamespaces",
                "From.NotNamespaces",
                !s.not_namespaces.is_empty(),
            ),
            (
                "serviceAccounts",
                "From.ServiceAccounts",
                !s.service_accounts.is_empty(),
            ),
            (
                "notServiceAccounts",
                "From.NotServiceAccounts",
                !s.not_service_accounts.is_empty(),
            ),
            ("principals", "From.Principals", !s.principals.is_empty()),
            (
                "notPrincipals",
                "From.NotPrincipals",
                !s.not_principals.is_empty(),
            ),
            (
                "requestPrincipals",
                "From.RequestPrincipals",
                !s.request_principals.is_empty(),
            ),
            (
                "notRequestPrincipals",
                "From.NotRequestPrincipals",
                !s.not_request_principals.is_empty(),
            ),
        ];
        for (field, name, _) in fields.iter().filter(|(_, _, set)| *set) {
            r.error(
                format!("{f}.from[{j}].source.{field}"),
                format!("{name} is currently not supported with CUSTOM action"),
            );
        }
    }
    for (k, c) in rule.when.iter().flatten().enumerate() {
        let key = c.key.as_str();
        if matches!(
            key,
            "source.namespace" | "source.serviceAccount" | "source.principal"
        ) || key.starts_with("request.auth.")
        {
            r.error(
                format!("{f}.when[{k}].key"),
                format!("{key} is currently not supported with CUSTOM action"),
            );
        }
    }
}
