//! Istio's `virtualservice.GatewayAnalyzer`: each gateway a VirtualService names must exist
//! (IST0101 `gateway`), and for those in `spec.gateways` at least one of the VirtualService's
//! hosts must be served by that gateway (IST0132).
//!
//! `mesh` is always fine; `ns/name` and short names (in the VirtualService's namespace) name
//! a Gateway. Gateway server hosts follow Istio's `namespace/host` rules: `./h` is the
//! gateway's namespace, `*/h` and plain `h` any namespace, `*/*` everything, and `ns/h` only
//! VirtualServices of `ns`. As in Istio, a gateway that does not exist also serves no host,
//! so it gets IST0132 besides IST0101. Gateways named in `match` conditions are checked for
//! existence too (Istio checks only `spec.gateways`).

use mast_config::Resource;
use mast_config::networking::{Gateway, VirtualService};
use mast_core::Hostname;

use super::{MESH_GATEWAY, not_found, virtual_services};
use crate::messages::{
    REFERENCED_RESOURCE_NOT_FOUND, VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY, list,
};
use crate::{Analyzer, Context, Message};

/// Checks the gateways each VirtualService binds to.
pub(super) struct GatewayAnalyzer;

impl Analyzer for GatewayAnalyzer {
    fn name(&self) -> &'static str {
        "virtualservice.GatewayAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        for (r, vs) in virtual_services(ctx) {
            for (i, name) in vs.gateways.iter().enumerate() {
                check_gateway(ctx, r, vs, name, &format!("spec.gateways[{i}]"), out);
            }
            for (field, name) in match_gateways(vs) {
                if name != MESH_GATEWAY && find_gateway(ctx, r.namespace(), name).is_none() {
                    out.push(Message::new(
                        REFERENCED_RESOURCE_NOT_FOUND,
                        r,
                        &field,
                        not_found("gateway", name),
                    ));
                }
            }
        }
    }
}

/// `ns/name`, or a short name in `namespace`.
fn split_name<'a>(name: &'a str, namespace: &'a str) -> (&'a str, &'a str) {
    name.split_once('/').unwrap_or((namespace, name))
}

fn find_gateway<'a>(ctx: &Context<'a>, namespace: &str, name: &str) -> Option<&'a Resource> {
    let (ns, name) = split_name(name, namespace);
    ctx.find("Gateway", ns, name)
}

fn check_gateway(
    ctx: &Context<'_>,
    r: &Resource,
    vs: &VirtualService,
    name: &str,
    field: &str,
    out: &mut Vec<Message>,
) {
    if name == MESH_GATEWAY {
        return;
    }
    let found = find_gateway(ctx, r.namespace(), name);
    if found.is_none() {
        out.push(Message::new(
            REFERENCED_RESOURCE_NOT_FOUND,
            r,
            field,
            not_found("gateway", name),
        ));
    }
    let served = match found {
        // A Kubernetes Gateway API `Gateway`: its listeners are not modelled, so its hosts are not checked.
        Some(gw) if gw.as_gateway().is_none() => true,
        Some(gw) => gw
            .as_gateway()
            .is_some_and(|spec| serves_host(spec, gw.namespace(), &vs.hosts, r.namespace())),
        None => false,
    };
    if !served {
        let (gw_ns, gw_name) = split_name(name, r.namespace());
        let text = format!(
            "one or more host {} defined in VirtualService {}/{} not found in Gateway {gw_ns}/{gw_name}.",
            list(&vs.hosts),
            r.namespace(),
            r.name()
        );
        out.push(Message::new(
            VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY,
            r,
            field,
            text,
        ));
    }
}

/// The gateways named in match conditions, with their paths.
fn match_gateways(vs: &VirtualService) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    for (i, route) in vs.http.iter().enumerate() {
        for (j, m) in route.r#match.iter().enumerate() {
            out.extend(m.gateways.iter().enumerate().map(|(k, g)| {
                (
                    format!("spec.http[{i}].match[{j}].gateways[{k}]"),
                    g.as_str(),
                )
            }));
        }
    }
    for (i, route) in vs.tls.iter().enumerate() {
        for (j, m) in route.r#match.iter().enumerate() {
            out.extend(m.gateways.iter().enumerate().map(|(k, g)| {
                (
                    format!("spec.tls[{i}].match[{j}].gateways[{k}]"),
                    g.as_str(),
                )
            }));
        }
    }
    for (i, route) in vs.tcp.iter().enumerate() {
        for (j, m) in route.r#match.iter().enumerate() {
            out.extend(m.gateways.iter().enumerate().map(|(k, g)| {
                (
                    format!("spec.tcp[{i}].match[{j}].gateways[{k}]"),
                    g.as_str(),
                )
            }));
        }
    }
    out
}

/// Whether one of `vs_hosts` (of a VirtualService in `vs_ns`) matches a host of the gateway.
fn serves_host(gw: &Gateway, gw_ns: &str, vs_hosts: &[String], vs_ns: &str) -> bool {
    let hosts = gateway_hosts_for(gw, gw_ns, vs_ns);
    hosts.iter().any(|gh| {
        vs_hosts
            .iter()
            .any(|vh| gh.matches(&Hostname::new_unchecked(vh.as_str())))
    })
}

/// The server hosts of `gw` (in `gw_ns`) that apply to VirtualServices of `vs_ns`, without
/// their namespace part.
fn gateway_hosts_for(gw: &Gateway, gw_ns: &str, vs_ns: &str) -> Vec<Hostname> {
    let mut out = Vec::new();
    for server in &gw.servers {
        if server.hosts.iter().any(|h| h == "*/*") {
            out.push(Hostname::new_unchecked("*"));
            continue;
        }
        for h in &server.hosts {
            let host = match h.split_once('/') {
                Some((".", host)) if gw_ns == vs_ns => host,
                Some(("*", host)) => host,
                Some((ns, host)) if ns == vs_ns => host,
                Some(_) => continue,
                None => h.as_str(),
            };
            out.push(Hostname::new_unchecked(host));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{line, service, vs};
    use crate::testing::{only, run};

    fn gateway(name: &str, ns: &str, hosts: &[&str]) -> String {
        let hosts: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
        format!(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  selector:\n    istio: ingressgateway\n  servers:\n  - port: {{number: 80, name: http, protocol: HTTP}}\n    hosts: [{}]\n---\n",
            hosts.join(", ")
        )
    }

    fn bound(name: &str, ns: &str, hosts: &str, gateways: &str) -> String {
        let web = service("web", ns, &[80], "");
        format!(
            "{}  hosts: [{hosts}]\n  gateways: [{gateways}]\n  http:\n  - route:\n    - destination:\n        host: web\n---\n{web}",
            vs(name, ns)
        )
    }

    /// The messages with `code` about VirtualServices (the Gateway analyzers report too).
    fn vs_only<'a>(msgs: &'a [crate::Message], code: &str) -> Vec<&'a crate::Message> {
        only(msgs, code)
            .into_iter()
            .filter(|m| {
                m.resource
                    .as_ref()
                    .is_some_and(|r| r.kind == "VirtualService")
            })
            .collect()
    }

    fn texts<'a>(msgs: &'a [crate::Message], code: &str) -> Vec<(&'a str, u32)> {
        vs_only(msgs, code)
            .into_iter()
            .map(|m| (m.text.as_str(), line(m)))
            .collect()
    }

    #[test]
    fn missing_gateway() {
        let msgs = run(&bound(
            "v",
            "default",
            "a.example.com",
            "mesh, bookinfo-gateway",
        ));
        assert_eq!(
            texts(&msgs, "IST0101"),
            vec![(r#"Referenced gateway not found: "bookinfo-gateway""#, 8)]
        );
        // Istio also reports that the missing gateway serves none of the hosts.
        assert_eq!(
            texts(&msgs, "IST0132"),
            vec![(
                "one or more host [a.example.com] defined in VirtualService default/v not found in Gateway default/bookinfo-gateway.",
                8
            )]
        );
        let msgs = run(&bound("v", "default", "a.example.com", "istio-system/gw"));
        assert_eq!(
            texts(&msgs, "IST0101"),
            vec![(r#"Referenced gateway not found: "istio-system/gw""#, 8)]
        );
    }

    #[test]
    fn existing_gateways() {
        let gws = format!(
            "{}{}",
            gateway("gw", "default", &["*"]),
            gateway("gw", "istio-system", &["*"])
        );
        for refs in ["gw", "default/gw", "istio-system/gw", "mesh", "mesh, gw"] {
            let msgs = run(&format!(
                "{gws}{}",
                bound("v", "default", "a.example.com", refs)
            ));
            assert!(
                vs_only(&msgs, "IST0101").is_empty() && vs_only(&msgs, "IST0132").is_empty(),
                "{refs}: {msgs:?}"
            );
        }
        // A short name resolves in the VirtualService's namespace only.
        let msgs = run(&format!(
            "{}{}",
            gateway("gw", "istio-system", &["*"]),
            bound("v", "default", "a.example.com", "gw")
        ));
        assert_eq!(vs_only(&msgs, "IST0101").len(), 1);
    }

    #[test]
    fn match_level_gateways() {
        let routes = "  http:\n  - match:\n    - gateways: [mesh, gw, nope]\n    route:\n    - destination:\n        host: web\n";
        let web = service("web", "default", &[80], "");
        let yaml = format!(
            "{}{}  hosts: [a.example.com]\n  gateways: [mesh, gw]\n{routes}---\n{web}",
            gateway("gw", "default", &["*"]),
            vs("v", "default")
        );
        let msgs = run(&yaml);
        assert_eq!(
            texts(&msgs, "IST0101"),
            vec![(r#"Referenced gateway not found: "nope""#, 23)]
        );
        let yaml = yaml.replace(", nope", "");
        assert!(vs_only(&run(&yaml), "IST0101").is_empty());
    }

    #[test]
    fn host_not_found_in_gateway() {
        let gw = gateway("gw", "default", &["a.example.com", "*.wild.com"]);
        let msgs = run(&format!(
            "{gw}{}",
            bound("v", "default", "b.example.com, c.example.com", "gw")
        ));
        let expected = "one or more host [b.example.com c.example.com] defined in VirtualService default/v not found in Gateway default/gw.";
        assert_eq!(texts(&msgs, "IST0132"), vec![(expected, 20)]);
        for hosts in [
            "a.example.com",
            "b.example.com, a.example.com",
            "x.wild.com",
            "\"*.wild.com\"",
            "\"*\"",
        ] {
            let msgs = run(&format!("{gw}{}", bound("v", "default", hosts, "gw")));
            assert!(vs_only(&msgs, "IST0132").is_empty(), "{hosts}");
        }
    }

    #[test]
    fn gateway_host_namespaces() {
        let gw = gateway(
            "gw",
            "istio-system",
            &[
                "default/a.example.com",
                "./b.example.com",
                "*/c.example.com",
            ],
        );
        let case = |ns: &str, host: &str| {
            vs_only(
                &run(&format!("{gw}{}", bound("v", ns, host, "istio-system/gw"))),
                "IST0132",
            )
            .len()
        };
        assert_eq!(case("default", "a.example.com"), 0);
        assert_eq!(case("other", "a.example.com"), 1);
        assert_eq!(case("istio-system", "b.example.com"), 0);
        assert_eq!(case("default", "b.example.com"), 1);
        assert_eq!(case("other", "c.example.com"), 0);
        let all = gateway("gw", "istio-system", &["*/*"]);
        let msgs = run(&format!(
            "{all}{}",
            bound("v", "other", "anything.org", "istio-system/gw")
        ));
        assert!(vs_only(&msgs, "IST0132").is_empty());
    }
}
