//! Unit tests of gateway LDS and RDS for HTTP servers: listener names, addresses, chains,
//! HCM settings, route tables and virtual hosts. Helpers (and the HTTP + HTTPS fixture) are
//! shared with the other gateway test files.

use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::{
    ForwardClientCertDetails, RouteSpecifier,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType as SocketConfig;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
use prost::{Message, Name};
use serde_json::json;

use super::{listeners, routes};

// ---- helpers ----

/// A snapshot from YAML that loads and validates.
pub fn snapshot(yaml: &str) -> MeshSnapshot {
    let out = mast_config::load_str(yaml, "test.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "load: {:?}", out.diagnostics);
    MeshSnapshot::build(&out.resources, SnapshotOptions::default(), 1)
}

/// An ingress gateway proxy in `istio-system` at `ip`.
pub fn gateway_at(ip: &str, labels: serde_json::Value) -> ProxyNode {
    ProxyNode::parse(
        &format!("router~{ip}~ingress-1.istio-system~istio-system.svc.cluster.local"),
        &json!({"NAMESPACE": "istio-system", "LABELS": labels}),
    )
    .unwrap()
}

/// The `istio: ingressgateway` proxy at 10.0.0.9.
pub fn ingress() -> ProxyNode {
    gateway_at("10.0.0.9", json!({"istio": "ingressgateway"}))
}

/// Decodes a typed filter config.
pub fn typed<T: Message + Name + Default>(f: &Filter) -> T {
    let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        panic!("filter {} has no typed config", f.name)
    };
    assert_eq!(any.type_url, T::type_url(), "filter {}", f.name);
    T::decode(any.value.as_slice()).unwrap()
}

/// The HCM of a chain.
pub fn hcm(chain: &FilterChain) -> HttpConnectionManager {
    let f = chain.filters.last().expect("a filter");
    typed(f)
}

/// The RDS name of a chain's HCM.
pub fn rds(chain: &FilterChain) -> String {
    match hcm(chain).route_specifier {
        Some(RouteSpecifier::Rds(r)) => r.route_config_name,
        other => panic!("not RDS: {other:?}"),
    }
}

/// The downstream TLS context of a chain.
pub fn tls_context(chain: &FilterChain) -> DownstreamTlsContext {
    let ts = chain.transport_socket.as_ref().expect("a transport socket");
    assert_eq!(ts.name, "envoy.transport_sockets.tls");
    let Some(SocketConfig::TypedConfig(any)) = &ts.config_type else {
        panic!("no typed config")
    };
    DownstreamTlsContext::decode(any.value.as_slice()).unwrap()
}

/// The listener named `name`.
pub fn listener<'a>(all: &'a [Listener], name: &str) -> &'a Listener {
    all.iter().find(|l| l.name == name).unwrap_or_else(|| {
        panic!(
            "no listener {name}: {:?}",
            all.iter().map(|l| &l.name).collect::<Vec<_>>()
        )
    })
}

/// The route table named `name`.
pub fn table<'a>(all: &'a [RouteConfiguration], name: &str) -> &'a RouteConfiguration {
    all.iter().find(|r| r.name == name).unwrap_or_else(|| {
        panic!(
            "no table {name}: {:?}",
            all.iter().map(|r| &r.name).collect::<Vec<_>>()
        )
    })
}

/// The cluster of a vhost's first route.
pub fn first_cluster(vh: &VirtualHost) -> String {
    match vh.routes.first().and_then(|r| r.action.as_ref()) {
        Some(Action::Route(a)) => match &a.cluster_specifier {
            Some(ClusterSpecifier::Cluster(c)) => c.clone(),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

/// The Service mapping the ingress gateway's ports (80 → 8080, 443 → 8443).
pub const INGRESS_SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: istio-ingressgateway, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  ports:
  - {name: http2, port: 80, targetPort: 8080}
  - {name: https, port: 443, targetPort: 8443}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: default}
spec:
  selector: {app: ratings}
  ports:
  - {name: http, port: 9080}
"#;

pub const HTTP_HTTPS: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*.example.com"]
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["reviews.example.com"]
    tls:
      mode: SIMPLE
      serverCertificate: /etc/certs/reviews.pem
      privateKey: /etc/certs/reviews-key.pem
      minProtocolVersion: TLSV1_2
      maxProtocolVersion: TLSV1_3
      cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-GCM-SHA256, AES256-GCM-SHA384]
  - port: {number: 443, name: https-ratings, protocol: HTTPS}
    hosts: ["default/ratings.example.com"]
    tls: {mode: SIMPLE, credentialName: ratings-cert}
---
apiVersion: v1
kind: Secret
metadata: {name: ratings-cert, namespace: istio-system}
type: kubernetes.io/tls
stringData: {tls.crt: RATINGS-CERT, tls.key: RATINGS-KEY}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: ["reviews.example.com"]
  gateways: [web]
  http:
  - match: [{uri: {prefix: /mesh}, gateways: [mesh]}]
    route: [{destination: {host: ratings}}]
  - route: [{destination: {host: reviews}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: ["ratings.example.com"]
  gateways: [default/web]
  http:
  - route: [{destination: {host: ratings.default.svc.cluster.local, port: {number: 9080}}}]
"#;

pub fn http_https() -> MeshSnapshot {
    snapshot(&format!("{INGRESS_SERVICE}---{HTTP_HTTPS}"))
}

// ---- HTTP ----

#[test]
fn http_server_listener_and_hcm() {
    let all = listeners(&http_https(), &ingress());
    let names: Vec<&str> = all.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["0.0.0.0_8080", "0.0.0.0_8443"]);
    let l = listener(&all, "0.0.0.0_8080");
    let addr = super::listener::socket(l).unwrap();
    assert_eq!(addr.address, "0.0.0.0");
    assert_eq!(l.traffic_direction, 2, "OUTBOUND");
    assert!(
        l.listener_filters.is_empty(),
        "no TLS inspector on plaintext"
    );
    assert_eq!(l.filter_chains.len(), 1);
    let chain = &l.filter_chains[0];
    assert!(chain.filter_chain_match.is_none());
    assert_eq!(rds(chain), "http.8080");
    let h = hcm(chain);
    assert_eq!(h.stat_prefix, "outbound_0.0.0.0_8080");
    assert_eq!(h.use_remote_address.map(|b| b.value), Some(true));
    assert_eq!(h.codec_type, 0, "AUTO");
    assert_eq!(h.normalize_path.map(|b| b.value), Some(true));
    assert_eq!(
        h.forward_client_cert_details,
        ForwardClientCertDetails::SanitizeSet as i32
    );
    let xfcc = h.set_current_client_cert_details.unwrap();
    assert!(xfcc.cert && xfcc.dns && xfcc.uri && xfcc.subject.unwrap().value);
    assert_eq!(
        h.http_filters.last().unwrap().name,
        "envoy.filters.http.router"
    );
}

#[test]
fn loopback_proxies_bind_their_ip_and_bind_wins() {
    let yaml = format!(
        "{INGRESS_SERVICE}---{}",
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: local, namespace: istio-system}
spec:
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 9000, name: http-b, protocol: HTTP}
    bind: 127.0.0.2
    hosts: ["*"]
"#
    );
    let p = gateway_at("127.0.0.1", json!({"istio": "ingressgateway"}));
    let all = listeners(&snapshot(&yaml), &p);
    let names: Vec<&str> = all.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["127.0.0.1_8080", "127.0.0.2_9000"]);
    let tables = routes(&snapshot(&yaml), &p);
    let names: Vec<&str> = tables.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["http.8080", "http.9000.127.0.0.2"]);
}

#[test]
fn http_table_has_a_vhost_per_intersecting_host() {
    let tables = routes(&http_https(), &ingress());
    let t = table(&tables, "http.8080");
    assert!(t.ignore_port_in_host_matching);
    assert!(!t.validate_clusters.unwrap().value);
    let names: Vec<&str> = t.virtual_hosts.iter().map(|v| v.name.as_str()).collect();
    // `*.example.com` meets both VirtualServices' hosts: one vhost each, named by the
    // more specific host and the server port.
    assert_eq!(names, ["ratings.example.com:80", "reviews.example.com:80"]);
    let reviews = &t.virtual_hosts[1];
    assert_eq!(reviews.domains, ["reviews.example.com"]);
    // The `gateways: [mesh]` match does not apply on the gateway.
    assert_eq!(reviews.routes.len(), 1);
    assert_eq!(
        first_cluster(reviews),
        "outbound|9080||reviews.default.svc.cluster.local"
    );
    assert_eq!(reviews.require_tls, 0);
}

#[test]
fn per_match_gateways_select_the_gateway() {
    let yaml = format!(
        "{INGRESS_SERVICE}---{}",
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: default}
spec:
  hosts: ["a.example.com"]
  gateways: [web, mesh]
  http:
  - match: [{uri: {prefix: /gw}, gateways: [web]}]
    route: [{destination: {host: ratings}}]
  - match: [{uri: {prefix: /other}, gateways: [other]}]
    route: [{destination: {host: ratings}}]
  - route: [{destination: {host: reviews}}]
"#
    );
    let tables = routes(&snapshot(&yaml), &ingress());
    let vh = &table(&tables, "http.8080").virtual_hosts[0];
    let names: Vec<&str> = vh.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(vh.routes.len(), 2, "{names:?}");
    assert_eq!(
        first_cluster(vh),
        "outbound|9080||ratings.default.svc.cluster.local"
    );
}

#[test]
fn no_virtual_service_gives_a_404_blackhole_vhost() {
    let yaml = format!(
        "{INGRESS_SERVICE}---{}",
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["nothing.example.com"]
"#
    );
    let tables = routes(&snapshot(&yaml), &ingress());
    let t = table(&tables, "http.8080");
    assert_eq!(t.virtual_hosts.len(), 1);
    assert_eq!(t.virtual_hosts[0].name, "blackhole:80");
    assert_eq!(t.virtual_hosts[0].domains, ["*"]);
    assert!(t.virtual_hosts[0].routes.is_empty());
}

#[test]
fn https_redirect_requires_tls_on_every_vhost() {
    let yaml = format!(
        "{INGRESS_SERVICE}---{}",
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["reviews.example.com", "plain.example.com"]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: ["reviews.example.com"]
  gateways: [web]
  http:
  - route: [{destination: {host: reviews}}]
"#
    );
    let tables = routes(&snapshot(&yaml), &ingress());
    let t = table(&tables, "http.8080");
    let names: Vec<&str> = t.virtual_hosts.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["plain.example.com:80", "reviews.example.com:80"]);
    assert!(t.virtual_hosts.iter().all(|v| v.require_tls == 2), "ALL");
}

#[test]
fn namespace_restricted_hosts_only_take_their_namespace() {
    let yaml = format!(
        "{INGRESS_SERVICE}---{}",
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["prod/*.example.com", "./own.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: default}
spec:
  hosts: ["a.example.com", "own.example.com"]
  gateways: [istio-system/web]
  http:
  - route: [{destination: {host: reviews}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b, namespace: prod}
spec:
  hosts: ["b.example.com"]
  gateways: [istio-system/web]
  http:
  - route: [{destination: {host: reviews.default.svc.cluster.local}}]
"#
    );
    let tables = routes(&snapshot(&yaml), &ingress());
    let t = table(&tables, "http.8080");
    let names: Vec<&str> = t.virtual_hosts.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["b.example.com:80"]);
}

#[test]
fn sidecars_and_unselected_gateways_get_nothing() {
    let snap = http_https();
    let other = gateway_at("10.0.0.9", json!({"istio": "egressgateway"}));
    assert!(listeners(&snap, &other).is_empty());
    assert!(routes(&snap, &other).is_empty());
}
