//! Validation of `LocalGateway` (mast.dev/v1alpha1): its name (the gateway's workload name),
//! labels (what `Gateway.spec.selector` matches: a warning when there are none), the
//! `mast.dev/proxy` annotation, the service account and the environment names, worded as
//! Kubernetes and Istio word the same rules.

#[cfg(test)]
mod tests;

use mast_core::is_dns1123_label;

use super::{Report, common};
use crate::local::{LocalGateway, PROXY_ANNOTATION, ProxyChoice, is_env_name};
use crate::resource::Resource;

/// Checks a `LocalGateway`; `res` gives its name, labels and annotations.
pub(crate) fn validate(spec: &LocalGateway, res: &Resource, r: &mut Report) {
    metadata(res, r);
    if let Some(sa) = spec.service_account.as_deref().filter(|s| !s.is_empty())
        && !is_dns1123_subdomain(sa)
    {
        r.error(
            "spec.serviceAccount",
            format!(
                "invalid service account name {sa:?}: must be a lowercase RFC 1123 subdomain (lower case alphanumeric characters, '-' or '.', starting and ending with an alphanumeric)"
            ),
        );
    }
    for name in spec.env.keys() {
        if !is_env_name(name) {
            r.error(
                format!("spec.env.{name}"),
                format!(
                    "invalid environment variable name {name:?}: must be letters, digits and '_', not starting with a digit"
                ),
            );
        }
    }
}

/// The name (the gateway proxy's workload name), labels and the proxy annotation.
fn metadata(res: &Resource, r: &mut Report) {
    let name = res.name();
    if !is_dns1123_label(name) || has_upper(name) {
        r.error(
            "metadata.name",
            format!(
                "invalid name {name:?}: a LocalGateway name must be a lowercase RFC 1123 label (lower case alphanumeric characters or '-', starting and ending with an alphanumeric, at most 63 characters)"
            ),
        );
    }
    if res.labels().is_empty() {
        r.warn(
            "metadata.labels",
            "the gateway has no labels: no Gateway selector and no Service can select it (Istio's ingress gateway has istio: ingressgateway)",
        );
    }
    for (k, v) in res.labels() {
        common::label(r, &format!("metadata.labels.{k}"), k, v);
    }
    if let Some(v) = res.annotations().get(PROXY_ANNOTATION)
        && ProxyChoice::parse(v).is_none()
    {
        r.error(
            format!("metadata.annotations.{PROXY_ANNOTATION}"),
            format!("annotation {PROXY_ANNOTATION} has invalid value {v:?}: must be mast or envoy"),
        );
    }
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && !has_upper(s) && s.split('.').all(is_dns1123_label)
}

fn has_upper(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_uppercase())
}
