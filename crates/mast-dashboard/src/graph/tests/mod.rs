//! The graph from tables of series: which edges and nodes come out, with which rates, error
//! rates, percentiles, mTLS and health. Here the mesh and the helpers; the tables are in
//! [`canary`] (mast-proxy's Istio metrics) and [`envoy_tcp`] (Envoy stats, TCP, plaintext).

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub(super) use std::collections::BTreeMap;

pub(super) use mast_model::{MeshSnapshot, SnapshotOptions};

pub(super) use super::*;

mod canary;
mod envoy_tcp;
pub(super) use crate::scrape::traffic::{
    HttpKey, HttpSeries, Origin, Peer, Protocol, ProxyScrape, Reporter, TcpKey, TcpSeries,
    TrafficSource,
};

pub(super) const MESH: &str = "
apiVersion: v1
kind: Service
metadata: {name: nginx-svc, namespace: default}
spec: {selector: {app: nginx}, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: nginx-svc-1, namespace: default}
spec: {selector: {web: nginx-1}, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: nginx-svc-2, namespace: default}
spec: {selector: {web: nginx-2}, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: nginx-svc-3, namespace: default}
spec: {selector: {web: nginx-3}, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec: {selector: {app: db}, ports: [{name: tcp, port: 5432}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
";

pub(super) fn entry(name: &str, ip: &str, labels: &str) -> String {
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {name}, namespace: default}}\nspec: {{address: {ip}, labels: {{{labels}}}, ports: {{http: 8080, tcp: 5432}}}}\n"
    )
}

pub(super) fn snapshot() -> MeshSnapshot {
    let mut yaml = MESH.to_owned();
    for (name, ip, labels) in [
        (
            "nginx-1",
            "10.0.0.1",
            "app: nginx, web: nginx-1, version: v1",
        ),
        (
            "nginx-2",
            "10.0.0.2",
            "app: nginx, web: nginx-2, version: v2",
        ),
        ("nginx-3", "10.0.0.3", "web: nginx-3, version: v3"),
        ("reviews-v1", "10.0.0.4", "app: reviews, version: v1"),
        ("reviews-v2", "10.0.0.5", "app: reviews, version: v2"),
        ("reviews-v2b", "10.0.0.6", "app: reviews, version: v2"),
        ("db-1", "10.0.0.7", "app: db"),
    ] {
        yaml.push_str(&entry(name, ip, labels));
    }
    let out = mast_config::load_str(&yaml, "mesh.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
    MeshSnapshot::build(&out.resources, SnapshotOptions::default(), 1)
}

pub(super) fn peer(workload: &str, app: &str, version: &str) -> Peer {
    Peer {
        workload: workload.into(),
        namespace: "default".into(),
        app: app.into(),
        version: version.into(),
    }
}

pub(super) const NGINX: &str = "nginx-svc.default.svc.cluster.local";
pub(super) const NGINX_1: &str = "nginx-svc-1.default.svc.cluster.local";
pub(super) const REVIEWS: &str = "reviews.default.svc.cluster.local";
pub(super) const DB: &str = "db.default.svc.cluster.local";

pub(super) struct Http {
    pub(super) reporter: Reporter,
    pub(super) origin: Origin,
    pub(super) src: Peer,
    pub(super) dst: Peer,
    pub(super) service: &'static str,
    pub(super) subset: &'static str,
    pub(super) code: &'static str,
    pub(super) flags: &'static str,
    pub(super) mtls: &'static str,
    pub(super) rps: f64,
    pub(super) latency: Vec<(f64, f64)>,
}

impl Http {
    pub(super) fn dest(src: Peer, dst: Peer, service: &'static str, rps: f64) -> Self {
        Self {
            reporter: Reporter::Destination,
            origin: Origin::Istio,
            src,
            dst,
            service,
            subset: "",
            code: "200",
            flags: "-",
            mtls: "mutual_tls",
            rps,
            latency: Vec::new(),
        }
    }

    pub(super) fn source(src: Peer, dst: Peer, service: &'static str, rps: f64) -> Self {
        Self {
            reporter: Reporter::Source,
            mtls: "unknown",
            ..Self::dest(src, dst, service, rps)
        }
    }

    pub(super) fn series(self) -> HttpSeries {
        HttpSeries {
            key: HttpKey {
                reporter: self.reporter,
                origin: self.origin,
                source: self.src,
                destination: self.dst,
                service: self.service.into(),
                subset: self.subset.into(),
                protocol: Protocol::Http,
                response_code: self.code.into(),
                response_flags: self.flags.into(),
                mtls: self.mtls.into(),
            },
            rps: self.rps,
            latency: self.latency,
        }
    }
}

pub(super) fn traffic(http: Vec<Http>, tcp: Vec<TcpSeries>, mast_proxies: &[&str]) -> Traffic {
    Traffic {
        http: http.into_iter().map(Http::series).collect(),
        tcp,
        proxies: mast_proxies
            .iter()
            .map(|w| ProxyScrape {
                node_id: format!("sidecar~x~{w}.default~default.svc.cluster.local"),
                workload: (*w).into(),
                namespace: "default".into(),
                kind: Some(ProxyKind::MastProxy),
                error: None,
            })
            .collect(),
        ..Traffic::empty(TrafficSource::Proxies, 30)
    }
}

pub(super) fn graph(t: &Traffic) -> Graph {
    let s = snapshot();
    build(t, &s, &inventory(&s, &[]))
}

pub(super) fn edge<'a>(g: &'a Graph, source: &str, target: &str) -> &'a Edge {
    g.edges
        .iter()
        .find(|e| e.source == source && e.target == target)
        .unwrap_or_else(|| panic!("no edge {source} -> {target} in {:#?}", g.edges))
}

pub(super) fn node<'a>(g: &'a Graph, id: &str) -> &'a Node {
    g.nodes
        .iter()
        .find(|n| n.id == id)
        .unwrap_or_else(|| panic!("no node {id}"))
}

pub(super) fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

pub(super) const CLIENT: &str = "workload:default/client";
pub(super) const SVC: &str = "service:nginx-svc.default.svc.cluster.local";
pub(super) const W1: &str = "workload:default/nginx-1";
pub(super) const W2: &str = "workload:default/nginx-2";
