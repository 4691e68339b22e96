//! What changed between two snapshots, so the push path sends only what it must: an
//! endpoint-only change re-sends EDS for the touched services; anything else is a full push.
//!
//! A VirtualService-only change regenerates listeners and routes, not clusters and endpoints
//! (unless a Sidecar resource exists: its egress imports VirtualService destinations).
//!
//! "Endpoint-only" means every service is the same except for [`Service::endpoints`], the
//! Istio configuration and mesh options are equal, and every service whose endpoints
//! changed has static resolution (DNS services carry their endpoints inside the cluster, so
//! a change to them is a full push) and kept its set of endpoint identities (clusters carry
//! them as the SANs of auto mutual TLS, so a new or lost service account is a full push;
//! losing every endpoint is not).
//! The snapshot version is not compared.

use std::collections::BTreeSet;
use std::sync::Arc;

use mast_core::Hostname;

use crate::service::{Resolution, Service};
use crate::snapshot::MeshSnapshot;

/// The kind of change between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing translation depends on changed.
    None,
    /// Only endpoints of these services changed: EDS alone needs pushing.
    EndpointsOnly(BTreeSet<Hostname>),
    /// Only VirtualServices changed, and no Sidecar resource exists (a Sidecar's egress
    /// imports the destinations of VirtualServices, which would make clusters depend on
    /// them): listeners and routes need regenerating, clusters and endpoints do not.
    RoutesOnly,
    /// Configuration changed: every type needs regenerating.
    Full,
}

/// Compares two snapshots.
pub fn diff(old: &MeshSnapshot, new: &MeshSnapshot) -> Change {
    let config_same = old.options == new.options
        && old.destination_rules == new.destination_rules
        && old.gateways == new.gateways
        && old.secrets == new.secrets
        && old.sidecars == new.sidecars
        && old.peer_authentications == new.peer_authentications
        && old.authorization_policies == new.authorization_policies
        && old.dry_run_policies == new.dry_run_policies
        && old.request_authentications == new.request_authentications
        && old.target_ports == new.target_ports
        && old.services.len() == new.services.len();
    if !config_same {
        return Change::Full;
    }
    let mut touched = BTreeSet::new();
    for (a, b) in old.services.iter().zip(&new.services) {
        if Arc::ptr_eq(a, b) {
            continue;
        }
        if !same_except_endpoints(a, b) {
            return Change::Full;
        }
        if a.endpoints != b.endpoints {
            if b.resolution != Resolution::Static || identities_changed(a, b) {
                return Change::Full;
            }
            touched.insert(b.hostname.clone());
        }
    }
    let routes_same = old.virtual_services == new.virtual_services;
    match (routes_same, touched.is_empty()) {
        (true, true) => Change::None,
        (true, false) => Change::EndpointsOnly(touched),
        (false, true) if old.sidecars.is_empty() && new.sidecars.is_empty() => Change::RoutesOnly,
        (false, _) => Change::Full,
    }
}

/// Whether the endpoint identities (the SANs of the service's clusters) changed. Losing every
/// endpoint is not a change: without endpoints nothing is checked against the SANs, and the
/// next endpoint to appear is compared with the empty set.
fn identities_changed(a: &Service, b: &Service) -> bool {
    let new = MeshSnapshot::service_accounts(b);
    !new.is_empty() && new != MeshSnapshot::service_accounts(a)
}

/// Whether two services are equal in everything but their endpoints.
fn same_except_endpoints(a: &Service, b: &Service) -> bool {
    // Destructured so that a new field must be considered here.
    let Service {
        hostname,
        namespace,
        name,
        ports,
        addresses,
        export_to,
        mesh_external,
        resolution,
        selector,
        endpoints: _,
    } = a;
    *hostname == b.hostname
        && *namespace == b.namespace
        && *name == b.name
        && *ports == b.ports
        && *addresses == b.addresses
        && *export_to == b.export_to
        && *mesh_external == b.mesh_external
        && *resolution == b.resolution
        && *selector == b.selector
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::SnapshotOptions;

    fn snap(yaml: &str) -> MeshSnapshot {
        let out = mast_config::load_str(yaml, "test.yaml", &Default::default());
        assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
        MeshSnapshot::build(&out.resources, SnapshotOptions::default(), 1)
    }

    const SVC: &str = "
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
  selector: {app: web}
";

    fn pod(name: &str, ip: &str) -> String {
        format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default, labels: {{app: web}}}}\n\
             spec: {{containers: [{{name: c, image: i}}]}}\nstatus: {{podIP: {ip}}}\n"
        )
    }

    const VS: &str = "
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web]
  http: [{route: [{destination: {host: web}}]}]
";

    #[test]
    fn equal_snapshots_are_no_change() {
        let text = format!("{SVC}{}{VS}", pod("a", "10.0.0.1"));
        let (a, mut b) = (snap(&text), snap(&text));
        b.version = 2;
        assert_eq!(diff(&a, &b), Change::None);
        assert_eq!(diff(&a, &a.clone()), Change::None);
    }

    #[test]
    fn endpoint_change_is_endpoints_only() {
        let a = snap(&format!("{SVC}{}{VS}", pod("a", "10.0.0.1")));
        let b = snap(&format!(
            "{SVC}{}{}{VS}",
            pod("a", "10.0.0.1"),
            pod("b", "10.0.0.2")
        ));
        let host = Hostname::new_unchecked("web.default.svc.cluster.local");
        assert_eq!(
            diff(&a, &b),
            Change::EndpointsOnly(BTreeSet::from([host.clone()]))
        );
        // Losing every endpoint is still endpoint-only.
        let c = snap(&format!("{SVC}{VS}"));
        assert_eq!(diff(&a, &c), Change::EndpointsOnly(BTreeSet::from([host])));
    }

    #[test]
    fn config_or_service_change_is_full() {
        let base = format!("{SVC}{}{VS}", pod("a", "10.0.0.1"));
        let a = snap(&base);
        // A VirtualService edit (no Sidecar in the mesh).
        assert_eq!(
            diff(
                &a,
                &snap(&base.replace("http: [{route", "http: [{timeout: 1s, route"))
            ),
            Change::RoutesOnly
        );
        // A port edit on the service itself.
        assert_eq!(
            diff(&a, &snap(&base.replace("port: 80,", "port: 81,"))),
            Change::Full
        );
        // A targetPort edit moves the endpoints too, but also the inbound side: full.
        assert_eq!(
            diff(
                &a,
                &snap(&base.replace("targetPort: 8080", "targetPort: 9090"))
            ),
            Change::Full
        );
        // A new service.
        let more = format!("{base}---\n{}", SVC.replace("name: web,", "name: api,"));
        assert_eq!(diff(&a, &snap(&more)), Change::Full);
        // Other mesh options.
        let mut b = a.clone();
        b.options.root_namespace = "mesh-root".into();
        assert_eq!(diff(&a, &b), Change::Full);
    }

    #[test]
    fn endpoint_identity_change_is_full() {
        let sa = |name: &str, ip: &str, account: &str| {
            pod(name, ip).replace(
                "spec: {",
                &format!("spec: {{serviceAccountName: {account}, "),
            )
        };
        let a = snap(&format!("{SVC}{}{VS}", sa("a", "10.0.0.1", "web")));
        // Another pod with the same account: endpoints only.
        let b = snap(&format!(
            "{SVC}{}{}{VS}",
            sa("a", "10.0.0.1", "web"),
            sa("b", "10.0.0.2", "web")
        ));
        assert!(matches!(diff(&a, &b), Change::EndpointsOnly(_)));
        // A pod with a new account: the clusters' SANs change.
        let c = snap(&format!(
            "{SVC}{}{}{VS}",
            sa("a", "10.0.0.1", "web"),
            sa("b", "10.0.0.2", "other")
        ));
        assert_eq!(diff(&a, &c), Change::Full);
        assert_eq!(diff(&c, &b), Change::Full);
    }

    #[test]
    fn dns_endpoint_change_is_full() {
        let se = |addr: &str| {
            format!(
                "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: ext, namespace: default}}\n\
                 spec:\n  hosts: [ext.example.com]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  \
                 resolution: DNS\n  endpoints: [{{address: {addr}}}]\n"
            )
        };
        assert_eq!(
            diff(&snap(&se("a.example.com")), &snap(&se("b.example.com"))),
            Change::Full
        );
    }

    #[test]
    fn virtual_service_change_is_routes_only_unless_a_sidecar_exists() {
        let base = format!("{SVC}{}", pod("a", "10.0.0.1"));
        let a = snap(&format!("{base}{VS}"));
        let b = snap(&format!(
            "{base}{}",
            VS.replace("host: web}}]", "host: web, port: {number: 80}}}]")
        ));
        assert_ne!(a.all_virtual_services(), b.all_virtual_services());
        assert_eq!(diff(&a, &b), Change::RoutesOnly);
        // With an endpoint change as well: everything.
        let c = snap(&format!(
            "{base}{}{}",
            pod("b", "10.0.0.2"),
            VS.replace("host: web}}]", "host: web, port: {number: 80}}}]")
        ));
        assert_eq!(diff(&a, &c), Change::Full);
        // With a Sidecar in the mesh: everything.
        let sidecar = "\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: default}\nspec: {egress: [{hosts: [\"./*\"]}]}\n";
        let a2 = snap(&format!("{base}{VS}{sidecar}"));
        let b2 = snap(&format!(
            "{base}{}{sidecar}",
            VS.replace("host: web}}]", "host: web, port: {number: 80}}}]")
        ));
        assert_eq!(diff(&a2, &b2), Change::Full);
    }
}
