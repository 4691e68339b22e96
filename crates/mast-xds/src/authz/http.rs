//! `envoy.filters.http.rbac` filters for inbound HTTP chains (Istio's `Builder.BuildHTTP`):
//! one filter per action present, in Istio's order: AUDIT (`action: LOG`, never decides),
//! DENY, ALLOW; CUSTOM's fail-closed DENY filter comes before all of them (and before JWT
//! authentication), where Istio puts its CUSTOM filters.

use envoy_types::pb::envoy::config::rbac::v3::rbac::Action as RbacAction;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};

use super::pack;
use super::rbac::{self, Rules};
use super::selection::Selected;

/// `envoy.filters.http.rbac`.
pub const HTTP_RBAC_FILTER: &str = "envoy.filters.http.rbac";

/// The `shadow_rules_stat_prefix` Istio sets on every enforcing RBAC filter (it names the
/// dry-run stats; with no shadow rules it has no effect).
pub(crate) const SHADOW_STAT_PREFIX: &str = "istio_dry_run_allow_";

/// The HTTP RBAC filter enforcing `rules`.
pub fn filter(rules: &Rules, shadow_prefix: bool) -> HttpFilter {
    filter_with_shadow(Some(rules), None, shadow_prefix)
}

/// The HTTP RBAC filter enforcing `rules` (none: it enforces nothing) and evaluating `shadow`
/// (dry-run policies) for stats and logs only.
pub fn filter_with_shadow(
    rules: Option<&Rules>,
    shadow: Option<&Rules>,
    shadow_prefix: bool,
) -> HttpFilter {
    let head = HttpRbac {
        shadow_rules_stat_prefix: if shadow_prefix {
            SHADOW_STAT_PREFIX.to_owned()
        } else {
            String::new()
        },
        ..Default::default()
    };
    let mut value = prost::Message::encode_to_vec(&head);
    if let Some(rules) = rules {
        pack::append_nested(&mut value, 1, &rules.encode());
    }
    if let Some(shadow) = shadow {
        pack::append_nested(&mut value, 2, &shadow.encode());
    }
    HttpFilter {
        name: HTTP_RBAC_FILTER.to_owned(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack::any::<HttpRbac>(
            value,
        ))),
        ..Default::default()
    }
}

/// CUSTOM policies' filter (fail-closed DENY), if any apply.
pub(crate) fn custom_filters(sel: &Selected<'_>) -> Vec<HttpFilter> {
    rbac::build(&sel.custom, RbacAction::Deny, false, true)
        .map(|r| filter(&r, false))
        .into_iter()
        .collect()
}

/// The AUDIT, DENY and ALLOW filters, in that order, for the actions present.
/// `pinned_port`: see [`rbac::Rules::pin_destination_port`].
/// Dry-run policies (`istio.io/dry-run`) go into their action's filter as shadow rules.
pub(crate) fn filters(sel: &Selected<'_>, pinned_port: Option<u16>) -> Vec<HttpFilter> {
    rbac::rule_sets(sel, false, pinned_port)
        .into_iter()
        .map(|(rules, shadow)| filter_with_shadow(rules.as_ref(), shadow.as_ref(), true))
        .collect()
}
