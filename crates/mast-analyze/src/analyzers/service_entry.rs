//! ServiceEntry checks: IST0134 ServiceEntryAddressesRequired (Istio's
//! `serviceentry/protocoladdresses.go`), and [`services`], the services a ServiceEntry
//! declares, which the context indexes next to Kubernetes Services.

use mast_config::Resource;
use mast_config::networking::ServiceEntry;

use crate::context::{ServiceInfo, ServicePort, resolve};
use crate::messages::SERVICE_ENTRY_ADDRESSES_REQUIRED;
use crate::{Analyzer, Context, Message};

/// The analyzers of this module, in the order they run.
pub(crate) fn analyzers() -> Vec<Box<dyn Analyzer>> {
    vec![Box::new(ProtocolAddressesAnalyzer)]
}

/// The services a ServiceEntry declares: one per host, qualified in its namespace.
pub(crate) fn services<'a>(r: &'a Resource, se: &'a ServiceEntry) -> Vec<ServiceInfo<'a>> {
    let ports: Vec<ServicePort> = se
        .ports
        .iter()
        .map(|p| ServicePort {
            number: p.number.and_then(|n| u16::try_from(n).ok()).unwrap_or(0),
            name: p.name.clone().unwrap_or_default(),
            protocol: p.protocol.as_deref().unwrap_or("").to_ascii_uppercase(),
        })
        .collect();
    se.hosts
        .iter()
        .map(|h| ServiceInfo {
            host: resolve(h, r.namespace()),
            namespace: r.namespace(),
            resource: r,
            ports: ports.clone(),
            export_to: se.export_to.clone(),
        })
        .collect()
}

/// Warns about ServiceEntries without `addresses` that serve TCP (or unnamed-protocol)
/// ports: without a virtual IP the sidecar cannot tell their traffic apart by port alone.
///
/// Istio skips the check when its mesh config turns on DNS capture with address
/// auto-allocation, or when the entry's status already carries allocated addresses;
/// neither exists in a folder of YAML, so Mast always checks.
pub struct ProtocolAddressesAnalyzer;

impl Analyzer for ProtocolAddressesAnalyzer {
    fn name(&self) -> &'static str {
        "serviceentry.Analyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        for r in ctx.of_kind("ServiceEntry") {
            let Some(se) = r.as_service_entry() else {
                continue;
            };
            if !se.addresses.is_empty() {
                continue;
            }
            for (i, p) in se.ports.iter().enumerate() {
                let protocol = p.protocol.as_deref().unwrap_or("");
                if protocol.is_empty() || protocol.eq_ignore_ascii_case("TCP") {
                    out.push(Message::new(
                        SERVICE_ENTRY_ADDRESSES_REQUIRED,
                        r,
                        &format!("spec.ports[{i}]"),
                        "ServiceEntry addresses are required for this protocol.",
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Context;
    use crate::context::resolve;
    use crate::testing::{only, run};

    fn se(addresses: &str, protocol: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: db\n  namespace: shop\nspec:\n  hosts:\n  - db.example.com\n{addresses}  ports:\n  - number: 5432\n    name: pg\n{protocol}  resolution: DNS\n"
        )
    }

    #[test]
    fn tcp_port_without_addresses() {
        for protocol in ["    protocol: TCP\n", "    protocol: tcp\n", ""] {
            let msgs = run(&se("", protocol));
            let found = only(&msgs, "IST0134");
            assert_eq!(found.len(), 1, "{protocol}");
            assert_eq!(
                found[0].text,
                "ServiceEntry addresses are required for this protocol."
            );
            assert_eq!(found[0].reference.as_ref().map(|o| o.line), Some(10));
            assert_eq!(
                found[0].to_string(),
                "Warning [IST0134] (ServiceEntry shop/db t.yaml:10) ServiceEntry addresses are required for this protocol."
            );
        }
    }

    #[test]
    fn addresses_or_http_are_fine() {
        assert!(
            only(
                &run(&se("  addresses:\n  - 10.1.2.3\n", "    protocol: TCP\n")),
                "IST0134"
            )
            .is_empty()
        );
        assert!(only(&run(&se("", "    protocol: HTTP\n")), "IST0134").is_empty());
        assert!(only(&run(&se("", "    protocol: TLS\n")), "IST0134").is_empty());
    }

    #[test]
    fn one_message_per_tcp_port() {
        let yaml = se("", "    protocol: TCP\n").replace(
            "  resolution: DNS\n",
            "  - number: 80\n    name: http\n    protocol: HTTP\n  - number: 9000\n    name: raw\n  resolution: DNS\n",
        );
        assert_eq!(only(&run(&yaml), "IST0134").len(), 2);
    }

    #[test]
    fn declared_services() {
        let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: ext\n  namespace: shop\nspec:\n  hosts: [api.example.com, internal]\n  addresses: [10.0.0.1]\n  exportTo: [\".\"]\n  ports:\n  - {number: 443, name: https, protocol: https}\n";
        let out = mast_config::load_str(yaml, "t.yaml", &mast_config::LoadOptions::default());
        let ctx = Context::new(&out.resources);
        let hosts: Vec<&str> = ctx.services().iter().map(|s| s.host.as_str()).collect();
        assert_eq!(
            hosts,
            ["api.example.com", "internal.shop.svc.cluster.local"]
        );
        let svc = ctx
            .services_for(&resolve("api.example.com", "x"))
            .next()
            .expect("indexed");
        assert_eq!(svc.ports[0].number, 443);
        assert_eq!(svc.ports[0].protocol, "HTTPS");
        assert_eq!(svc.export_to, ["."]);
        assert!(svc.visible_from("shop"));
        assert!(!svc.visible_from("other"));
    }
}
