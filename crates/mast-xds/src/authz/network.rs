//! `envoy.filters.network.rbac` filters for inbound TCP chains (Istio's `Builder.BuildTCP`),
//! with `stat_prefix: "tcp."`, in the same order as the HTTP filters (CUSTOM's fail-closed
//! DENY, then AUDIT, DENY, ALLOW).
//!
//! HTTP-only fields (`hosts`, `methods`, `paths`, `requestPrincipals`, `request.*` keys)
//! cannot be evaluated on a TCP connection: an ALLOW rule using one is dropped (an ALLOW
//! policy left with no rules denies every connection), while DENY and AUDIT rules only lose
//! those values, so they match more connections, as in Istio.

use envoy_types::pb::envoy::config::listener::v3::{Filter, filter};
use envoy_types::pb::envoy::config::rbac::v3::rbac::Action as RbacAction;
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;

use super::http::SHADOW_STAT_PREFIX;
use super::pack;
use super::rbac::{self, Rules};
use super::selection::Selected;

/// `envoy.filters.network.rbac`.
pub const NETWORK_RBAC_FILTER: &str = "envoy.filters.network.rbac";
/// Istio's `RBACTCPFilterStatPrefix`.
pub const TCP_STAT_PREFIX: &str = "tcp.";

/// The network RBAC filter enforcing `rules`.
pub fn filter(rules: &Rules, shadow_prefix: bool) -> Filter {
    let head = NetworkRbac {
        stat_prefix: TCP_STAT_PREFIX.to_owned(),
        shadow_rules_stat_prefix: if shadow_prefix {
            SHADOW_STAT_PREFIX.to_owned()
        } else {
            String::new()
        },
        ..Default::default()
    };
    filter_from(&head, Some(rules), None)
}

/// The network RBAC filter enforcing `rules` (none: nothing) with `shadow` (dry-run) rules.
pub fn filter_with_shadow(rules: Option<&Rules>, shadow: Option<&Rules>) -> Filter {
    let head = NetworkRbac {
        stat_prefix: TCP_STAT_PREFIX.to_owned(),
        shadow_rules_stat_prefix: SHADOW_STAT_PREFIX.to_owned(),
        ..Default::default()
    };
    filter_from(&head, rules, shadow)
}

fn filter_from(head: &NetworkRbac, rules: Option<&Rules>, shadow: Option<&Rules>) -> Filter {
    let mut value = prost::Message::encode_to_vec(head);
    if let Some(rules) = rules {
        pack::append_nested(&mut value, 1, &rules.encode());
    }
    if let Some(shadow) = shadow {
        pack::append_nested(&mut value, 2, &shadow.encode());
    }
    Filter {
        name: NETWORK_RBAC_FILTER.to_owned(),
        config_type: Some(filter::ConfigType::TypedConfig(pack::any::<NetworkRbac>(
            value,
        ))),
    }
}

/// Every network RBAC filter for the selected policies, in order.
/// `pinned_port`: see [`rbac::Rules::pin_destination_port`].
pub(crate) fn filters(sel: &Selected<'_>, pinned_port: Option<u16>) -> Vec<Filter> {
    let custom = rbac::build(&sel.custom, RbacAction::Deny, true, true).map(|r| filter(&r, false));
    let rest = rbac::rule_sets(sel, true, pinned_port)
        .into_iter()
        .map(|(rules, shadow)| filter_with_shadow(rules.as_ref(), shadow.as_ref()));
    custom.into_iter().chain(rest).collect()
}
