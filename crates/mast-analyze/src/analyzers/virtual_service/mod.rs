//! VirtualService analyzers, after Istio's `analyzers/virtualservice`: destination hosts
//! and ports (IST0101, IST0112, [`destination_hosts`]), destination subsets (IST0101,
//! [`destination_rules`]), gateways and their hosts (IST0101, IST0132, [`gateways`]) and
//! hosts claimed twice on the mesh gateway (IST0109, [`conflicting_hosts`]).
//!
//! Owns the walk over a VirtualService's destinations (routes and mirrors, with the path of
//! each `Destination`) and the namespace scoping by `exportTo` that these checks share.

use mast_config::Resource;
use mast_config::networking::VirtualService;
use mast_config::networking::virtual_service::Destination;

use crate::context::ServiceInfo;
use crate::{Analyzer, Context};

mod conflicting_hosts;
mod destination_hosts;
mod destination_rules;
mod gateways;

/// The analyzers of this module, in the order they run.
pub(crate) fn analyzers() -> Vec<Box<dyn Analyzer>> {
    vec![
        Box::new(destination_hosts::DestinationHostAnalyzer),
        Box::new(destination_rules::DestinationRuleAnalyzer),
        Box::new(gateways::GatewayAnalyzer),
        Box::new(conflicting_hosts::ConflictingMeshGatewayHostsAnalyzer),
    ]
}

/// The reserved gateway name for the sidecars of the mesh.
const MESH_GATEWAY: &str = "mesh";

/// Every VirtualService with its spec, in load order.
fn virtual_services<'a>(
    ctx: &Context<'a>,
) -> impl Iterator<Item = (&'a Resource, &'a VirtualService)> + 'a {
    ctx.of_kind("VirtualService")
        .filter_map(|r| r.as_virtual_service().map(|vs| (r, vs)))
}

/// A destination of a VirtualService and where it is written.
struct AnnotatedDestination<'a> {
    /// The path of the `Destination`, as `spec.http[0].route[1].destination`.
    field: String,
    /// The destination.
    dest: &'a Destination,
    /// Whether it is a mirror (`mirror` or `mirrors[]`) rather than a route.
    mirror: bool,
}

impl AnnotatedDestination<'_> {
    /// The path of one of the destination's fields (`host`, `subset`, `port.number`).
    fn at(&self, field: &str) -> String {
        format!("{}.{field}", self.field)
    }
}

/// The route destinations of `vs` (TCP, TLS, then HTTP, as Istio lists them), skipping
/// destinations without a host (schema validation reports those).
fn route_destinations(vs: &VirtualService) -> Vec<AnnotatedDestination<'_>> {
    let mut out = Vec::new();
    let mut push = |field: String, dest| {
        out.push(AnnotatedDestination {
            field,
            dest,
            mirror: false,
        })
    };
    for (i, r) in vs.tcp.iter().enumerate() {
        for (j, d) in r.route.iter().enumerate() {
            push(
                format!("spec.tcp[{i}].route[{j}].destination"),
                &d.destination,
            );
        }
    }
    for (i, r) in vs.tls.iter().enumerate() {
        for (j, d) in r.route.iter().enumerate() {
            push(
                format!("spec.tls[{i}].route[{j}].destination"),
                &d.destination,
            );
        }
    }
    for (i, r) in vs.http.iter().enumerate() {
        for (j, d) in r.route.iter().enumerate() {
            push(
                format!("spec.http[{i}].route[{j}].destination"),
                &d.destination,
            );
        }
    }
    out.retain(|d| !d.dest.host.is_empty());
    out
}

/// The HTTP mirror destinations of `vs` (`mirror` and `mirrors[]`).
fn mirror_destinations(vs: &VirtualService) -> Vec<AnnotatedDestination<'_>> {
    let mut out = Vec::new();
    for (i, r) in vs.http.iter().enumerate() {
        if let Some(m) = &r.mirror {
            out.push(AnnotatedDestination {
                field: format!("spec.http[{i}].mirror"),
                dest: m,
                mirror: true,
            });
        }
        for (j, m) in r.mirrors.iter().enumerate() {
            out.push(AnnotatedDestination {
                field: format!("spec.http[{i}].mirrors[{j}].destination"),
                dest: &m.destination,
                mirror: true,
            });
        }
    }
    out.retain(|d| !d.dest.host.is_empty());
    out
}

/// Istio's IST0101 text: `Referenced host not found: "reviews"`.
fn not_found(reftype: &str, value: &str) -> String {
    format!(
        "Referenced {reftype} not found: {}",
        crate::messages::q(value)
    )
}

/// Whether `svc` is exported to every namespace (no `exportTo`, or `*` among them).
fn exported_to_all(svc: &ServiceInfo<'_>) -> bool {
    svc.export_to.is_empty() || svc.export_to.iter().any(|e| e == "*")
}

/// Whether `svc` is exported to the namespace scope `scope` (a namespace name, or `*`
/// which only a service exported everywhere satisfies), as Istio's scoped hosts are keyed.
fn exported_to(svc: &ServiceInfo<'_>, scope: &str) -> bool {
    exported_to_all(svc)
        || (scope != "*"
            && svc
                .export_to
                .iter()
                .any(|e| e == scope || (e == "." && scope == svc.namespace)))
}

/// The namespace scopes a VirtualService's `exportTo` names (`.` is its own namespace);
/// its own namespace when it has none.
fn export_scopes(export_to: &[String], namespace: &str) -> Vec<String> {
    if export_to.is_empty() {
        return vec![namespace.to_owned()];
    }
    let mut scopes: Vec<String> = export_to
        .iter()
        .map(|e| {
            if e == "." {
                namespace.to_owned()
            } else {
                e.clone()
            }
        })
        .collect();
    scopes.sort();
    scopes.dedup();
    scopes
}

#[cfg(test)]
mod test_support {
    //! YAML builders shared by the tests of this module.

    /// A Service in `ns` with `ports` (numbers), named `http-<n>`.
    pub(super) fn service(name: &str, ns: &str, ports: &[u16], annotations: &str) -> String {
        let mut s = format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\n{annotations}spec:\n  ports:\n"
        );
        for p in ports {
            s.push_str(&format!("  - name: http-{p}\n    port: {p}\n"));
        }
        s.push_str("---\n");
        s
    }

    /// A VirtualService header (through `spec:`).
    pub(super) fn vs(name: &str, ns: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n"
        )
    }

    /// The line of the first message.
    pub(super) fn line(m: &crate::Message) -> u32 {
        m.reference.as_ref().map_or(0, |o| o.line)
    }
}
