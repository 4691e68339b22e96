//! The Gateway API conversion: Istio's own golden data (`fixtures/gateway_api/`), route
//! attachment, ReferenceGrants, GAMMA, L4 routes, status, and the snapshot hook.

use mast_config::networking::{Gateway, VirtualService};
use mast_config::{LoadOptions, Resource, load_str};
use mast_model::gateway_api::{Converted, ObjectStatus, convert};
use mast_model::{MeshSnapshot, SnapshotOptions};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gateway_api");

fn load(text: &str) -> Vec<Resource> {
    let out = load_str(text, "test.yaml", &LoadOptions::default());
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
    out.resources
}

fn vs<'a>(c: &'a Converted, name: &str) -> &'a VirtualService {
    let found = c.virtual_services.iter().find(|v| v.name == name);
    &found
        .unwrap_or_else(|| panic!("no VirtualService {name}: {:?}", names(c)))
        .spec
}

fn names(c: &Converted) -> Vec<&str> {
    c.virtual_services.iter().map(|v| v.name.as_str()).collect()
}

fn status<'a>(c: &'a Converted, kind: &str, name: &str) -> &'a ObjectStatus {
    c.statuses
        .iter()
        .find(|s| s.kind == kind && s.name == name)
        .unwrap_or_else(|| panic!("no status for {kind} {name}"))
}

/// (type, status, reason) of a route's first parent's conditions.
fn parent_conditions(s: &ObjectStatus, parent: usize) -> Vec<(String, String, String)> {
    s.parents()[parent]
        .conditions
        .iter()
        .map(|c| (c.r#type.clone(), c.status.clone(), c.reason.clone()))
        .collect()
}

#[test]
fn istio_http_golden() {
    let input = std::fs::read_to_string(format!("{FIXTURES}/http.yaml")).expect("fixture");
    let golden = std::fs::read_to_string(format!("{FIXTURES}/http.yaml.golden")).expect("golden");
    let c = convert(&load(&input), "domain.suffix");
    let golden = load(&golden);
    for g in &golden {
        if let Some(want) = g.as_gateway() {
            let got = c
                .gateways
                .iter()
                .find(|x| x.name == g.name())
                .expect("gateway");
            assert_eq!(got.namespace, g.namespace());
            assert_eq!(got.spec.servers, want.servers, "{}", g.name());
            let label = got
                .spec
                .selector
                .get("gateway.networking.k8s.io/gateway-name");
            assert_eq!(label.map(String::as_str), Some("gateway"));
        }
        if let Some(want) = g.as_virtual_service() {
            let got = c
                .virtual_services
                .iter()
                .find(|x| x.name == g.name() && x.namespace == g.namespace());
            let got = got.unwrap_or_else(|| panic!("missing {}: have {:?}", g.name(), names(&c)));
            assert_eq!(
                serde_json::to_value(got.spec.as_ref()).expect("json"),
                serde_json::to_value(want).expect("json"),
                "{}",
                g.name()
            );
        }
    }
    assert_eq!(
        c.virtual_services.len(),
        golden.len() - 1,
        "{:?}",
        names(&c)
    );
    let not_selected = status(&c, "HTTPRoute", "http-not-selected");
    let conds = parent_conditions(not_selected, 0);
    assert_eq!(
        conds[0],
        (
            "Accepted".into(),
            "False".into(),
            "NoMatchingListenerHostname".into()
        )
    );
}

const GATEWAY: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
  namespace: infra
spec:
  gatewayClassName: mast
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    hostname: '*.example.com'
  - name: https
    port: 443
    protocol: HTTPS
    hostname: secure.example.com
    allowedRoutes:
      namespaces:
        from: Selector
        selector:
          matchLabels:
            team: web
    tls:
      certificateRefs:
      - name: cert
        namespace: certs
---
apiVersion: v1
kind: Namespace
metadata:
  name: apps
  labels:
    team: web
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: apps
spec:
  ports:
  - port: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: infra
spec:
  ports:
  - port: 8080
";

fn route(ns: &str, parent: &str, backend: &str) -> String {
    format!(
        "---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
  namespace: {ns}
spec:
  parentRefs:
  - {parent}
  hostnames: [a.example.com, secure.example.com]
  rules:
  - backendRefs:
    - {backend}
"
    )
}

/// Lets Gateways of `infra` use the Secrets of `certs`.
const CERT_GRANT: &str = "---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata:
  name: certs
  namespace: certs
spec:
  from:
  - {group: gateway.networking.k8s.io, kind: Gateway, namespace: infra}
  to:
  - {group: '', kind: Secret}
";

#[test]
fn listeners_become_gateways() {
    let c = convert(&load(&format!("{GATEWAY}{CERT_GRANT}")), "cluster.local");
    let gw = |n: &str| -> &Gateway {
        &c.gateways
            .iter()
            .find(|g| g.name == n)
            .expect("gateway")
            .spec
    };
    let http = gw("gw~istio-autogenerated-k8s-gateway~http");
    assert_eq!(http.servers[0].hosts, ["infra/*.example.com"]);
    let https = gw("gw~istio-autogenerated-k8s-gateway~https");
    assert_eq!(https.servers[0].hosts, ["apps/secure.example.com"]);
    let tls = https.servers[0].tls.as_ref().expect("tls");
    assert_eq!(
        tls.credential_name.as_deref(),
        Some("kubernetes-gateway://certs/cert")
    );
    let s = status(&c, "Gateway", "gw");
    assert!(s.conditions().iter().all(|c| c.is_true()), "{s:?}");
    // Without the grant the HTTPS listener is not programmed and not converted.
    let c = convert(&load(GATEWAY), "cluster.local");
    assert_eq!(c.gateways.len(), 1);
    let json = serde_json::to_value(&status(&c, "Gateway", "gw").status).expect("json");
    assert_eq!(
        json["listeners"][1]["conditions"][3]["reason"],
        "RefNotPermitted"
    );
    assert_eq!(json["conditions"][1]["status"], "False");
}

#[test]
fn attachment_rules() {
    // Same namespace by default: a route from `apps` may not attach to the HTTP listener,
    // but the HTTPS one (Selector team=web) takes it, for its own hostname only.
    let web = "{name: web, port: 8080}";
    let c = convert(
        &load(&format!(
            "{GATEWAY}{CERT_GRANT}{}",
            route("apps", "{name: gw, namespace: infra}", web)
        )),
        "cluster.local",
    );
    assert_eq!(
        names(&c),
        ["infra~gw~istio-autogenerated-k8s-gateway~https~secure.example.com"]
    );
    let c = convert(
        &load(&format!(
            "{GATEWAY}{}",
            route(
                "apps",
                "{name: gw, namespace: infra, sectionName: http}",
                web
            )
        )),
        "cluster.local",
    );
    let conds = parent_conditions(status(&c, "HTTPRoute", "r"), 0);
    assert_eq!(conds[0].2, "NotAllowedByListeners");
    let c = convert(
        &load(&format!(
            "{GATEWAY}{}",
            route("infra", "{name: gw, sectionName: nope}", web)
        )),
        "cluster.local",
    );
    assert_eq!(
        parent_conditions(status(&c, "HTTPRoute", "r"), 0)[0].2,
        "NoMatchingParent"
    );
    let c = convert(
        &load(&format!(
            "{GATEWAY}{}",
            route("infra", "{name: gw, port: 80}", web)
        )),
        "cluster.local",
    );
    assert_eq!(
        names(&c),
        [
            "infra~gw~istio-autogenerated-k8s-gateway~http~a.example.com",
            "infra~gw~istio-autogenerated-k8s-gateway~http~secure.example.com"
        ]
    );
    let s = serde_json::to_value(&status(&c, "Gateway", "gw").status).expect("json");
    assert_eq!(s["listeners"][0]["attachedRoutes"], 1);
    assert_eq!(s["listeners"][1]["attachedRoutes"], 0);
    let conds = parent_conditions(status(&c, "HTTPRoute", "r"), 0);
    assert_eq!(
        conds,
        [
            ("Accepted".into(), "True".into(), "Accepted".into()),
            ("ResolvedRefs".into(), "True".into(), "ResolvedRefs".into()),
        ]
    );
}

#[test]
fn backend_references() {
    let other = "{name: web, namespace: apps, port: 8080}";
    let text = format!("{GATEWAY}{}", route("infra", "{name: gw, port: 80}", other));
    let c = convert(&load(&text), "cluster.local");
    let r = &vs(
        &c,
        "infra~gw~istio-autogenerated-k8s-gateway~http~a.example.com",
    )
    .http[0];
    assert!(r.route.is_empty());
    let abort = r
        .fault
        .as_ref()
        .and_then(|f| f.abort.as_ref())
        .expect("abort");
    assert_eq!(abort.http_status, Some(500));
    assert_eq!(
        parent_conditions(status(&c, "HTTPRoute", "r"), 0)[1].2,
        "RefNotPermitted"
    );
    let grant = "---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata:
  name: g
  namespace: apps
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: infra}]
  to: [{group: '', kind: Service, name: web}]
";
    let c = convert(&load(&format!("{text}{grant}")), "cluster.local");
    let r = &vs(
        &c,
        "infra~gw~istio-autogenerated-k8s-gateway~http~a.example.com",
    )
    .http[0];
    assert_eq!(r.route[0].destination.host, "web.apps.svc.cluster.local");
    let missing = format!(
        "{GATEWAY}{}",
        route("infra", "{name: gw, port: 80}", "{name: nope, port: 80}")
    );
    let c = convert(&load(&missing), "cluster.local");
    assert_eq!(
        parent_conditions(status(&c, "HTTPRoute", "r"), 0)[1].2,
        "BackendNotFound"
    );
}

#[test]
fn gamma_and_l4_routes() {
    let text = format!(
        "{GATEWAY}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: mesh
  namespace: apps
spec:
  parentRefs:
  - {{group: '', kind: Service, name: web, port: 8080}}
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /v2}}}}]
    backendRefs: [{{name: web, port: 8080}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: l4
  namespace: infra
spec:
  gatewayClassName: istio
  listeners:
  - {{name: tcp, port: 9000, protocol: TCP}}
  - {{name: tls, port: 8443, protocol: TLS, tls: {{mode: Passthrough}}}}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata:
  name: db
  namespace: infra
spec:
  parentRefs: [{{name: l4, sectionName: tcp}}]
  rules: [{{backendRefs: [{{name: web, port: 8080}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata:
  name: sni
  namespace: infra
spec:
  parentRefs: [{{name: l4}}]
  hostnames: [tls.example.com]
  rules: [{{backendRefs: [{{name: web, port: 8080}}]}}]
"
    );
    let c = convert(&load(&text), "cluster.local");
    let mesh = vs(&c, "apps~8080~web.apps.svc.cluster.local");
    assert_eq!(mesh.gateways, ["mesh"]);
    assert_eq!(mesh.hosts, ["web.apps.svc.cluster.local"]);
    assert_eq!(mesh.http[0].r#match[0].port, Some(8080));
    let tcp = vs(&c, "db~tcp~0~istio-autogenerated-k8s-gateway");
    assert_eq!(
        tcp.gateways,
        ["infra/l4~istio-autogenerated-k8s-gateway~tcp"]
    );
    assert_eq!(
        tcp.tcp[0].route[0].destination.host,
        "web.infra.svc.cluster.local"
    );
    let tls = vs(&c, "sni~tls~0~istio-autogenerated-k8s-gateway");
    assert_eq!(
        tls.gateways,
        ["infra/l4~istio-autogenerated-k8s-gateway~tls"]
    );
    assert_eq!(tls.tls[0].r#match[0].sni_hosts, ["tls.example.com"]);
    let passthrough = c
        .gateways
        .iter()
        .find(|g| g.name.ends_with("~tls"))
        .expect("tls gateway");
    let mode = passthrough.spec.servers[0]
        .tls
        .as_ref()
        .and_then(|t| t.mode);
    assert_eq!(mode.map(|m| m.as_str()), Some("PASSTHROUGH"));
}

#[test]
fn snapshot_includes_converted_configs() {
    let text = format!(
        "{GATEWAY}{}",
        route("infra", "{name: gw, port: 80}", "{name: web, port: 8080}")
    );
    let snapshot = MeshSnapshot::build(&load(&text), SnapshotOptions::default(), 1);
    let found = snapshot
        .all_virtual_services()
        .iter()
        .any(|v| v.name == "infra~gw~istio-autogenerated-k8s-gateway~http~a.example.com");
    assert!(found);
}

#[test]
fn conflicted_listeners() {
    let text = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: c, namespace: infra}
spec:
  gatewayClassName: mast
  listeners:
  - {name: a, port: 80, protocol: HTTP, hostname: a.example.com}
  - {name: a2, port: 80, protocol: HTTP, hostname: a.example.com}
  - {name: b, port: 80, protocol: HTTP, hostname: b.example.com}
  - {name: tcp, port: 443, protocol: TCP}
  - {name: tls, port: 443, protocol: TLS, tls: {mode: Passthrough}}
  - {name: https, port: 8443, protocol: HTTPS, hostname: x.example.com, tls: {certificateRefs: [{name: c}]}}
  - {name: pass, port: 8443, protocol: TLS, tls: {mode: Passthrough}}
";
    let c = convert(&load(text), "cluster.local");
    let s = serde_json::to_value(&status(&c, "Gateway", "c").status).expect("json");
    let conflicted = |i: usize| {
        let l = &s["listeners"][i];
        let cond = &l["conditions"][1];
        assert_eq!(cond["type"], "Conflicted");
        (
            cond["status"].as_str().unwrap_or_default().to_owned(),
            cond["reason"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let t = |r: &str| ("True".to_owned(), r.to_owned());
    let f = ("False".to_owned(), "NoConflicts".to_owned());
    assert_eq!(conflicted(0), t("HostnameConflict"));
    assert_eq!(conflicted(1), t("HostnameConflict"));
    assert_eq!(conflicted(2), f);
    assert_eq!(conflicted(3), t("ProtocolConflict"));
    assert_eq!(conflicted(4), t("ProtocolConflict"));
    // HTTPS and TLS share a port by SNI.
    assert_eq!(conflicted(5), f);
    assert_eq!(conflicted(6), f);
    // A conflicted listener is not accepted, not programmed and not converted.
    assert_eq!(s["listeners"][0]["conditions"][0]["status"], "False");
    assert_eq!(s["listeners"][0]["conditions"][2]["status"], "False");
    let mut converted: Vec<&str> = c.gateways.iter().map(|g| g.name.as_str()).collect();
    converted.sort();
    assert_eq!(
        converted,
        [
            "c~istio-autogenerated-k8s-gateway~b",
            "c~istio-autogenerated-k8s-gateway~https",
            "c~istio-autogenerated-k8s-gateway~pass",
        ]
    );
    assert_eq!(s["conditions"][1]["status"], "False");
}

#[test]
fn redirect_port_follows_istio() {
    let redirect = |filter: &str| {
        let text = format!(
            "{GATEWAY}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: infra}}
spec:
  parentRefs: [{{name: gw, port: 80}}]
  hostnames: [a.example.com]
  rules:
  - filters: [{{type: RequestRedirect, requestRedirect: {filter}}}]
"
        );
        let c = convert(&load(&text), "cluster.local");
        let name = "infra~gw~istio-autogenerated-k8s-gateway~http~a.example.com";
        let r = vs(&c, name).http[0].redirect.clone().expect("redirect");
        (r.port, r.derive_port.map(|d| format!("{d:?}")))
    };
    // Neither port nor scheme: the request's port is kept.
    assert_eq!(
        redirect("{hostname: b.example.com}"),
        (None, Some("FromRequestPort".into()))
    );
    assert_eq!(
        redirect("{scheme: https}"),
        (None, Some("FromProtocolDefault".into()))
    );
    assert_eq!(redirect("{scheme: https, port: 8443}"), (Some(8443), None));
}
