//! Gateway checks: IST0101 for a selector that selects no workload (Istio's
//! `gateway/gateway.go` reports `Referenced selector not found`, not IST0127), and IST0145
//! ConflictingGateways (Istio's `gateway/conflictinggateway.go`): two Gateways on the same
//! gateway workload and port that declare the same host with the same bind address.
//!
//! A Gateway's selector matches workloads in every namespace, as in Istio by default.

use std::collections::BTreeSet;

use mast_config::Resource;
use mast_config::networking::gateway::{Gateway, Server};

use super::sidecar::{first_label_path, selector_string};
use crate::context::selects;
use crate::messages::{CONFLICTING_GATEWAYS, REFERENCED_RESOURCE_NOT_FOUND, q};
use crate::{Analyzer, Context, Message};

/// The analyzers of this module, in the order they run.
pub(crate) fn analyzers() -> Vec<Box<dyn Analyzer>> {
    vec![
        Box::new(SelectorAnalyzer),
        Box::new(ConflictingGatewayAnalyzer),
    ]
}

fn gateways<'a>(ctx: &Context<'a>) -> impl Iterator<Item = (&'a Resource, &'a Gateway)> + 'a {
    ctx.of_kind("Gateway")
        .filter_map(|r| r.as_gateway().map(|g| (r, g)))
}

/// Reports Gateways whose selector matches no workload in any namespace.
pub struct SelectorAnalyzer;

impl Analyzer for SelectorAnalyzer {
    fn name(&self) -> &'static str {
        "gateway.IngressGatewayPortAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        for (r, gw) in gateways(ctx) {
            if ctx
                .workloads()
                .iter()
                .any(|w| selects(&gw.selector, w.labels))
            {
                continue;
            }
            let field = first_label_path("spec.selector", &gw.selector);
            let text = format!(
                "Referenced selector not found: {}",
                q(&selector_string(&gw.selector))
            );
            out.push(Message::new(REFERENCED_RESOURCE_NOT_FOUND, r, &field, text));
        }
    }
}

/// Reports Gateways that share a gateway workload, a port and a host with another.
pub struct ConflictingGatewayAnalyzer;

impl Analyzer for ConflictingGatewayAnalyzer {
    fn name(&self) -> &'static str {
        "gateway.ConflictingGatewayAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let all: Vec<(&Resource, &Gateway)> = gateways(ctx).collect();
        for (r, gw) in &all {
            let peers: Vec<&(&Resource, &Gateway)> = all
                .iter()
                .filter(|(other, og)| !std::ptr::eq(*other, *r) && same_workload(ctx, gw, og))
                .collect();
            for (i, server) in gw.servers.iter().enumerate() {
                let Some(port) = server.port.as_ref().and_then(|p| p.number) else {
                    continue;
                };
                let mut names = BTreeSet::new();
                for (other, og) in &peers {
                    if og.servers.iter().any(|s| {
                        s.port.as_ref().and_then(|p| p.number) == Some(port)
                            && duplicate_host(server, s)
                    }) {
                        names.insert(format!("{}/{}", other.namespace(), other.name()));
                    }
                }
                if names.is_empty() {
                    continue;
                }
                let names: Vec<String> = names.into_iter().collect();
                let text = format!(
                    "Conflict with gateways {} (workload selector {}, port {port}, hosts {}).",
                    names.join(","),
                    selector_string(&gw.selector),
                    server.hosts.join(",")
                );
                out.push(Message::new(
                    CONFLICTING_GATEWAYS,
                    r,
                    &format!("spec.servers[{i}]"),
                    text,
                ));
            }
        }
    }
}

/// Whether two Gateways apply to the same gateway workload: equal selectors, or some
/// workload that both select. (Istio compares selector strings, and for a selector that
/// contains the other looks for a pod both select; any common pod is the general case.)
fn same_workload(ctx: &Context<'_>, a: &Gateway, b: &Gateway) -> bool {
    a.selector == b.selector
        || ctx
            .workloads()
            .iter()
            .any(|w| selects(&a.selector, w.labels) && selects(&b.selector, w.labels))
}

/// Whether `a` declares a host that `b` declares too, with the same bind address: Istio's
/// `model.CheckDuplicates`, which compares hosts as written (`*.example.com` does not
/// clash with `foo.example.com`: the more specific host wins).
fn duplicate_host(a: &Server, b: &Server) -> bool {
    a.bind == b.bind && a.hosts.iter().any(|h| b.hosts.contains(h))
}

#[cfg(test)]
mod tests {
    use crate::testing::{only, run};

    const INGRESS: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: ingress-1\n  namespace: istio-system\n  labels: {istio: ingressgateway, app: istio-ingressgateway}\nspec:\n  containers: [{name: istio-proxy, image: x}]\n---\n";

    fn gateway(name: &str, selector: &str, port: u16, hosts: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n  selector:\n{selector}  servers:\n  - port: {{number: {port}, name: p, protocol: HTTP}}\n    hosts: [{hosts}]\n---\n"
        )
    }

    const SEL: &str = "    istio: ingressgateway\n";

    #[test]
    fn selector_without_workload() {
        let yaml = gateway(
            "a",
            "    istio: egressgateway\n    app: egress\n",
            80,
            "a.example.com",
        );
        let msgs = run(&format!("{INGRESS}{yaml}"));
        let found = only(&msgs, "IST0101");
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].text,
            "Referenced selector not found: \"app=egress,istio=egressgateway\""
        );
        assert_eq!(found[0].reference.as_ref().map(|o| o.line), Some(18));
    }

    #[test]
    fn selector_matches_a_workload_in_another_namespace() {
        let msgs = run(&format!(
            "{INGRESS}{}",
            gateway("a", SEL, 80, "a.example.com")
        ));
        assert!(only(&msgs, "IST0101").is_empty(), "{msgs:?}");
    }

    #[test]
    fn same_host_same_port_conflicts() {
        let yaml = format!(
            "{INGRESS}{}{}",
            gateway("alpha", SEL, 80, "foo.bar, x.bar"),
            gateway("beta", SEL, 80, "foo.bar")
        );
        let msgs = run(&yaml);
        let found = only(&msgs, "IST0145");
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0].text,
            "Conflict with gateways shop/beta (workload selector istio=ingressgateway, port 80, hosts foo.bar,x.bar)."
        );
        assert_eq!(found[0].reference.as_ref().map(|o| o.line), Some(19));
        assert_eq!(
            found[1].text,
            "Conflict with gateways shop/alpha (workload selector istio=ingressgateway, port 80, hosts foo.bar)."
        );
    }

    #[test]
    fn sub_selector_on_the_same_pod_conflicts() {
        let wide = "    istio: ingressgateway\n    app: istio-ingressgateway\n";
        let yaml = format!(
            "{INGRESS}{}{}",
            gateway("alpha", SEL, 80, "foo.bar"),
            gateway("beta", wide, 80, "foo.bar")
        );
        assert_eq!(only(&run(&yaml), "IST0145").len(), 2);
    }

    #[test]
    fn no_conflict_on_other_port_host_or_workload() {
        let cases = [
            (
                gateway("alpha", SEL, 80, "foo.bar"),
                gateway("beta", SEL, 443, "foo.bar"),
            ),
            (
                gateway("alpha", SEL, 80, "foo.bar"),
                gateway("beta", SEL, 80, "bar.bar"),
            ),
            (
                gateway("alpha", SEL, 80, "\"*.bar\""),
                gateway("beta", SEL, 80, "foo.bar"),
            ),
            (
                gateway("alpha", SEL, 80, "foo.bar"),
                gateway("beta", "    istio: other\n", 80, "foo.bar"),
            ),
        ];
        for (a, b) in cases {
            let msgs = run(&format!("{INGRESS}{a}{b}"));
            assert!(only(&msgs, "IST0145").is_empty(), "{a}{b}: {msgs:?}");
        }
    }
}
