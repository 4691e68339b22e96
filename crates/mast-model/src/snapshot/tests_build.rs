//! Tests of [`MeshSnapshot::build`]: services from Kubernetes Services (with Endpoints,
//! Pods and WorkloadEntries) and ServiceEntries, duplicate hosts, and the kept configuration.

use std::collections::BTreeMap;

use mast_config::{Level, Resource};
use mast_core::Hostname;

use super::*;
use crate::service::{Protocol, Resolution};

const SEED_NGINX: &str = include_str!("../../../../examples/seed-nginx/nginx-test.yaml");
const SEED_VS: &str = include_str!("../../../../examples/seed-nginx/nginx-test-vs.yaml");
const SEED_BUSYBOX: &str = include_str!("../../../../examples/seed-nginx/busybox.yaml");

/// Loads and validates YAML; any decoding or validation error fails the test.
pub(super) fn load(yaml: &str) -> Vec<Resource> {
    let out = mast_config::load_str(yaml, "test.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "load: {:?}", out.diagnostics);
    let errors: Vec<_> = mast_config::validate::validate_all(&out.resources)
        .into_iter()
        .filter(|d| d.level == Level::Error)
        .collect();
    assert!(errors.is_empty(), "validation: {errors:?}");
    out.resources
}

pub(super) fn build(yaml: &str) -> MeshSnapshot {
    MeshSnapshot::build(&load(yaml), SnapshotOptions::default(), 7)
}

pub(super) fn h(s: &str) -> Hostname {
    Hostname::new_unchecked(s)
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// (address, port) of a service port's endpoints, sorted.
fn addrs(s: &MeshSnapshot, host: &str, port: u16) -> Vec<(String, u16)> {
    let svc = s
        .service(&h(host))
        .unwrap_or_else(|| panic!("no service {host}"));
    let mut v: Vec<_> = svc
        .endpoints_for(port)
        .iter()
        .map(|e| (e.address.clone(), e.port))
        .collect();
    v.sort();
    v
}

/// Pods of the seed's two Deployments, an `Endpoints` object for nginx-svc-2 and a VM.
const SEED_WORKLOADS: &str = "
apiVersion: v1
kind: Pod
metadata: {name: nginx-1-abc, labels: {app: nginx, web: nginx-1, version: v1.0.0}}
spec:
  serviceAccountName: nginx
  containers: [{name: nginx, image: nginx, ports: [{containerPort: 80, name: http}]}]
status: {podIP: 10.1.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: nginx-2-xyz, labels: {app: nginx, web: nginx-2, version: v1.0.1}}
spec:
  containers: [{name: nginx, image: nginx, ports: [{containerPort: 80, name: http}]}]
status: {podIP: 10.1.0.2}
---
apiVersion: v1
kind: Endpoints
metadata: {name: nginx-svc-2}
subsets:
- addresses:
  - ip: 10.1.0.2
    targetRef: {kind: Pod, name: nginx-2-xyz, namespace: default}
  - ip: 10.1.0.9
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1}
spec:
  address: 10.2.0.1
  ports: {http: 8080}
  labels: {app: nginx, web: nginx-1, version: v1.0.0}
  serviceAccount: vm
  weight: 3
";

#[test]
fn seed_example_builds_services_endpoints_and_routes() {
    let yaml = format!("{SEED_NGINX}\n---\n{SEED_VS}\n---\n{SEED_BUSYBOX}\n---\n{SEED_WORKLOADS}");
    let s = build(&yaml);
    assert_eq!(s.version, 7);
    let hosts: Vec<&str> = s.services().map(|s| s.hostname.as_str()).collect();
    assert_eq!(
        hosts,
        [
            "nginx-svc-1.default.svc.cluster.local",
            "nginx-svc-2.default.svc.cluster.local",
            "nginx-svc.default.svc.cluster.local"
        ]
    );
    let one = s
        .service(&h("nginx-svc-1.default.svc.cluster.local"))
        .unwrap();
    assert_eq!(
        (one.name.as_str(), one.namespace.as_str()),
        ("nginx-svc-1", "default")
    );
    assert_eq!(
        one.ports,
        [ServicePort {
            name: "http".into(),
            port: 80,
            protocol: Protocol::Http
        }]
    );
    assert_eq!(one.resolution, Resolution::Static);
    assert!(!one.mesh_external && one.addresses.is_empty() && one.export_to.is_empty());
    assert_eq!(one.selector, labels(&[("web", "nginx-1")]));
    // The pod by selector, then the WorkloadEntry on its `http` port.
    assert_eq!(
        addrs(&s, "nginx-svc-1.default.svc.cluster.local", 80),
        [("10.1.0.1".into(), 80), ("10.2.0.1".into(), 8080)]
    );
    let pod_ep = &one.endpoints_for(80)[0];
    assert_eq!(
        (pod_ep.workload.as_str(), pod_ep.service_account.as_str()),
        ("nginx-1-abc", "nginx")
    );
    assert_eq!(pod_ep.labels["version"], "v1.0.0");
    let vm = &one.endpoints_for(80)[1];
    assert_eq!(
        (vm.workload.as_str(), vm.service_account.as_str(), vm.weight),
        ("vm-1", "vm", 3)
    );
    // The Endpoints object (pod labels through targetRef), with its pod not repeated.
    assert_eq!(
        addrs(&s, "nginx-svc-2.default.svc.cluster.local", 80),
        [("10.1.0.2".into(), 80), ("10.1.0.9".into(), 80)]
    );
    let two = s
        .service(&h("nginx-svc-2.default.svc.cluster.local"))
        .unwrap();
    let ep = two
        .endpoints_for(80)
        .iter()
        .find(|e| e.address == "10.1.0.2")
        .unwrap();
    assert_eq!(
        (ep.workload.as_str(), ep.labels["version"].as_str()),
        ("nginx-2-xyz", "v1.0.1")
    );
    // `app: nginx` selects both pods and the VM.
    assert_eq!(
        addrs(&s, "nginx-svc.default.svc.cluster.local", 80).len(),
        3
    );
    // Configuration kept; Deployments ignored.
    let vs = &s.all_virtual_services()[0];
    assert_eq!(
        (vs.namespace.as_str(), vs.name.as_str()),
        ("default", "nginx-svc-vs")
    );
    assert_eq!(vs.spec.http.len(), 2);
    let dest = &vs.spec.http[1].route[0].destination.host;
    assert_eq!(s.service_for_vs_host(vs, dest).unwrap().name, "nginx-svc-1");
}

#[test]
fn kubernetes_service_details() {
    let s = build(
        "
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: shop
  annotations: {networking.istio.io/exportTo: '., mesh-tools'}
spec:
  clusterIP: 10.96.0.10
  selector: {app: api}
  ports:
  - {name: web, port: 80, targetPort: web, appProtocol: http2}
  - {name: grpc-admin, port: 9000, targetPort: 9001}
  - {name: dns, port: 53, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: shop}
spec: {clusterIP: None, ports: [{port: 5432}]}
---
apiVersion: v1
kind: Pod
metadata: {name: api-1, namespace: shop, labels: {app: api}}
spec: {containers: [{name: c, image: i, ports: [{name: web, containerPort: 8080}]}]}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: api-2, namespace: shop, labels: {app: api}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: api-pending, namespace: shop, labels: {app: api}}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: v1
kind: Pod
metadata: {name: api-done, namespace: shop, labels: {app: api}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.3, phase: Succeeded}
---
apiVersion: v1
kind: Pod
metadata: {name: api-elsewhere, namespace: other, labels: {app: api}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.4}
",
    );
    let api = s.service(&h("api.shop.svc.cluster.local")).unwrap();
    assert_eq!(api.addresses, ["10.96.0.10"]);
    assert_eq!(api.export_to, [".", "mesh-tools"]);
    let protocols: Vec<Protocol> = api.ports.iter().map(|p| p.protocol).collect();
    assert_eq!(protocols, [Protocol::Http2, Protocol::Grpc, Protocol::Udp]);
    // The named targetPort resolves per pod; a pod without that port is left out.
    assert_eq!(
        addrs(&s, "api.shop.svc.cluster.local", 80),
        [("10.0.0.1".into(), 8080)]
    );
    assert_eq!(
        addrs(&s, "api.shop.svc.cluster.local", 9000),
        [("10.0.0.1".into(), 9001), ("10.0.0.2".into(), 9001)]
    );
    assert_eq!(addrs(&s, "api.shop.svc.cluster.local", 53).len(), 2);
    assert_eq!(s.numeric_target_port(&api.hostname, 9000), Some(9001));
    assert_eq!(s.numeric_target_port(&api.hostname, 80), None);
    let headless = s.service(&h("headless.shop.svc.cluster.local")).unwrap();
    assert!(headless.addresses.is_empty() && headless.endpoints.is_empty());
    assert_eq!(headless.ports[0].protocol, Protocol::Unsupported);
}

#[test]
fn endpoints_object_ports_match_by_name_or_single_port() {
    let s = build(
        "
apiVersion: v1
kind: Service
metadata: {name: multi}
spec: {ports: [{name: http, port: 80}, {name: metrics, port: 9090}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: multi}
subsets:
- addresses: [{ip: 10.0.0.1}, {ip: 10.0.0.2}]
  notReadyAddresses: [{ip: 10.0.0.3}]
  ports: [{name: http, port: 8080}, {name: metrics, port: 9091}, {name: other, port: 1}]
---
apiVersion: v1
kind: Service
metadata: {name: single}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: single}
subsets: [{addresses: [{ip: 10.0.1.1}], ports: [{port: 3000}]}]
",
    );
    assert_eq!(
        addrs(&s, "multi.default.svc.cluster.local", 80),
        [("10.0.0.1".into(), 8080), ("10.0.0.2".into(), 8080)]
    );
    assert_eq!(
        addrs(&s, "multi.default.svc.cluster.local", 9090),
        [("10.0.0.1".into(), 9091), ("10.0.0.2".into(), 9091)]
    );
    assert_eq!(
        addrs(&s, "single.default.svc.cluster.local", 80),
        [("10.0.1.1".into(), 3000)]
    );
    // No Pod for the targetRef-less address: no labels, no workload.
    let single = s.service(&h("single.default.svc.cluster.local")).unwrap();
    assert!(single.endpoints_for(80)[0].labels.is_empty());
}

#[test]
fn external_name_service_resolves_by_dns() {
    let s = build(
        "
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {type: ExternalName, externalName: db.example.com, ports: [{name: tcp, port: 5432}]}
",
    );
    let db = s.service(&h("db.default.svc.cluster.local")).unwrap();
    assert_eq!(db.resolution, Resolution::Dns);
    assert_eq!(
        addrs(&s, "db.default.svc.cluster.local", 5432),
        [("db.example.com".into(), 5432)]
    );
}

const ENTRIES: &str = "
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: egress}
spec:
  hosts: [api.example.com, www.example.com]
  addresses: [240.0.0.1]
  exportTo: ['*']
  ports: [{number: 443, name: https, protocol: TLS}, {number: 80, name: http, protocol: HTTP, targetPort: 8080}]
  resolution: STATIC
  endpoints:
  - {address: 1.1.1.1, ports: {https: 8443}, labels: {zone: a}, weight: 5}
  - {address: 2.2.2.2}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns, namespace: egress}
spec:
  hosts: [dns.example.com]
  location: MESH_INTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vms, namespace: egress}
spec:
  hosts: [vms]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: http, protocol: HTTP, targetPort: 9081}]
  resolution: STATIC
  workloadSelector: {labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-a, namespace: egress}
spec: {address: 10.3.0.1, labels: {app: vm}, ports: {http: 7000}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-b, namespace: egress}
spec: {address: 10.3.0.2, labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-other, namespace: default}
spec: {address: 10.3.0.3, labels: {app: vm}}
---
apiVersion: v1
kind: Pod
metadata: {name: vm-pod, namespace: egress, labels: {app: vm}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 10.3.0.4}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: passthrough, namespace: egress}
spec:
  hosts: ['*.google.com']
  ports: [{number: 443, name: tls, protocol: TLS}]
";

#[test]
fn service_entries() {
    let s = build(ENTRIES);
    let api = s.service(&h("api.example.com")).unwrap();
    let www = s.service(&h("www.example.com")).unwrap();
    assert_eq!(
        (api.name.as_str(), api.namespace.as_str()),
        ("external", "egress")
    );
    assert_eq!(api.endpoints, www.endpoints);
    assert!(api.mesh_external, "MESH_EXTERNAL is the default location");
    assert_eq!(
        (api.resolution, api.addresses.clone(), api.export_to.clone()),
        (
            Resolution::Static,
            vec!["240.0.0.1".into()],
            vec!["*".into()]
        )
    );
    assert_eq!(api.ports[0].protocol, Protocol::Tls);
    // `ports[<name>]` first, then the port's targetPort, then its number.
    assert_eq!(
        addrs(&s, "api.example.com", 443),
        [("1.1.1.1".into(), 8443), ("2.2.2.2".into(), 443)]
    );
    assert_eq!(
        addrs(&s, "api.example.com", 80),
        [("1.1.1.1".into(), 8080), ("2.2.2.2".into(), 8080)]
    );
    let one = &api.endpoints_for(443)[0];
    assert_eq!(
        (
            one.weight,
            one.labels["zone"].as_str(),
            one.namespace.as_str()
        ),
        (5, "a", "egress")
    );

    let dns = s.service(&h("dns.example.com")).unwrap();
    assert!(!dns.mesh_external);
    assert_eq!(dns.resolution, Resolution::Dns);
    assert_eq!(
        addrs(&s, "dns.example.com", 80),
        [("dns.example.com".into(), 80)]
    );

    // workloadSelector: WorkloadEntries and Pods of the entry's namespace only.
    let vms = s.service(&h("vms.egress.svc.cluster.local")).unwrap();
    assert_eq!(vms.selector, labels(&[("app", "vm")]));
    assert_eq!(
        addrs(&s, "vms.egress.svc.cluster.local", 9080),
        [
            ("10.3.0.1".into(), 7000),
            ("10.3.0.2".into(), 9081),
            ("10.3.0.4".into(), 9081)
        ]
    );
    assert_eq!(
        vms.endpoints_for(9080)
            .iter()
            .find(|e| e.address == "10.3.0.1")
            .unwrap()
            .workload,
        "vm-a"
    );

    let google = s.service(&h("*.google.com")).unwrap();
    assert_eq!(google.resolution, Resolution::Passthrough);
    let matching: Vec<&str> = s
        .services_matching(&h("*.example.com"))
        .iter()
        .map(|s| s.hostname.as_str())
        .collect();
    assert_eq!(
        matching,
        ["api.example.com", "dns.example.com", "www.example.com"]
    );
    assert_eq!(s.services_matching(&h("api.example.com")).len(), 1);
}

#[test]
fn duplicate_hosts_kubernetes_wins_then_first_entry() {
    let s = build(
        "
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: squatter, namespace: aaa}
spec:
  hosts: [web.default.svc.cluster.local]
  ports: [{number: 81, name: http, protocol: HTTP}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: second, namespace: bbb}
spec:
  hosts: [shared.example.com]
  ports: [{number: 2, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: first, namespace: aaa}
spec:
  hosts: [shared.example.com]
  ports: [{number: 1, name: http, protocol: HTTP}]
",
    );
    assert_eq!(s.services().count(), 2);
    let web = s.service(&h("web.default.svc.cluster.local")).unwrap();
    assert_eq!((web.name.as_str(), web.ports[0].port), ("web", 80));
    let shared = s.service(&h("shared.example.com")).unwrap();
    assert_eq!(
        (shared.namespace.as_str(), shared.name.as_str()),
        ("aaa", "first")
    );
}

#[test]
fn configs_are_sorted_by_namespace_then_name() {
    let mut yaml = String::new();
    for (ns, name) in [("b", "x"), ("a", "z"), ("a", "y")] {
        yaml.push_str(&format!(
            "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{host: web}}\n\
             ---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: {name}, namespace: {ns}}}\n\
             spec: {{selector: {{istio: ingressgateway}}, servers: [{{port: {{number: 80, name: http, protocol: HTTP}}, hosts: ['*']}}]}}\n\
             ---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{workloadSelector: {{labels: {{app: {name}}}}}, egress: [{{hosts: ['./*']}}]}}\n"
        ));
    }
    let s = build(&yaml);
    let order = |v: Vec<(&str, &str)>| assert_eq!(v, [("a", "y"), ("a", "z"), ("b", "x")]);
    order(
        s.all_destination_rules()
            .iter()
            .map(|c| (c.namespace.as_str(), c.name.as_str()))
            .collect(),
    );
    order(
        s.gateways()
            .iter()
            .map(|c| (c.namespace.as_str(), c.name.as_str()))
            .collect(),
    );
    order(
        s.sidecars()
            .iter()
            .map(|c| (c.namespace.as_str(), c.name.as_str()))
            .collect(),
    );
    assert_eq!(MeshSnapshot::qualify_gateway("shop", "gw"), "shop/gw");
    assert_eq!(MeshSnapshot::qualify_gateway("shop", "./gw"), "shop/gw");
    assert_eq!(MeshSnapshot::qualify_gateway("shop", "edge/gw"), "edge/gw");
    assert_eq!(
        MeshSnapshot::qualify_gateway("shop", "gw.edge.svc.cluster.local"),
        "edge/gw"
    );
    assert_eq!(MeshSnapshot::qualify_gateway("shop", "mesh"), "mesh");
}
