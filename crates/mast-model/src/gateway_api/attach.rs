//! Route attachment: which listeners (or, for GAMMA, which Service) each parent reference
//! of a route binds to, by section name, port, allowed kinds and namespaces and hostname
//! intersection, with the `Accepted` reason when it binds to none.

use mast_config::gateway_api::ParentReference;

use super::inputs::Inputs;
use super::listeners::{ListenerInfo, Namespaces, Parents};
use super::status::Condition;

/// Where a route's rules go: a gateway (by its Istio name) or `mesh`, for these hosts.
#[derive(Debug, Clone)]
pub(super) struct Binding {
    /// `ns/name` of the Istio Gateway, or `mesh`.
    pub gateway: String,
    /// The VirtualService hosts.
    pub hosts: Vec<String>,
    /// For mesh bindings: the Service port the parent reference names.
    pub port: Option<i64>,
}

/// The outcome for one parent reference.
#[derive(Debug)]
pub(super) struct ParentOutcome {
    pub parent: ParentReference,
    pub bindings: Vec<Binding>,
    /// `Accepted` (true, or false with the reason).
    pub accepted: Condition,
}

/// A route as attachment sees it.
pub(super) struct RouteRef<'r> {
    pub kind: &'static str,
    pub namespace: &'r str,
    pub hostnames: &'r [String],
}

/// Resolves every parent reference of a route; references to Gateways Mast does not serve
/// are left out (another controller reports them).
pub(super) fn attach(
    inputs: &Inputs<'_>,
    parents: &mut Parents,
    route: &RouteRef<'_>,
    refs: &[ParentReference],
) -> Vec<ParentOutcome> {
    refs.iter()
        .filter_map(|p| {
            if p.is_service() {
                Some(mesh(inputs, route, p))
            } else if p.is_gateway() {
                gateway(inputs, parents, route, p)
            } else {
                None
            }
        })
        .collect()
}

fn mesh(inputs: &Inputs<'_>, route: &RouteRef<'_>, p: &ParentReference) -> ParentOutcome {
    let ns = p.namespace.as_deref().unwrap_or(route.namespace);
    if !inputs.services.contains(&(ns, p.name.as_str())) {
        return rejected(
            p,
            "NoMatchingParent",
            format!("parent Service {ns}/{} not found", p.name),
        );
    }
    ParentOutcome {
        parent: p.clone(),
        bindings: vec![Binding {
            gateway: "mesh".into(),
            hosts: vec![inputs.service_host(ns, &p.name)],
            port: p.port,
        }],
        accepted: accepted(),
    }
}

fn gateway(
    inputs: &Inputs<'_>,
    parents: &mut Parents,
    route: &RouteRef<'_>,
    p: &ParentReference,
) -> Option<ParentOutcome> {
    let ns = p.namespace.as_deref().unwrap_or(route.namespace);
    let key = (ns.to_owned(), p.name.clone());
    let Some(listeners) = parents.get_mut(&key) else {
        let exists = inputs
            .gateways
            .iter()
            .any(|(r, _)| r.namespace() == ns && r.name() == p.name);
        // A Gateway of another class belongs to another controller.
        return (!exists).then(|| {
            rejected(
                p,
                "NoMatchingParent",
                format!("parent gateway {ns}/{} not found", p.name),
            )
        });
    };
    let candidates: Vec<&mut ListenerInfo> = listeners
        .iter_mut()
        .filter(|l| p.section_name.as_deref().is_none_or(|s| s == l.name))
        .filter(|l| p.port.is_none_or(|port| port == l.port))
        .collect();
    if candidates.is_empty() {
        return Some(rejected(
            p,
            "NoMatchingParent",
            "no listeners matched the sectionName and port".into(),
        ));
    }
    let mut bindings = Vec::new();
    let mut allowed_any = false;
    for l in candidates {
        if !l.valid
            || !l.kinds.contains(&route.kind)
            || !namespace_allowed(inputs, l, ns, route.namespace)
        {
            continue;
        }
        allowed_any = true;
        let hosts = intersect(route.hostnames, l.hostname.as_deref());
        if hosts.is_empty() {
            continue;
        }
        l.attached += 1;
        bindings.push(Binding {
            gateway: l.internal.clone(),
            hosts,
            port: None,
        });
    }
    if bindings.is_empty() {
        return Some(if allowed_any {
            rejected(
                p,
                "NoMatchingListenerHostname",
                "no hostnames matched".into(),
            )
        } else {
            rejected(
                p,
                "NotAllowedByListeners",
                "kind or namespace not allowed by the listeners".into(),
            )
        });
    }
    Some(ParentOutcome {
        parent: p.clone(),
        bindings,
        accepted: accepted(),
    })
}

fn namespace_allowed(inputs: &Inputs<'_>, l: &ListenerInfo, gw_ns: &str, route_ns: &str) -> bool {
    match &l.namespaces {
        Namespaces::All => true,
        Namespaces::Same => gw_ns == route_ns,
        Namespaces::Selector(sel) => sel.matches(&inputs.namespace_labels(route_ns)),
    }
}

/// The hosts a route serves on a listener: `*` for a route without hostnames, else each
/// route hostname that intersects the listener's, narrowed to the more specific one.
pub(super) fn intersect(route: &[String], listener: Option<&str>) -> Vec<String> {
    if route.is_empty() {
        return vec!["*".into()];
    }
    let Some(lh) = listener else {
        return route.to_vec();
    };
    let mut out = Vec::new();
    for rh in route {
        let host = if host_matches(lh, rh) {
            rh.clone()
        } else if host_matches(rh, lh) {
            lh.to_owned()
        } else {
            continue;
        };
        if !out.contains(&host) {
            out.push(host);
        }
    }
    out
}

/// Whether `pattern` (maybe `*.suffix`) covers `host` (maybe a wildcard itself).
fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == host || pattern == "*" {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(suffix) => host.ends_with(suffix) && host.len() > suffix.len(),
        None => false,
    }
}

fn accepted() -> Condition {
    Condition::new("Accepted", true, "Accepted", "Route was valid")
}

fn rejected(p: &ParentReference, reason: &str, message: String) -> ParentOutcome {
    ParentOutcome {
        parent: p.clone(),
        bindings: Vec::new(),
        accepted: Condition::new("Accepted", false, reason, message),
    }
}
