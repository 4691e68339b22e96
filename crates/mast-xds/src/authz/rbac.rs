//! The RBAC rule set of one action (Istio's `Builder.build`): every rule of every policy of
//! that action becomes a named `Policy` (`ns[<ns>]-policy[<name>]-rule[<i>]`); a policy with
//! no rules becomes one policy that never matches (so an ALLOW policy with an empty spec
//! denies everything); rules the chain cannot evaluate are handled per [`Strictness`].
//!
//! CUSTOM policies: Mast has no external authorization providers (Istio's MeshConfig
//! `extensionProviders`), so every CUSTOM policy is in Istio's "provider not found" case,
//! which fails closed: its rules become a DENY rule set with the names
//! `istio-ext-authz-[<provider>-]ns[..]-policy[..]-rule[i]-deny-due-to-bad-CUSTOM-action`.

use std::collections::{BTreeMap, HashMap};

use envoy_types::pb::envoy::config::rbac::v3::rbac::Action as RbacAction;
use envoy_types::pb::envoy::config::rbac::v3::{Policy, Rbac as RbacConfig};
use mast_config::security::AuthorizationPolicy;
use mast_model::Config;

use super::model::{Model, Strictness};
use super::{pack, permissions, principals};

/// Istio's `extAuthzMatchPrefix`.
const EXT_AUTHZ_PREFIX: &str = "istio-ext-authz";
/// Istio's `badCustomActionSuffix`.
const BAD_CUSTOM_SUFFIX: &str = "-deny-due-to-bad-CUSTOM-action";

/// One action's rule set: what goes into an RBAC filter's `rules`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// ALLOW, DENY or LOG.
    pub action: RbacAction,
    /// The policies by name.
    pub policies: BTreeMap<String, Policy>,
}

impl Rules {
    /// The `envoy.config.rbac.v3.RBAC` message, encoded with its policies in name order.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let head = RbacConfig {
            action: self.action as i32,
            policies: HashMap::new(),
            ..Default::default()
        };
        pack::with_sorted_map(&head, 2, &self.policies)
    }
}

impl Rules {
    /// Resolves every destination-port condition for a listener that serves exactly one
    /// workload port, `port`: in ports capture each `mast_inbound_<port>` listener has a
    /// port of its own, so the connection's local port is the listener's, not the workload
    /// port a policy names. A condition on `port` always holds there (`any`), any other port
    /// never does (`not any`).
    pub(crate) fn pin_destination_port(&mut self, port: u16) {
        for policy in self.policies.values_mut() {
            for p in &mut policy.permissions {
                pin(p, u32::from(port));
            }
        }
    }
}

fn pin(p: &mut envoy_types::pb::envoy::config::rbac::v3::Permission, port: u32) {
    use envoy_types::pb::envoy::config::rbac::v3::permission::Rule;
    let fixed = match &mut p.rule {
        Some(Rule::DestinationPort(n)) => Some(*n == port),
        Some(Rule::DestinationPortRange(r)) => {
            Some(i64::from(port) >= i64::from(r.start) && i64::from(port) < i64::from(r.end))
        }
        Some(Rule::AndRules(set) | Rule::OrRules(set)) => {
            set.rules.iter_mut().for_each(|r| pin(r, port));
            None
        }
        Some(Rule::NotRule(inner)) => {
            pin(inner, port);
            None
        }
        _ => None,
    };
    if let Some(holds) = fixed {
        *p = if holds {
            permissions::any()
        } else {
            permissions::not(permissions::any())
        };
    }
}

/// Istio's `rbacPolicyMatchNever`: `not any` on both sides.
fn match_never() -> Policy {
    Policy {
        permissions: vec![permissions::not(permissions::any())],
        principals: vec![principals::not(principals::any())],
        ..Default::default()
    }
}

fn policy_name(c: &Config<AuthorizationPolicy>, rule: usize, custom: bool) -> String {
    let prefix = match (custom, c.spec.provider.as_ref().map(|p| p.name.as_str())) {
        (false, _) => String::new(),
        (true, Some(p)) if !p.is_empty() => format!("{EXT_AUTHZ_PREFIX}-{p}-"),
        (true, _) => format!("{EXT_AUTHZ_PREFIX}-"),
    };
    format!(
        "{prefix}ns[{}]-policy[{}]-rule[{rule}]",
        c.namespace, c.name
    )
}

/// The rule set for `policies` (all of one action), or `None` when there are none.
/// `custom` builds CUSTOM policies' fail-closed DENY set (see the module doc).
pub(crate) fn build(
    policies: &[&Config<AuthorizationPolicy>],
    action: RbacAction,
    for_tcp: bool,
    custom: bool,
) -> Option<Rules> {
    if policies.is_empty() {
        return None;
    }
    let strict = if action == RbacAction::Allow {
        Strictness::DropRule
    } else {
        Strictness::DropValue
    };
    let mut out = BTreeMap::new();
    for c in policies {
        for (i, rule) in c.spec.rules.iter().enumerate() {
            let name = policy_name(c, i, custom);
            let model = match Model::new(rule) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(rule = %name, "skipped invalid authorization rule: {e}");
                    continue;
                }
            };
            match model.generate(for_tcp, strict, &c.namespace) {
                Ok(p) => {
                    out.insert(name, p);
                }
                Err(e) => {
                    tracing::debug!(rule = %name, for_tcp, "skipped authorization rule: {e}");
                }
            }
        }
        if c.spec.rules.is_empty() {
            out.insert(policy_name(c, 0, custom), match_never());
        }
    }
    if custom {
        let renamed = out
            .into_iter()
            .map(|(k, v)| (format!("{k}{BAD_CUSTOM_SUFFIX}"), v))
            .collect();
        return Some(Rules {
            action: RbacAction::Deny,
            policies: renamed,
        });
    }
    Some(Rules {
        action,
        policies: out,
    })
}

/// The (enforced, shadow) rule sets of the AUDIT, DENY and ALLOW filters, in that order,
/// for the actions present: dry-run DENY and ALLOW policies are the shadow rules of their
/// action's filter. `pinned_port`: see [`Rules::pin_destination_port`].
pub(crate) fn rule_sets(
    sel: &super::selection::Selected<'_>,
    for_tcp: bool,
    pinned_port: Option<u16>,
) -> Vec<(Option<Rules>, Option<Rules>)> {
    let none: Vec<&Config<AuthorizationPolicy>> = Vec::new();
    [
        (&sel.audit, &none, RbacAction::Log),
        (&sel.deny, &sel.dry_deny, RbacAction::Deny),
        (&sel.allow, &sel.dry_allow, RbacAction::Allow),
    ]
    .into_iter()
    .filter_map(|(enforced, dry, action)| {
        let pin = |mut r: Rules| {
            if let Some(port) = pinned_port {
                r.pin_destination_port(port);
            }
            r
        };
        let rules = build(enforced, action, for_tcp, false).map(pin);
        let shadow = build(dry, action, for_tcp, false).map(pin);
        (rules.is_some() || shadow.is_some()).then_some((rules, shadow))
    })
    .collect()
}

/// Logs, once per generation, that CUSTOM policies are enforced as DENY.
pub(crate) fn warn_custom(policies: &[&Config<AuthorizationPolicy>]) {
    for c in policies {
        let provider = c.spec.provider.as_ref().map_or("", |p| p.name.as_str());
        tracing::warn!(
            policy = %format!("{}/{}", c.namespace, c.name),
            provider,
            "CUSTOM authorization is not supported (no extension provider {provider:?}): \
             requests matching its rules are denied, as Istio does for an unknown provider"
        );
    }
}
