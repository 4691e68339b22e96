//! Real mastd output: every cluster and assignment `mast_xds` generates for a mesh that uses
//! every traffic-policy mapping converts; auto mTLS and `ISTIO_MUTUAL` pick TLS per endpoint.

use super::*;

const MESH: &str = "
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080, targetPort: 9080}
  - {name: grpc-api, port: 9090, targetPort: 9091}
  - {name: tcp-db, port: 5432}
  - {name: other, port: 7777}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1, namespace: default, labels: {app: reviews, version: v1}}
spec: {containers: [{name: app, image: reviews}]}
status: {podIP: 10.1.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v2, namespace: default, labels: {app: reviews, version: v2}}
spec: {containers: [{name: app, image: reviews}]}
status: {podIP: 10.1.0.2}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-vm, namespace: default}
spec: {address: 10.2.0.1, labels: {app: reviews, version: v1}, weight: 3}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.org]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy, namespace: default}
spec:
  hosts: [legacy.internal]
  addresses: [192.0.2.50]
  resolution: NONE
  ports: [{number: 7000, name: tcp, protocol: TCP}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN, warmup: {duration: 30s}}
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 250ms, tcpKeepalive: {probes: 3, time: 7200s, interval: 75s}, maxConnectionDuration: 60s}
      http: {http1MaxPendingRequests: 10, http2MaxRequests: 1000, maxRequestsPerConnection: 10, maxRetries: 3, idleTimeout: 30s, maxConcurrentStreams: 50, h2UpgradePolicy: UPGRADE}
    outlierDetection: {consecutive5xxErrors: 3, consecutiveGatewayErrors: 2, interval: 5s, baseEjectionTime: 30s, maxEjectionPercent: 50, minHealthPercent: 20, splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 4}
    retryBudget: {percent: 25, minRetryConcurrency: 2}
    portLevelSettings:
    - port: {number: 9090}
      loadBalancer: {consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 65537}}}
    - port: {number: 7777}
      loadBalancer: {simple: RANDOM}
      connectionPool: {http: {useClientProtocol: true}}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer: {simple: LEAST_REQUEST}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {consistentHash: {httpCookie: {name: user, ttl: 0s}, ringHash: {minimumRingSize: 2048}}}
  - name: v3
    labels: {version: v3}
    trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}
";

fn snapshot(yaml: &str) -> mast_model::MeshSnapshot {
    let out = mast_config::load_str(yaml, "mesh.yaml", &Default::default());
    assert!(out.diagnostics.is_empty(), "load: {:?}", out.diagnostics);
    mast_model::MeshSnapshot::build(&out.resources, mast_model::SnapshotOptions::default(), 1)
}

fn node(id: &str, md: serde_json::Value) -> mast_model::ProxyNode {
    mast_model::ProxyNode::parse(id, &md).expect("node")
}

#[tokio::test]
async fn every_generated_cluster_and_assignment_converts() {
    let snap = snapshot(MESH);
    let proxies = [
        node(
            "sidecar~10.1.0.50~productpage-1.default~default.svc.cluster.local",
            serde_json::json!({"NAMESPACE": "default", "LABELS": {"app": "productpage"}}),
        ),
        node(
            "sidecar~10.1.0.1~reviews-v1.default~default.svc.cluster.local",
            serde_json::json!({"NAMESPACE": "default", "LABELS": {"app": "reviews", "version": "v1"}}),
        ),
        node(
            "sidecar~127.0.0.1~client.default~default.svc.cluster.local",
            serde_json::json!({"NAMESPACE": "default", "MAST_CAPTURE_MODE": "ports", "MAST_OUTBOUND_PORT": "15101"}),
        ),
    ];
    let mut kinds = std::collections::BTreeSet::new();
    let mut names = std::collections::BTreeSet::new();
    for proxy in &proxies {
        let clusters = mast_xds::cluster::clusters(&snap, proxy);
        let m = ClusterManager::new();
        let mut configs = Vec::new();
        for c in &clusters {
            let cfg = ClusterConfig::from_proto(c).unwrap_or_else(|e| panic!("{}: {e}", c.name));
            kinds.insert(format!("{:?}", cfg.lb));
            configs.push(cfg);
        }
        names.extend(clusters.iter().map(|c| c.name.clone()));
        m.apply_clusters(configs, &[]);
        let assignments: Vec<Assignment> = mast_xds::endpoint::endpoints(&snap, proxy)
            .iter()
            .map(|a| Assignment::from_proto(a).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        assert!(!assignments.is_empty());
        m.apply_assignments(assignments, &[]);
        assert_eq!(m.names().len(), clusters.len());
    }
    for want in [
        "ForwardProxyCluster",
        "PassthroughCluster",
        "InboundPassthroughCluster",
        "BlackHoleCluster",
        "outbound|80||httpbin.org",
        "inbound|9080||",
        "outbound|9080|v2|reviews.default.svc.cluster.local",
    ] {
        assert!(names.contains(want), "{want} not generated: {names:?}");
    }
    for want in [
        "RoundRobin",
        "LeastRequest",
        "Random",
        "RingHash",
        "Maglev",
        "ClusterProvided",
    ] {
        assert!(
            kinds.iter().any(|k| k.starts_with(want)),
            "{want} not seen in {kinds:?}"
        );
    }
}

/// Auto mTLS as mastd generates it: endpoints of workloads labelled
/// `security.istio.io/tlsMode: istio` get TLS (SDS secrets), the others stay plaintext;
/// `ISTIO_MUTUAL` makes every endpoint of its subset TLS.
#[tokio::test]
async fn generated_auto_mtls_selects_tls_per_endpoint() {
    let yaml = "
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: default}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Pod
metadata: {name: ratings-v1, namespace: default, labels: {app: ratings, version: v1, security.istio.io/tlsMode: istio}}
spec: {containers: [{name: app, image: ratings}]}
status: {podIP: 10.1.0.7}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-vm, namespace: default}
spec: {address: 10.2.0.7, labels: {app: ratings, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  subsets:
  - {name: v2, labels: {version: v2}, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}
";
    let snap = snapshot(yaml);
    let proxy = node(
        "sidecar~10.1.0.50~productpage-1.default~default.svc.cluster.local",
        serde_json::json!({"NAMESPACE": "default", "LABELS": {"app": "productpage"}}),
    );
    let store = crate::tls::SecretStore::new();
    let m = ClusterManager::new();
    let configs = mast_xds::cluster::clusters(&snap, &proxy)
        .iter()
        .map(|c| {
            ClusterConfig::from_proto_with(c, &store).unwrap_or_else(|e| panic!("{}: {e}", c.name))
        })
        .collect();
    m.apply_clusters(configs, &[]);
    let assignments: Vec<Assignment> = mast_xds::endpoint::endpoints(&snap, &proxy)
        .iter()
        .map(|a| Assignment::from_proto(a).unwrap())
        .collect();
    m.apply_assignments(assignments, &[]);
    let tls_of = |cluster: &str| -> Vec<(String, bool)> {
        let c = m.get(cluster).unwrap_or_else(|| panic!("{cluster}"));
        let mut eps: Vec<(String, bool)> = c
            .endpoints()
            .iter()
            .map(|e| (e.address().ip().to_string(), e.is_tls()))
            .collect();
        eps.sort();
        eps
    };
    assert_eq!(
        tls_of("outbound|9080||ratings.default.svc.cluster.local"),
        [
            ("10.1.0.7".to_owned(), true),
            ("10.2.0.7".to_owned(), false)
        ]
    );
    assert_eq!(
        tls_of("outbound|9080|v2|ratings.default.svc.cluster.local"),
        [("10.2.0.7".to_owned(), true)]
    );
}
