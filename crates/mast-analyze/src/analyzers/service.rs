//! Kubernetes Service checks: IST0118 PortNameIsNotUnderNamingConvention (Istio's
//! `service/portname.go`) and IST0116 DeploymentAssociatedToMultipleServices (Istio's
//! `deployment/services.go`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServicePort;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::context::{SYSTEM_NAMESPACES, selects};
use crate::messages::{
    DEPLOYMENT_ASSOCIATED_TO_MULTIPLE_SERVICES, PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION, list,
};
use crate::{Analyzer, Context, Message};

/// Protocols Istio recognises as a port name prefix (`http`, `http-web`, `grpc-web`, …).
const PROTOCOLS: &[&str] = &[
    "grpc",
    "grpc-web",
    "http",
    "http_proxy",
    "http2",
    "https",
    "tcp",
    "tls",
    "udp",
    "mongo",
    "redis",
    "mysql",
];

/// Ports that default to TCP when their name says nothing.
const WELL_KNOWN_PORTS: &[i32] = &[3306, 27017];

/// Checks service port names for Istio's protocol naming convention.
pub struct PortNameAnalyzer;

/// The protocol a port's name (or `appProtocol`, or `protocol: UDP/SCTP`) declares, if any.
pub fn port_protocol(port: &ServicePort) -> Option<String> {
    let declared = port
        .protocol
        .as_deref()
        .unwrap_or("TCP")
        .to_ascii_uppercase();
    if declared == "UDP" || declared == "SCTP" {
        return Some(declared);
    }
    if let Some(app) = port.app_protocol.as_deref().filter(|a| !a.is_empty()) {
        return Some(app.to_ascii_uppercase());
    }
    let name = port.name.as_deref().unwrap_or("").to_ascii_lowercase();
    if name.starts_with("grpc-web") {
        return Some("GRPC-WEB".into());
    }
    let prefix = name.split('-').next().unwrap_or("");
    if PROTOCOLS.contains(&prefix) {
        return Some(prefix.to_ascii_uppercase());
    }
    WELL_KNOWN_PORTS.contains(&port.port).then(|| "TCP".into())
}

fn target_port(p: &ServicePort) -> String {
    match &p.target_port {
        Some(IntOrString::Int(n)) => n.to_string(),
        Some(IntOrString::String(s)) => s.clone(),
        None => "0".into(),
    }
}

impl Analyzer for PortNameAnalyzer {
    fn name(&self) -> &'static str {
        "service.PortNameAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        for r in ctx.of_kind("Service") {
            let Some(spec) = r.as_service().and_then(|s| s.spec.as_ref()) else {
                continue;
            };
            if SYSTEM_NAMESPACES.contains(&r.namespace())
                || spec.type_.as_deref() == Some("ExternalName")
            {
                continue;
            }
            for (i, p) in spec.ports.iter().flatten().enumerate() {
                if port_protocol(p).is_none() {
                    out.push(Message::new(
                        PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION,
                        r,
                        &format!("spec.ports[{i}]"),
                        format!(
                            "Port name {} (port: {}, targetPort: {}) doesn't follow the naming convention of Istio port.",
                            p.name.as_deref().unwrap_or(""),
                            p.port,
                            target_port(p)
                        ),
                    ));
                }
            }
        }
    }
}

/// Checks that the services selecting one Deployment agree on each port's protocol.
pub struct DeploymentServicesAnalyzer;

impl Analyzer for DeploymentServicesAnalyzer {
    fn name(&self) -> &'static str {
        "deployment.MultiServiceAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        for w in ctx
            .workloads()
            .iter()
            .filter(|w| w.resource.kind == "Deployment")
        {
            if SYSTEM_NAMESPACES.contains(&w.namespace) {
                continue;
            }
            // port -> protocol -> services
            let mut ports: BTreeMap<i32, BTreeMap<String, Vec<String>>> = BTreeMap::new();
            for svc in ctx
                .of_kind("Service")
                .filter(|s| s.namespace() == w.namespace)
            {
                let Some(spec) = svc.as_service().and_then(|s| s.spec.as_ref()) else {
                    continue;
                };
                let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else {
                    continue;
                };
                if !selects(selector, w.labels) {
                    continue;
                }
                for p in spec.ports.iter().flatten() {
                    let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                    ports
                        .entry(p.port)
                        .or_default()
                        .entry(proto)
                        .or_default()
                        .push(svc.name().to_owned());
                }
            }
            for (port, protocols) in ports.iter().filter(|(_, p)| p.len() > 1) {
                let mut services: Vec<String> = protocols.values().flatten().cloned().collect();
                services.sort();
                services.dedup();
                out.push(Message::new(
                    DEPLOYMENT_ASSOCIATED_TO_MULTIPLE_SERVICES,
                    w.resource,
                    "",
                    format!(
                        "This deployment {} is associated with multiple services using port {port} but different protocols: {}",
                        w.resource.name(),
                        list(&services)
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{only, run};

    fn svc(name: &str, port_name: &str, extra: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector:\n    app: web\n  ports:\n  - name: {port_name}\n    port: 80\n    targetPort: 8080\n{extra}"
        )
    }

    #[test]
    fn port_names() {
        for good in [
            "http", "http-web", "grpc-web", "tcp", "HTTP2", "tls-x", "mongo",
        ] {
            assert!(
                only(&run(&svc("a", good, "")), "IST0118").is_empty(),
                "{good}"
            );
        }
        let msgs = run(&svc("a", "web", ""));
        let found = only(&msgs, "IST0118");
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].text,
            "Port name web (port: 80, targetPort: 8080) doesn't follow the naming convention of Istio port."
        );
        assert_eq!(found[0].reference.as_ref().map(|o| o.line), Some(9));
        assert!(only(&run(&svc("a", "web", "    appProtocol: http\n")), "IST0118").is_empty());
        assert!(only(&run(&svc("a", "dns", "    protocol: UDP\n")), "IST0118").is_empty());
    }

    const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers: [{name: web, image: x}]\n";

    #[test]
    fn deployment_with_conflicting_protocols() {
        let yaml = format!(
            "{DEPLOY}---\n{}---\n{}",
            svc("a", "http", ""),
            svc("b", "udp-x", "    protocol: UDP\n")
        );
        let msgs = run(&yaml);
        let found = only(&msgs, "IST0116");
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].text,
            "This deployment web is associated with multiple services using port 80 but different protocols: [a b]"
        );
        let same = format!(
            "{DEPLOY}---\n{}---\n{}",
            svc("a", "http", ""),
            svc("b", "http-x", "")
        );
        assert!(only(&run(&same), "IST0116").is_empty());
    }
}
