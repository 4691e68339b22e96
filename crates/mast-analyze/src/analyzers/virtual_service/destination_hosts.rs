//! Istio's `virtualservice.DestinationHostAnalyzer`: every route and mirror destination
//! must name a service the VirtualService can see (IST0101 `host` / `mirror host`), with a
//! port the service has (IST0101 `host:port`), and must pick a port when the service has
//! several (IST0112).
//!
//! A host is looked up qualified with the VirtualService's namespace: exactly (a Service or
//! a ServiceEntry host, wildcard hosts included), then inside wildcard ServiceEntry hosts.
//! Visibility follows Istio: a service exported everywhere is always seen; otherwise it must
//! be exported to the namespaces the VirtualService is exported to (its own namespace when
//! it has no `exportTo`), and a wildcard host to the VirtualService's namespace.

use mast_core::Hostname;

use super::{
    AnnotatedDestination, export_scopes, exported_to, mirror_destinations, not_found,
    route_destinations, virtual_services,
};
use crate::context::{ServiceInfo, resolve};
use crate::messages::{
    REFERENCED_RESOURCE_NOT_FOUND, VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED, list, q,
};
use crate::{Analyzer, Context, Message};
use mast_config::Resource;

/// Checks the destination hosts and ports of each VirtualService.
pub(super) struct DestinationHostAnalyzer;

impl Analyzer for DestinationHostAnalyzer {
    fn name(&self) -> &'static str {
        "virtualservice.DestinationHostAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        for (r, vs) in virtual_services(ctx) {
            let dests = route_destinations(vs)
                .into_iter()
                .chain(mirror_destinations(vs));
            for d in dests {
                match find_service(ctx, r.namespace(), &vs.export_to, &d.dest.host) {
                    Some(svc) => check_port(r, &d, svc, out),
                    None => {
                        let reftype = if d.mirror { "mirror host" } else { "host" };
                        out.push(Message::new(
                            REFERENCED_RESOURCE_NOT_FOUND,
                            r,
                            &d.at("host"),
                            not_found(reftype, &d.dest.host),
                        ));
                    }
                }
            }
        }
    }
}

/// The service `host` (as written in a VirtualService of namespace `ns` exported to
/// `export_to`) refers to, if the VirtualService can see one.
fn find_service<'c, 'a>(
    ctx: &'c Context<'a>,
    ns: &str,
    export_to: &[String],
    host: &str,
) -> Option<&'c ServiceInfo<'a>> {
    let fqdn: Hostname = resolve(host, ns);
    let scopes = export_scopes(export_to, ns);
    if let Some(s) = ctx
        .services_for(&fqdn)
        .find(|s| scopes.iter().any(|scope| exported_to(s, scope)))
    {
        return Some(s);
    }
    ctx.services()
        .iter()
        .find(|s| s.host.is_wildcard() && fqdn.subset_of(&s.host) && exported_to(s, ns))
}

/// IST0112 when no port is chosen among several; IST0101 `host:port` when the chosen port
/// is not one of the service's.
fn check_port(
    r: &Resource,
    d: &AnnotatedDestination<'_>,
    svc: &ServiceInfo<'_>,
    out: &mut Vec<Message>,
) {
    let Some(port) = &d.dest.port else {
        if svc.ports.len() > 1 {
            let numbers: Vec<u16> = svc.ports.iter().map(|p| p.number).collect();
            let text = format!(
                "This VirtualService routes to a service {} that exposes multiple ports {}. Specifying a port in the destination is required to disambiguate.",
                q(&d.dest.host),
                list(&numbers)
            );
            out.push(Message::new(
                VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED,
                r,
                &d.at("host"),
                text,
            ));
        }
        return;
    };
    let number = port.number.unwrap_or(0);
    if !svc.ports.iter().any(|p| i64::from(p.number) == number) {
        let value = format!("{}:{number}", d.dest.host);
        out.push(Message::new(
            REFERENCED_RESOURCE_NOT_FOUND,
            r,
            &d.at("port.number"),
            not_found("host:port", &value),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{line, service, vs};
    use crate::testing::{only, run};

    fn route(host: &str, extra: &str) -> String {
        format!("  http:\n  - route:\n    - destination:\n        host: {host}\n{extra}")
    }

    #[test]
    fn missing_host() {
        let yaml = format!(
            "{}{}{}",
            service("reviews", "default", &[80], ""),
            vs("r", "default"),
            route("nginx-svc-3.default.svc.cluster.local", "")
        );
        let msgs = run(&yaml);
        let found = only(&msgs, "IST0101");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].text,
            r#"Referenced host not found: "nginx-svc-3.default.svc.cluster.local""#
        );
        assert_eq!(found[0].to_string().split(' ').nth(3), Some("default/r"));
        assert_eq!(line(found[0]), 20);
    }

    #[test]
    fn existing_hosts_short_and_qualified() {
        let mut yaml = service("reviews", "default", &[80], "");
        yaml += &format!("{}{}---\n", vs("a", "default"), route("reviews", ""));
        yaml += &format!(
            "{}{}---\n",
            vs("b", "default"),
            route("reviews.default.svc.cluster.local", "")
        );
        yaml += &format!(
            "{}{}",
            vs("c", "other"),
            route("reviews.default.svc.cluster.local", "")
        );
        let msgs = run(&yaml);
        assert!(only(&msgs, "IST0101").is_empty(), "{msgs:?}");
        // A short name resolves in the VirtualService's own namespace.
        let other = format!(
            "{}{}{}",
            service("reviews", "default", &[80], ""),
            vs("d", "other"),
            route("reviews", "")
        );
        let msgs = run(&other);
        assert_eq!(
            only(&msgs, "IST0101")[0].text,
            r#"Referenced host not found: "reviews""#
        );
    }

    #[test]
    fn mirror_hosts() {
        let mirror = "    mirror:\n      host: bogus\n    mirrors:\n    - destination:\n        host: bogus2\n";
        let yaml = format!(
            "{}{}{}",
            service("reviews", "default", &[80], ""),
            vs("m", "default"),
            route("reviews", mirror)
        );
        let msgs = run(&yaml);
        let found = only(&msgs, "IST0101");
        let texts: Vec<(&str, u32)> = found.iter().map(|m| (m.text.as_str(), line(m))).collect();
        assert_eq!(
            texts,
            vec![
                (r#"Referenced mirror host not found: "bogus""#, 22),
                (r#"Referenced mirror host not found: "bogus2""#, 25)
            ]
        );
        let good = "    mirror:\n      host: reviews\n";
        let yaml = format!(
            "{}{}{}",
            service("reviews", "default", &[80], ""),
            vs("m", "default"),
            route("reviews", good)
        );
        assert!(only(&run(&yaml), "IST0101").is_empty());
    }

    #[test]
    fn port_selector_required() {
        let yaml = format!(
            "{}{}{}",
            service("x", "default", &[80, 8080], ""),
            vs("p", "default"),
            route("x", "")
        );
        let msgs = run(&yaml);
        let found = only(&msgs, "IST0112");
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].text,
            r#"This VirtualService routes to a service "x" that exposes multiple ports [80 8080]. Specifying a port in the destination is required to disambiguate."#
        );
        assert_eq!(line(found[0]), 22);
        // With a port, or a single-port service: nothing.
        let port = "        port:\n          number: 8080\n";
        let yaml = format!(
            "{}{}{}",
            service("x", "default", &[80, 8080], ""),
            vs("p", "default"),
            route("x", port)
        );
        assert!(
            run(&yaml)
                .iter()
                .all(|m| m.kind.code != "IST0112" && m.kind.code != "IST0101")
        );
        let yaml = format!(
            "{}{}{}",
            service("x", "default", &[80], ""),
            vs("p", "default"),
            route("x", "")
        );
        assert!(only(&run(&yaml), "IST0112").is_empty());
    }

    #[test]
    fn port_selector_required_for_tcp_and_mirror() {
        let tcp = "  tcp:\n  - route:\n    - destination:\n        host: x\n";
        let yaml = format!(
            "{}{}{tcp}",
            service("x", "default", &[80, 8080], ""),
            vs("t", "default")
        );
        let msgs = run(&yaml);
        assert_eq!(only(&msgs, "IST0112").len(), 1);
        let mirror = "        port:\n          number: 80\n    mirror:\n      host: x\n";
        let yaml = format!(
            "{}{}{}",
            service("x", "default", &[80, 8080], ""),
            vs("m", "default"),
            route("x", mirror)
        );
        let msgs = run(&yaml);
        let found = only(&msgs, "IST0112");
        assert_eq!(found.len(), 1);
        assert_eq!(line(found[0]), 26);
    }

    #[test]
    fn unknown_port() {
        let port = "        port:\n          number: 999\n";
        let yaml = format!(
            "{}{}{}",
            service("reviews", "default", &[42], ""),
            vs("p", "default"),
            route("reviews", port)
        );
        let msgs = run(&yaml);
        let found = only(&msgs, "IST0101");
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].text,
            r#"Referenced host:port not found: "reviews:999""#
        );
        assert_eq!(line(found[0]), 22);
    }

    #[test]
    fn service_export_to() {
        let anno = "  annotations:\n    networking.istio.io/exportTo: banana\n";
        let target = route("details.default.svc.cluster.local", "");
        let yaml = format!(
            "{}{}{target}---\n{}{target}",
            service("details", "default", &[80], anno),
            vs("x", "istio-system"),
            vs("y", "banana")
        );
        let msgs = run(&yaml);
        let found = only(&msgs, "IST0101");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].resource.as_ref().map(|r| r.namespace.as_str()),
            Some("istio-system")
        );
        // `.` exports to the service's own namespace.
        let anno = "  annotations:\n    networking.istio.io/exportTo: \".,hello1\"\n";
        let target = route("hello.hello.svc.cluster.local", "");
        let yaml = format!(
            "{}{}{target}---\n{}{target}",
            service("hello", "hello", &[80], anno),
            vs("a", "hello"),
            vs("b", "hello1")
        );
        assert!(only(&run(&yaml), "IST0101").is_empty());
    }

    #[test]
    fn virtual_service_export_to() {
        let anno = "  annotations:\n    networking.istio.io/exportTo: \".\"\n";
        let target = route("hello", "");
        let bogus = format!(
            "{}{}  exportTo: [bogus]\n{target}",
            service("hello", "hello", &[80], anno),
            vs("a", "hello")
        );
        let found = run(&bogus);
        assert_eq!(
            only(&found, "IST0101")[0].text,
            r#"Referenced host not found: "hello""#
        );
        let local = format!(
            "{}{}  exportTo: [\".\"]\n{target}",
            service("hello", "hello", &[80], anno),
            vs("a", "hello")
        );
        assert!(only(&run(&local), "IST0101").is_empty());
    }

    const SE: &str = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: se\n  namespace: default\nspec:\n  hosts: [external-reviews.org, \"*.eu.bookinfo.com\"]\n  ports:\n  - {number: 80, name: http, protocol: HTTP}\n  resolution: DNS\n---\n";

    #[test]
    fn service_entry_hosts_and_wildcards() {
        for (i, host) in [
            "external-reviews.org",
            "reviews.eu.bookinfo.com",
            "\"*.eu.bookinfo.com\"",
            "\"*.x.eu.bookinfo.com\"",
        ]
        .iter()
        .enumerate()
        {
            let yaml = format!("{SE}{}{}", vs(&format!("v{i}"), "default"), route(host, ""));
            assert!(only(&run(&yaml), "IST0101").is_empty(), "{host}");
        }
        for host in ["other.bookinfo.com", "\"*.bookinfo.com\""] {
            let yaml = format!("{SE}{}{}", vs("v", "default"), route(host, ""));
            assert_eq!(only(&run(&yaml), "IST0101").len(), 1, "{host}");
        }
    }

    #[test]
    fn service_entry_export_to() {
        let se = |ns: &str, export: &str| {
            format!(
                "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: se\n  namespace: {ns}\nspec:\n  hosts: [abc.bookinfo.com]\n  exportTo: [{export}]\n  ports:\n  - {{number: 80, name: http, protocol: HTTP}}\n  resolution: DNS\n---\n"
            )
        };
        let target = route("abc.bookinfo.com", "");
        let seen = format!("{}{}{target}", se("other", "default"), vs("v", "default"));
        assert!(only(&run(&seen), "IST0101").is_empty());
        let hidden = format!("{}{}{target}", se("other", "\".\""), vs("v", "default"));
        assert_eq!(only(&run(&hidden), "IST0101").len(), 1);
    }
}
