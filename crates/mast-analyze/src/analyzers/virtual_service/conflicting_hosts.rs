//! Istio's `virtualservice.ConflictingMeshGatewayHostsAnalyzer`: two VirtualServices bound to
//! the mesh gateway (no `gateways`, or `mesh` among them) that claim the same host in the
//! same scope leave the sidecars' behaviour undefined (IST0109).
//!
//! As in Istio, each host is qualified in its VirtualService's namespace and scoped by
//! `exportTo`: `*` (or none) for every namespace, else one scope per namespace named (`.` is
//! the VirtualService's own). VirtualServices in the same scope conflict on an identical
//! host; one exported everywhere also conflicts with a scoped one whose host overlaps its own
//! (wildcards included). Each VirtualService gets one message, for its first conflicting
//! scoped host (`*/reviews.default.svc.cluster.local`, `foo/*.example.com`) in sorted order,
//! naming all the VirtualServices involved as `ns/name` joined by commas.

use std::collections::BTreeMap;

use mast_config::Resource;
use mast_core::Hostname;

use super::{MESH_GATEWAY, export_scopes, virtual_services};
use crate::context::resolve;
use crate::messages::CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS;
use crate::{Analyzer, Context, Message};

/// The scope of a VirtualService exported to every namespace.
const ALL: &str = "*";

/// Checks for hosts claimed by several VirtualServices on the mesh gateway.
pub(super) struct ConflictingMeshGatewayHostsAnalyzer;

/// (scope, qualified host) -> the VirtualServices claiming it, in load order.
type ScopedHosts<'a> = BTreeMap<(String, Hostname), Vec<&'a Resource>>;

impl Analyzer for ConflictingMeshGatewayHostsAnalyzer {
    fn name(&self) -> &'static str {
        "virtualservice.ConflictingMeshGatewayHostsAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let hosts = mesh_gateway_hosts(ctx);
        let mut reported: Vec<&Resource> = Vec::new();
        for ((scope, host), claimed) in &hosts {
            let mut involved = claimed.clone();
            if scope != ALL {
                for ((other_scope, other), vss) in &hosts {
                    if other_scope == ALL && host.matches(other) {
                        add_all(&mut involved, vss);
                    }
                }
            }
            if involved.len() < 2 {
                continue;
            }
            let names: Vec<String> = involved
                .iter()
                .map(|r| format!("{}/{}", r.namespace(), r.name()))
                .collect();
            let text = format!(
                "The VirtualServices {} associated with mesh gateway define the same host {scope}/{host} which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource.",
                names.join(",")
            );
            for r in involved {
                if reported.iter().any(|seen| std::ptr::eq(*seen, r)) {
                    continue;
                }
                reported.push(r);
                out.push(Message::new(
                    CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS,
                    r,
                    "metadata.name",
                    text.clone(),
                ));
            }
        }
    }
}

/// Appends the resources of `more` not already in `list`.
fn add_all<'a>(list: &mut Vec<&'a Resource>, more: &[&'a Resource]) {
    for r in more {
        if !list.iter().any(|seen| std::ptr::eq(*seen, *r)) {
            list.push(r);
        }
    }
}

/// The scoped hosts of every VirtualService bound to the mesh gateway.
fn mesh_gateway_hosts<'a>(ctx: &Context<'a>) -> ScopedHosts<'a> {
    let mut hosts = ScopedHosts::new();
    for (r, vs) in virtual_services(ctx) {
        if !(vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == MESH_GATEWAY)) {
            continue;
        }
        let scopes = if vs.export_to.is_empty() || vs.export_to.iter().any(|e| e == ALL) {
            vec![ALL.to_owned()]
        } else {
            export_scopes(&vs.export_to, r.namespace())
        };
        for scope in scopes {
            for h in &vs.hosts {
                let claimed = hosts
                    .entry((scope.clone(), resolve(h, r.namespace())))
                    .or_default();
                add_all(claimed, &[r]);
            }
        }
    }
    hosts
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{line, service, vs};
    use crate::testing::{only, run};

    fn mesh_vs(name: &str, ns: &str, hosts: &str, extra: &str) -> String {
        format!(
            "{}  hosts: [{hosts}]\n{extra}  http:\n  - route:\n    - destination:\n        host: web.default.svc.cluster.local\n---\n",
            vs(name, ns)
        )
    }

    fn conflicts(yaml: &str) -> Vec<(String, String)> {
        let yaml = format!("{}{yaml}", service("web", "default", &[80], ""));
        let msgs = run(&yaml);
        only(&msgs, "IST0109")
            .iter()
            .map(|m| {
                (
                    m.resource
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    m.text.clone(),
                )
            })
            .collect()
    }

    fn text(vss: &str, host: &str) -> String {
        format!(
            "The VirtualServices {vss} associated with mesh gateway define the same host {host} which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource."
        )
    }

    #[test]
    fn same_host_on_mesh() {
        let yaml = format!(
            "{}{}",
            mesh_vs("a", "default", "reviews", ""),
            mesh_vs(
                "b",
                "default",
                "reviews.default.svc.cluster.local",
                "  gateways: [mesh, gw]\n"
            )
        );
        let t = text("default/a,default/b", "*/reviews.default.svc.cluster.local");
        assert_eq!(
            conflicts(&yaml),
            vec![
                ("VirtualService default/a".to_owned(), t.clone()),
                ("VirtualService default/b".to_owned(), t)
            ]
        );
        let msgs = run(&format!("{}{yaml}", service("web", "default", &[80], "")));
        assert_eq!(
            only(&msgs, "IST0109")
                .iter()
                .map(|m| line(m))
                .collect::<Vec<_>>(),
            vec![14, 26]
        );
    }

    #[test]
    fn no_conflict() {
        // Different hosts; a short name in different namespaces; one bound to a gateway only.
        let yaml = format!(
            "{}{}{}{}",
            mesh_vs("a", "default", "reviews", ""),
            mesh_vs("b", "default", "ratings", ""),
            mesh_vs("c", "other", "reviews", ""),
            mesh_vs("d", "default", "reviews", "  gateways: [gw]\n")
        );
        assert!(conflicts(&yaml).is_empty());
    }

    #[test]
    fn export_to_scopes() {
        // Scoped to different namespaces: no conflict.
        let apart = format!(
            "{}{}",
            mesh_vs("p", "foo", "\"*.b\"", "  exportTo: [foo]\n"),
            mesh_vs("p", "bar", "\"*.b\"", "  exportTo: [\".\"]\n")
        );
        assert!(conflicts(&apart).is_empty());
        // The same namespace named two ways.
        let same = format!(
            "{}{}",
            mesh_vs("p", "foo", "x.com", "  exportTo: [\".\"]\n"),
            mesh_vs("p", "bar", "x.com", "  exportTo: [foo]\n")
        );
        assert_eq!(conflicts(&same)[0].1, text("foo/p,bar/p", "foo/x.com"));
        // Exported everywhere conflicts with a scoped one, wildcards overlapping.
        let wide = format!(
            "{}{}",
            mesh_vs("d", "foo", "\"*.productpage.d\"", "  exportTo: [\".\"]\n"),
            mesh_vs("d", "bar", "\"*.d\"", "  exportTo: [\"*\"]\n")
        );
        let t = text("foo/d,bar/d", "foo/*.productpage.d");
        assert_eq!(
            conflicts(&wide),
            vec![
                ("VirtualService bar/d".to_owned(), t.clone()),
                ("VirtualService foo/d".to_owned(), t)
            ]
        );
    }
}
