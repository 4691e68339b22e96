//! `--webhook-addr` (istiod's 15017) on a real mastd: AdmissionReview v1 JSON as the API
//! server sends it, POSTed over HTTPS (mastd's certificate from the mesh CA, verified with the
//! mesh root for `mastd.mast-system.svc`). A Pod CREATE is answered with a JSONPatch that,
//! applied, gives the injected pod; a VirtualService with a negative weight is denied with
//! the field named; a valid one is allowed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use mast_inject::inject::patch;
use mast_test_support::{MastdError, MastdOptions, MastdProcess, TempDir, free_port};
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject as _;
use rustls::{ClientConfig, RootCertStore};
use serde_json::{Value, json};
use tokio_rustls::TlsConnector;

fn client_config(roots_pem: &str) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(roots_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// POSTs `body` to `path` over HTTPS/1.1: (status, body).
async fn post(port: u16, roots: &str, path: &str, body: &Value) -> std::io::Result<(u16, Vec<u8>)> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = ServerName::try_from("mastd.mast-system.svc").unwrap();
    let tls = TlsConnector::from(client_config(roots))
        .connect(name, tcp)
        .await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    let req = hyper::Request::post(path)
        .header("host", "mastd.mast-system.svc:15017")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap())))
        .unwrap();
    let resp = sender
        .send_request(req)
        .await
        .map_err(std::io::Error::other)?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    Ok((status, bytes.to_vec()))
}

/// A Pod CREATE as the API server sends it for a Deployment's ReplicaSet.
fn pod_review() -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0df28fbd-5f5f-11e8-bc74-36e6bb280816",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "jicki",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                         "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {
                    "generateName": "nginx-deployment-59897745f9-", "namespace": "jicki",
                    "labels": {"app": "nginx", "version": "v1.0.0"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                        "name": "nginx-deployment-59897745f9", "uid": "6a1f0e6c-2b9a-4d3c-9a5b-1b7b6c1e2f7a",
                        "controller": true, "blockOwnerDeletion": true}]
                },
                "spec": {
                    "containers": [{"name": "nginx", "image": "nginx:alpine",
                        "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}],
                        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}}}],
                    "serviceAccountName": "default"
                }
            },
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

fn vs_review(weight: i64) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "2c2cbd0e-3f0e-4b8a-9d57-7e0b0c8a1f11",
            "kind": {"group": "networking.istio.io", "version": "v1", "kind": "VirtualService"},
            "resource": {"group": "networking.istio.io", "version": "v1", "resource": "virtualservices"},
            "name": "nginx-vs", "namespace": "jicki", "operation": "CREATE",
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters"]},
            "object": {
                "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": {"name": "nginx-vs", "namespace": "jicki"},
                "spec": {"hosts": ["nginx-svc"],
                         "http": [{"route": [{"destination": {"host": "nginx-svc"}, "weight": weight}]}]}
            },
            "oldObject": null, "dryRun": false
        }
    })
}

async fn start(dir: &TempDir, port: u16) -> Option<MastdProcess> {
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    let mut options = match MastdOptions::new(&config) {
        Ok(o) => o,
        Err(MastdError::NotBuilt) => {
            eprintln!("skipped: mastd is not built (cargo build -p mastd)");
            return None;
        }
        Err(e) => panic!("{e}"),
    };
    options
        .extra_args
        .extend(["--webhook-addr".to_owned(), format!("127.0.0.1:{port}")]);
    Some(MastdProcess::start(&options).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_and_validation_webhooks_over_https() {
    let dir = TempDir::new("mastd-webhook").unwrap();
    let port = free_port();
    let Some(mastd) = start(&dir, port).await else {
        return;
    };
    let roots = mastd.root_cert_pem().unwrap();
    let review = pod_review();
    // The webhook listener may start a moment after the monitoring port answers.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, body) = loop {
        match post(port, &roots, "/inject", &review).await {
            Ok(r) => break r,
            Err(e) if Instant::now() < deadline => {
                eprintln!("retrying: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}\n{}", mastd.log_tail(30)),
        }
    };
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["kind"], "AdmissionReview");
    let resp = &answer["response"];
    assert_eq!(resp["uid"], "0df28fbd-5f5f-11e8-bc74-36e6bb280816");
    assert_eq!(resp["allowed"], true);
    assert_eq!(resp["patchType"], "JSONPatch");
    let ops = base64::engine::general_purpose::STANDARD
        .decode(resp["patch"].as_str().unwrap())
        .unwrap();
    let ops: Vec<Value> = serde_json::from_slice(&ops).unwrap();
    let pod = patch::apply(review["request"]["object"].clone(), &ops).unwrap();
    let spec = &pod["spec"];
    let names: Vec<&str> = spec["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nginx", "istio-proxy"]);
    assert_eq!(spec["initContainers"][0]["name"], "istio-init");
    assert_eq!(
        spec["containers"][0]["readinessProbe"]["httpGet"],
        json!({"path": "/app-health/nginx/readyz", "port": 15020})
    );
    assert_eq!(
        pod["metadata"]["labels"]["security.istio.io/tlsMode"],
        "istio"
    );
    assert!(pod["metadata"]["annotations"]["sidecar.istio.io/status"].is_string());

    let (status, body) = post(port, &roots, "/validate", &vs_review(-10))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    let resp = &answer["response"];
    assert_eq!(resp["uid"], "2c2cbd0e-3f0e-4b8a-9d57-7e0b0c8a1f11");
    assert_eq!(resp["allowed"], false);
    let msg = resp["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("VirtualService jicki/nginx-vs") && msg.contains("http[0].route[0].weight"),
        "{msg}"
    );
    let (_, body) = post(port, &roots, "/validate", &vs_review(100))
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["response"]["allowed"], true, "{answer}");

    let (status, body) = post(port, &roots, "/inject", &json!({"not": "a review"}))
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("not an AdmissionReview"));
    mastd.kill();
}
