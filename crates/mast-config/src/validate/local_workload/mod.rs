//! Validation of `LocalWorkload` (mast.dev/v1alpha1): the command, port, service account,
//! environment names, labels and the `mast.dev/proxy` annotation, worded as Istio and
//! Kubernetes word the same rules.

#[cfg(test)]
mod tests;

use mast_core::is_dns1123_label;

use super::{Report, common};
use crate::local::{LocalWorkload, PROXY_ANNOTATION, ProxyChoice, is_env_name};
use crate::resource::Resource;

/// Checks a `LocalWorkload`; `res` gives its name, labels and annotations.
pub(crate) fn validate(spec: &LocalWorkload, res: &Resource, r: &mut Report) {
    metadata(res, r);
    command(spec, r);
    if let Some(p) = spec.port {
        common::port(r, "spec.port", p);
    }
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
    env(spec, r);
}

/// The name (used by `mastctl exec` and in generated WorkloadEntries), labels and the
/// proxy annotation.
fn metadata(res: &Resource, r: &mut Report) {
    let name = res.name();
    if !is_dns1123_label(name) || has_upper(name) {
        r.error(
            "metadata.name",
            format!(
                "invalid name {name:?}: a LocalWorkload name must be a lowercase RFC 1123 label (lower case alphanumeric characters or '-', starting and ending with an alphanumeric, at most 63 characters)"
            ),
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

fn command(spec: &LocalWorkload, r: &mut Report) {
    match spec.command.first() {
        None => r.error(
            "spec.command",
            "command is required: the program to run and its arguments",
        ),
        Some(program) if program.trim().is_empty() => {
            r.error("spec.command[0]", "the program to run must not be empty")
        }
        Some(_) => {}
    }
}

fn env(spec: &LocalWorkload, r: &mut Report) {
    for name in spec.env.keys() {
        let field = format!("spec.env.{name}");
        if !is_env_name(name) {
            r.error(
                &field,
                format!(
                    "invalid environment variable name {name:?}: must be letters, digits and '_', not starting with a digit"
                ),
            );
        } else if name == "PORT"
            && let Some(p) = spec.port
        {
            r.warn(
                &field,
                format!("PORT is given to the program from spec.port ({p}); setting it here overrides that, so the program may not listen where its sidecar sends traffic"),
            );
        }
    }
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && !has_upper(s) && s.split('.').all(is_dns1123_label)
}

fn has_upper(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_uppercase())
}
