//! A rule's `when` conditions: the key must be one of the request attributes Istio
//! supports (`pkg/config/security`'s `ValidateAttribute`), with `values` or `notValues`
//! well-formed for that attribute.

use super::shared;
use crate::security::authorization_policy::Condition;
use crate::validate::Report;

/// The keys Istio supports, as listed in messages about an unknown key.
const SUPPORTED: &str = "request.headers[<name>], source.ip, remote.ip, source.namespace, source.serviceAccount, \
    source.principal, request.auth.principal, request.auth.audiences, request.auth.presenter, \
    request.auth.claims[<name>], destination.ip, destination.port, connection.sni, experimental.envoy.filters.*";

/// What the values of an attribute must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Values {
    /// Any non-empty string.
    Text,
    /// IP addresses or CIDR ranges.
    Ips,
    /// Port numbers.
    Ports,
    /// Service accounts (`name` or `namespace/name`).
    ServiceAccounts,
}

/// Checks the condition at `f` (`spec.rules[i].when[k]`).
pub(super) fn condition(r: &mut Report, f: &str, c: &Condition) {
    if c.key.is_empty() {
        r.error(format!("{f}.key"), "`key` must not be empty");
        return;
    }
    if c.values.is_empty() && c.not_values.is_empty() {
        r.error(
            f,
            format!(
                "at least one of `values` or `notValues` must be set for key {}",
                c.key
            ),
        );
    }
    let kind = match attribute(&c.key) {
        Ok(kind) => kind,
        Err(e) => {
            r.error(format!("{f}.key"), e);
            return;
        }
    };
    for (name, values) in [("values", &c.values), ("notValues", &c.not_values)] {
        let field = format!("{f}.{name}");
        match kind {
            Values::ServiceAccounts => shared::service_accounts(r, &field, &c.key, values),
            Values::Ips => {
                shared::no_empty(r, &field, &c.key, values);
                shared::ips(r, &field, values);
            }
            Values::Ports => {
                shared::no_empty(r, &field, &c.key, values);
                shared::ports(r, &field, values);
            }
            Values::Text => shared::no_empty(r, &field, &c.key, values),
        }
    }
}

/// The kind of values `key` takes, or why the key is not supported.
fn attribute(key: &str) -> Result<Values, String> {
    let map_key = |key: &str| {
        let open = key.find('[').unwrap_or(0);
        if key.ends_with(']') && open > 0 && open + 2 < key.len() {
            Ok(Values::Text)
        } else {
            Err(format!("bad key ({key}): should have format a[b]"))
        }
    };
    match key {
        k if k.starts_with("request.headers") => map_key(k),
        k if k.starts_with("request.experimental.inline.headers") => map_key(k),
        "source.ip" | "remote.ip" | "destination.ip" => Ok(Values::Ips),
        "source.serviceAccount" => Ok(Values::ServiceAccounts),
        "source.namespace"
        | "source.principal"
        | "request.auth.principal"
        | "request.auth.audiences"
        | "request.auth.presenter"
        | "connection.sni" => Ok(Values::Text),
        k if k.starts_with("request.auth.claims") => map_key(k),
        "destination.port" => Ok(Values::Ports),
        k if k.starts_with("experimental.envoy.filters.") => map_key(k),
        "destination.namespace" => Err(format!(
            "attribute {key} is replaced by the metadata.namespace"
        )),
        k if k.starts_with("destination.labels") => Err(format!(
            "attribute {key} is replaced by the workload selector"
        )),
        "destination.name" | "destination.user" => Err(format!(
            "deprecated attribute {key}: only supported in v1alpha1"
        )),
        _ => Err(format!(
            "unknown attribute: {key}; supported keys are {SUPPORTED}"
        )),
    }
}
