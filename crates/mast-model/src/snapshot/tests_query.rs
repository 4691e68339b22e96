//! Tests of the scoping queries: `exportTo`, Sidecar selection and egress scoping, the
//! outbound policy, and VirtualServices per gateway.

use std::collections::BTreeMap;

use serde_json::json;

use super::tests_build::build;
use super::*;

/// A sidecar proxy in `ns` at `ip` with `labels`.
pub(super) fn sidecar(ns: &str, ip: &str, workload: &str, labels: &[(&str, &str)]) -> ProxyNode {
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    let id = format!("sidecar~{ip}~{workload}.{ns}~{ns}.svc.cluster.local");
    ProxyNode::parse(
        &id,
        &json!({"NAMESPACE": ns, "LABELS": labels, "WORKLOAD_NAME": workload}),
    )
    .unwrap()
}

fn router(ns: &str) -> ProxyNode {
    ProxyNode::parse(
        &format!("router~10.9.9.9~gw.{ns}~{ns}.svc.cluster.local"),
        &json!({}),
    )
    .unwrap()
}

fn names(services: &[&Service]) -> Vec<String> {
    services
        .iter()
        .map(|s| format!("{}/{}", s.namespace, s.name))
        .collect()
}

fn config_names<T>(configs: &[&Config<T>]) -> Vec<String> {
    configs
        .iter()
        .map(|c| format!("{}/{}", c.namespace, c.name))
        .collect()
}

/// Services in three namespaces plus the root, with every kind of `exportTo`.
pub(super) const MESH: &str = "
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: catalog}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080, targetPort: http-api}]
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1, namespace: catalog, labels: {app: reviews, version: v1}}
spec: {containers: [{name: c, image: i, ports: [{name: http-api, containerPort: 9081}]}]}
status: {podIP: 10.0.1.1}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v2, namespace: catalog, labels: {app: reviews, version: v2}}
spec: {containers: [{name: c, image: i, ports: [{name: http-api, containerPort: 9082}]}]}
status: {podIP: 10.0.1.2}
---
apiVersion: v1
kind: Service
metadata:
  name: ratings
  namespace: catalog
  annotations: {networking.istio.io/exportTo: .}
spec: {ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata:
  name: internal
  namespace: catalog
  annotations: {networking.istio.io/exportTo: 'catalog,tools'}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: frontend, namespace: shop}
spec:
  selector: {app: frontend}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: http-alt, port: 8080, targetPort: 8080}
  - {name: statsd, port: 8125, protocol: UDP}
---
apiVersion: v1
kind: Pod
metadata: {name: frontend-1, namespace: shop, labels: {app: frontend}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 10.0.2.1}
---
apiVersion: v1
kind: Service
metadata: {name: istiod, namespace: istio-system}
spec: {ports: [{name: grpc-xds, port: 15010}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: hidden, namespace: shop}
spec:
  hosts: [hidden.example.com]
  exportTo: ['~']
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
";

pub(super) fn mesh_with(extra: &str) -> MeshSnapshot {
    build(&format!("{MESH}\n---\n{extra}"))
}

#[test]
fn visible_services_follow_export_to() {
    let s = build(MESH);
    let shop = sidecar("shop", "10.0.2.1", "frontend-1", &[("app", "frontend")]);
    assert_eq!(
        names(&s.visible_services(&shop)),
        [
            "shop/api",
            "shop/frontend",
            "istio-system/istiod",
            "catalog/reviews"
        ]
    );
    let catalog = sidecar("catalog", "10.0.1.1", "reviews-v1", &[]);
    let seen = names(&s.visible_services(&catalog));
    assert!(seen.contains(&"catalog/ratings".into()) && seen.contains(&"catalog/internal".into()));
    let tools = names(&s.visible_services(&sidecar("tools", "10.0.3.1", "t", &[])));
    assert!(
        tools.contains(&"catalog/internal".into()) && !tools.contains(&"catalog/ratings".into())
    );
    assert!(!tools.contains(&"shop/hidden".into()) && !seen.contains(&"shop/hidden".into()));
    assert!(s.sidecar_for(&shop).is_none());
}

const SHOP_SIDECAR: &str = "
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress: [{hosts: ['./*', 'istio-system/*']}]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
";

#[test]
fn sidecar_egress_hosts_scope_services() {
    let s = mesh_with(SHOP_SIDECAR);
    let shop = sidecar("shop", "10.0.2.1", "frontend-1", &[("app", "frontend")]);
    assert_eq!(s.sidecar_for(&shop).unwrap().name, "default");
    assert_eq!(
        names(&s.visible_services(&shop)),
        ["shop/api", "shop/frontend", "istio-system/istiod"]
    );
    assert_eq!(s.outbound_policy(&shop), OutboundPolicy::RegistryOnly);
    // Other namespaces and gateways are not scoped by it.
    let catalog = sidecar("catalog", "10.0.1.1", "reviews-v1", &[]);
    assert!(s.sidecar_for(&catalog).is_none());
    assert_eq!(s.outbound_policy(&catalog), OutboundPolicy::AllowAny);
    assert!(names(&s.visible_services(&catalog)).contains(&"catalog/reviews".into()));
    let gw = router("shop");
    assert!(s.sidecar_for(&gw).is_none());
    assert!(names(&s.visible_services(&gw)).contains(&"catalog/reviews".into()));

    // A VirtualService the Sidecar imports brings in the services it routes to.
    let with_vs = mesh_with(&format!(
        "{SHOP_SIDECAR}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n\
         metadata: {{name: to-reviews, namespace: shop}}\nspec:\n  hosts: [frontend]\n  \
         http: [{{route: [{{destination: {{host: reviews.catalog.svc.cluster.local}}}}]}}]\n"
    ));
    assert!(names(&with_vs.visible_services(&shop)).contains(&"catalog/reviews".into()));
}

#[test]
fn sidecar_selection_and_wildcard_egress_hosts() {
    let s = mesh_with(
        "
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: frontend, namespace: shop}
spec:
  workloadSelector: {labels: {app: frontend}}
  egress: [{hosts: ['*/*.example.com', 'catalog/reviews.catalog.svc.cluster.local']}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress: [{hosts: ['~/*']}]
  outboundTrafficPolicy: {}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec:
  egress: [{hosts: ['./*']}]
",
    );
    let frontend = sidecar("shop", "10.0.2.1", "frontend-1", &[("app", "frontend")]);
    assert_eq!(s.sidecar_for(&frontend).unwrap().name, "frontend");
    assert_eq!(
        names(&s.visible_services(&frontend)),
        ["shop/api", "catalog/reviews"]
    );
    // The namespace's default imports nothing; its policy without a mode is REGISTRY_ONLY.
    let other = sidecar("shop", "10.0.2.2", "batch", &[("app", "batch")]);
    assert_eq!(s.sidecar_for(&other).unwrap().name, "default");
    assert!(s.visible_services(&other).is_empty());
    assert_eq!(s.outbound_policy(&other), OutboundPolicy::RegistryOnly);
    assert_eq!(s.outbound_policy(&frontend), OutboundPolicy::AllowAny);
    // The root namespace's applies where a namespace has none, with `.` as the proxy's own.
    let catalog = sidecar("catalog", "10.0.1.1", "reviews-v1", &[]);
    assert_eq!(s.sidecar_for(&catalog).unwrap().namespace, "istio-system");
    assert_eq!(
        names(&s.visible_services(&catalog)),
        ["catalog/internal", "catalog/ratings", "catalog/reviews"]
    );
}

#[test]
fn egress_listener_port_scopes_services() {
    let s = mesh_with(
        "
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress:
  - port: {number: 9080, protocol: HTTP, name: http}
    hosts: ['*/*']
",
    );
    let shop = sidecar("shop", "10.0.2.1", "frontend-1", &[]);
    assert_eq!(names(&s.visible_services(&shop)), ["catalog/reviews"]);
}

const ROUTES: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.catalog.svc.cluster.local]
  http: [{route: [{destination: {host: reviews.catalog.svc.cluster.local}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: frontend, namespace: shop}
spec:
  hosts: [frontend, shop.example.com]
  gateways: [mesh, edge, istio-system/ingress]
  http: [{route: [{destination: {host: frontend}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge-only, namespace: shop}
spec:
  hosts: [shop.example.com]
  gateways: [shop/edge]
  http: [{route: [{destination: {host: frontend}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: private, namespace: catalog}
spec:
  hosts: [reviews]
  exportTo: [.]
  http: [{route: [{destination: {host: reviews}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: catalog}
spec:
  hosts: [ratings]
  http: [{route: [{destination: {host: ratings}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: delegate, namespace: shop}
spec:
  http: [{route: [{destination: {host: frontend}}]}]
";

#[test]
fn virtual_services_by_gateway_and_export_to() {
    let s = mesh_with(ROUTES);
    let shop = sidecar("shop", "10.0.2.1", "frontend-1", &[]);
    let catalog = sidecar("catalog", "10.0.1.1", "reviews-v1", &[]);
    assert_eq!(
        config_names(&s.virtual_services(&shop, "mesh")),
        ["catalog/ratings", "shop/frontend", "shop/reviews"]
    );
    assert_eq!(
        config_names(&s.virtual_services(&catalog, "mesh")),
        [
            "catalog/private",
            "catalog/ratings",
            "shop/frontend",
            "shop/reviews"
        ]
    );
    let gw = router("shop");
    assert_eq!(
        config_names(&s.virtual_services(&gw, "shop/edge")),
        ["shop/edge-only", "shop/frontend"]
    );
    assert_eq!(
        config_names(&s.virtual_services(&gw, "istio-system/ingress")),
        ["shop/frontend"]
    );
    assert!(s.virtual_services(&gw, "shop/other").is_empty());
    assert!(s.virtual_service("shop", "delegate").is_some());
}

#[test]
fn sidecar_egress_scopes_virtual_services() {
    let s = mesh_with(&format!(
        "{ROUTES}\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: default, namespace: shop}}\n\
         spec:\n  egress: [{{hosts: ['./frontend.shop.svc.cluster.local', 'catalog/*']}}]\n"
    ));
    let shop = sidecar("shop", "10.0.2.1", "frontend-1", &[]);
    // shop/reviews names a catalog host but lives in shop, where only frontend is imported.
    assert_eq!(
        config_names(&s.virtual_services(&shop, "mesh")),
        ["catalog/ratings", "shop/frontend"]
    );
    // Gateway bindings are not scoped by the Sidecar.
    assert_eq!(
        config_names(&s.virtual_services(&shop, "shop/edge")),
        ["shop/edge-only", "shop/frontend"]
    );
}
