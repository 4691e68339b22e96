//! The Kubernetes TokenReview authenticator against a fake API server (HTTPS with an rcgen
//! certificate on 127.0.0.1) that checks each request and answers as the real API server does;
//! and end to end through the CA's gRPC service.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use mast_ca::authority::{CertificateAuthority, make_csr};
use mast_ca::client::CaClient;
use mast_ca::kube_auth::{
    ClientToken, KubeAuthConfig, KubeTokenReviewAuthenticator, ReviewError, TOKEN_REVIEW_PATH,
};
use mast_ca::pb::IstioCertificateRequest;
use mast_ca::server::{Authenticator, CaService, LocalTokenAuthenticator, SharedCa};
use mast_ca::token::TokenIssuer;
use mast_ca::x509::{cert_facts, pem_certs};
use mast_core::SpiffeId;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tonic::Code;

/// mastd's own token, the one the fake API server accepts.
const MASTD_TOKEN: &str = "mastd-sa-token";

/// A request the fake API server received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: String,
    content_type: String,
    body: Value,
}

struct FakeApi {
    url: String,
    ca_pem: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeApi {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }

    fn config(&self) -> KubeAuthConfig {
        KubeAuthConfig::new(
            self.url.clone(),
            self.ca_pem.clone(),
            ClientToken::Static(MASTD_TOKEN.into()),
        )
        .with_timeout(Duration::from_millis(500))
    }

    fn authenticator(&self) -> KubeTokenReviewAuthenticator {
        KubeTokenReviewAuthenticator::new(self.config()).unwrap()
    }
}

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn sa_user(username: &str) -> Value {
    json!({"username": username, "uid": "ff578a9e-65d3-11e8-aad2-42010a8a001d",
           "groups": ["system:serviceaccounts", "system:serviceaccounts:foo", "system:authenticated"]})
}

/// The review status the API server gives for `token` asked for `audiences`.
fn review_status(token: &str, audiences: &Value) -> Value {
    match token {
        "tok-foo-bar" => {
            json!({"authenticated": true, "user": sa_user("system:serviceaccount:foo:bar"),
                               "audiences": audiences})
        }
        "tok-wrong-aud" => json!({"user": {}, "error":
            "[invalid bearer token, token audiences [\"https://kubernetes.default.svc\"] is invalid for the target audiences [\"istio-ca\"], unknown]"}),
        // An API server that ignores the requested audiences (reports none).
        "tok-no-aud" => {
            json!({"authenticated": true, "user": sa_user("system:serviceaccount:foo:bar")})
        }
        "tok-unauth" => json!({"authenticated": false, "user": {}}),
        "tok-user" => json!({"authenticated": true, "audiences": audiences,
            "user": {"username": "alice", "groups": ["system:authenticated"]}}),
        "tok-bad-name" => json!({"authenticated": true, "audiences": audiences,
            "user": sa_user("system:serviceaccount:foo")}),
        "tok-no-group" => json!({"authenticated": true, "audiences": audiences,
            "user": {"username": "system:serviceaccount:foo:bar", "groups": ["system:authenticated"]}}),
        "tok-5-parts" => json!({"authenticated": true, "audiences": audiences,
            "user": sa_user("system:serviceaccount:foo:bar:x")}),
        "tok-empty-ns" => json!({"authenticated": true, "audiences": audiences,
            "user": sa_user("system:serviceaccount::bar")}),
        _ => json!({"user": {}, "error": "[invalid bearer token, token lookup failed]"}),
    }
}

/// The answer: (HTTP status, body). Checks what the real API server checks.
async fn answer(seen: &Seen) -> (u16, Value) {
    if seen.authorization != format!("Bearer {MASTD_TOKEN}") {
        return (401, status_body(401, "Unauthorized", "Unauthorized"));
    }
    if seen.method != "POST" || seen.path != TOKEN_REVIEW_PATH {
        return (
            404,
            status_body(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        );
    }
    if seen.content_type != "application/json"
        || seen.body["apiVersion"] != "authentication.k8s.io/v1"
        || seen.body["kind"] != "TokenReview"
    {
        return (400, status_body(400, "BadRequest", "not a TokenReview"));
    }
    let spec = &seen.body["spec"];
    let token = spec["token"].as_str().unwrap_or_default();
    match token {
        "tok-forbidden" => {
            return (
                403,
                status_body(
                    403,
                    "Forbidden",
                    "tokenreviews.authentication.k8s.io is forbidden: User \"system:serviceaccount:mast:mastd\" cannot create resource \"tokenreviews\" in API group \"authentication.k8s.io\" at the cluster scope",
                ),
            );
        }
        "tok-500" => {
            return (
                500,
                status_body(500, "InternalError", "etcdserver: request timed out"),
            );
        }
        "tok-slow" => tokio::time::sleep(Duration::from_secs(5)).await,
        _ => {}
    }
    let audiences = spec.get("audiences").cloned().unwrap_or(json!([]));
    let body = json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null}, "spec": spec,
        "status": review_status(token, &audiences)});
    (201, body)
}

async fn serve(
    req: hyper::Request<hyper::body::Incoming>,
    log: Arc<Mutex<Vec<Seen>>>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let header = |name: http::header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut seen = Seen {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        authorization: header(http::header::AUTHORIZATION),
        content_type: header(http::header::CONTENT_TYPE),
        body: Value::Null,
    };
    let body = req.into_body().collect().await.unwrap().to_bytes();
    seen.body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    log.lock().push(seen.clone());
    let (status, body) = answer(&seen).await;
    Ok(hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap())
}

async fn fake_api() -> FakeApi {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        cert.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req| serve(req, log.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    FakeApi {
        url,
        ca_pem: cert.cert.pem(),
        seen,
        task,
    }
}

#[tokio::test]
async fn a_service_account_token_gives_its_namespace_and_service_account() {
    let api = fake_api().await;
    let caller = api.authenticator().review("tok-foo-bar").await.unwrap();
    assert_eq!(caller.namespace, "foo");
    assert_eq!(caller.service_account, "bar");

    let seen = api.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.method, "POST");
    assert_eq!(s.path, "/apis/authentication.k8s.io/v1/tokenreviews");
    assert_eq!(s.authorization, "Bearer mastd-sa-token");
    assert_eq!(s.content_type, "application/json");
    assert_eq!(s.body["spec"]["token"], "tok-foo-bar");
    assert_eq!(s.body["spec"]["audiences"], json!(["istio-ca"]));
}

#[tokio::test]
async fn every_refusal_has_its_message() {
    let api = fake_api().await;
    let auth = api.authenticator();
    let cases: &[(&str, &str)] = &[
        ("tok-unauth", "the token is not authenticated"),
        (
            "tok-wrong-aud",
            "the service account authentication returns an error: [invalid bearer token, token audiences",
        ),
        (
            "tok-no-aud",
            "the token is not valid for the audience [\"istio-ca\"] (reviewed audiences: [])",
        ),
        (
            "tok-user",
            "the token is not a service account (user \"alice\")",
        ),
        (
            "tok-bad-name",
            "invalid username field in the token review result: \"system:serviceaccount:foo\"",
        ),
        (
            "tok-forbidden",
            "the API server refused the TokenReview (HTTP 403): tokenreviews.authentication.k8s.io is forbidden",
        ),
        (
            "tok-500",
            "the API server refused the TokenReview (HTTP 500): etcdserver: request timed out",
        ),
        (
            "tok-no-group",
            "the token is not a service account (user \"system:serviceaccount:foo:bar\")",
        ),
        (
            "tok-5-parts",
            "invalid username field in the token review result",
        ),
        (
            "tok-empty-ns",
            "invalid username field in the token review result",
        ),
        (
            "tok-unknown",
            "returns an error: [invalid bearer token, token lookup failed]",
        ),
    ];
    for (token, want) in cases {
        let err = auth.review(token).await.unwrap_err().to_string();
        assert!(err.contains(want), "{token}: {err}");
    }
    // Through the Authenticator trait: AuthError::Rejected with the same message.
    let err = auth.authenticate("tok-unauth").await.unwrap_err();
    assert_eq!(err.to_string(), "the token is not authenticated");
}

#[tokio::test]
async fn local_and_empty_tokens_are_not_sent() {
    let api = fake_api().await;
    let auth = api.authenticator();
    let local = TokenIssuer::ephemeral().issue("foo", "bar");
    assert_eq!(auth.review(&local).await, Err(ReviewError::LocalToken));
    assert_eq!(auth.review("  ").await, Err(ReviewError::Empty));
    assert!(api.seen().is_empty(), "{:?}", api.seen());
}

#[tokio::test]
async fn api_failures_timeouts_and_untrusted_servers_are_refused() {
    let api = fake_api().await;
    let err = api.authenticator().review("tok-slow").await.unwrap_err();
    assert!(matches!(err, ReviewError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("timed out after 500ms"), "{err}");

    // mastd's own credential refused by the API server.
    let config = KubeAuthConfig {
        token: ClientToken::Static("wrong".into()),
        ..api.config()
    };
    let err = KubeTokenReviewAuthenticator::new(config)
        .unwrap()
        .review("tok-foo-bar")
        .await;
    assert_eq!(
        err,
        Err(ReviewError::Api {
            status: 401,
            message: "Unauthorized".into()
        })
    );

    // A server certificate the CA bundle does not trust.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let config = KubeAuthConfig {
        ca_pem: other.cert.pem(),
        ..api.config()
    };
    let err = KubeTokenReviewAuthenticator::new(config)
        .unwrap()
        .review("tok-foo-bar")
        .await;
    let err = err.unwrap_err().to_string();
    assert!(err.contains("TLS handshake"), "{err}");

    // Nothing listening.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", closed.local_addr().unwrap());
    drop(closed);
    let config = KubeAuthConfig {
        api_server: url,
        ..api.config()
    };
    let err = KubeTokenReviewAuthenticator::new(config)
        .unwrap()
        .review("tok-foo-bar")
        .await;
    let err = err.unwrap_err().to_string();
    assert!(err.contains("failed: connecting to 127.0.0.1"), "{err}");

    // Configuration errors.
    let config = KubeAuthConfig {
        ca_pem: "not pem".into(),
        ..api.config()
    };
    assert!(KubeTokenReviewAuthenticator::new(config).is_err());
    let config = KubeAuthConfig {
        api_server: api.url.replace("https", "http"),
        ..api.config()
    };
    let err = KubeTokenReviewAuthenticator::new(config)
        .unwrap_err()
        .to_string();
    assert!(err.contains("https only"), "{err}");
}

#[tokio::test]
async fn the_client_token_file_is_reread_for_every_review() {
    let api = fake_api().await;
    let dir = std::env::temp_dir().join(format!("mast-kube-auth-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "stale\n").unwrap();
    let config = KubeAuthConfig {
        token: ClientToken::File(file.clone()),
        ..api.config()
    };
    let auth = KubeTokenReviewAuthenticator::new(config).unwrap();
    let err = auth.review("tok-foo-bar").await.unwrap_err();
    assert!(matches!(err, ReviewError::Api { status: 401, .. }), "{err}");
    std::fs::write(&file, format!("{MASTD_TOKEN}\n")).unwrap();
    assert_eq!(
        auth.review("tok-foo-bar").await.unwrap().service_account,
        "bar"
    );
    std::fs::remove_file(&file).unwrap();
    let err = auth.review("tok-foo-bar").await.unwrap_err().to_string();
    assert!(
        err.contains("cannot read mastd's API server token"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The CA over real gRPC with mastd's authenticators: local tokens, then TokenReview.
async fn start_ca(api: &FakeApi) -> (String, TokenIssuer, tokio::sync::oneshot::Sender<()>) {
    let issuer = TokenIssuer::ephemeral();
    let shared = SharedCa::new(CertificateAuthority::ephemeral("cluster.local").unwrap());
    let auth: Vec<Arc<dyn Authenticator>> = vec![
        Arc::new(LocalTokenAuthenticator(issuer.clone())),
        Arc::new(api.authenticator()),
    ];
    let service = CaService::new(shared, auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = rx.await;
            }),
    );
    (addr, issuer, tx)
}

fn csr_for(ns: &str, sa: &str) -> IstioCertificateRequest {
    let id = SpiffeId::new("cluster.local", ns, sa).unwrap();
    IstioCertificateRequest {
        csr: make_csr(&id).unwrap().1,
        validity_duration: 3600,
        metadata: None,
    }
}

#[tokio::test]
async fn the_ca_signs_for_the_reviewed_service_account_only() {
    let api = fake_api().await;
    let (addr, issuer, _stop) = start_ca(&api).await;
    let mut client = CaClient::new(&addr).unwrap();

    let resp = client
        .create_certificate(csr_for("foo", "bar"), Some("tok-foo-bar"))
        .await
        .unwrap();
    let leaf = cert_facts(&pem_certs(&resp.cert_chain[0]).unwrap()[0]).unwrap();
    assert_eq!(
        leaf.uris,
        vec!["spiffe://cluster.local/ns/foo/sa/bar".to_owned()]
    );

    let err = client
        .create_certificate(csr_for("foo", "other"), Some("tok-foo-bar"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    let err = client
        .create_certificate(csr_for("foo", "bar"), Some("tok-unauth"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(
        err.message().starts_with("request authenticate failure:"),
        "{}",
        err.message()
    );
    assert!(
        err.message()
            .contains("kube-token-review: the token is not authenticated"),
        "{}",
        err.message()
    );

    let err = client
        .create_certificate(csr_for("foo", "bar"), Some("tok-forbidden"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(err.message().contains("HTTP 403"), "{}", err.message());

    // Local tokens keep working and never reach the API server.
    let reviews = api.seen().len();
    let local = issuer.issue("shop", "cart");
    client
        .create_certificate(csr_for("shop", "cart"), Some(&local))
        .await
        .unwrap();
    let forged = TokenIssuer::ephemeral().issue("shop", "cart");
    let err = client
        .create_certificate(csr_for("shop", "cart"), Some(&forged))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert_eq!(
        api.seen().len(),
        reviews,
        "local tokens were sent to the API server"
    );
}

#[tokio::test]
async fn api_server_urls_and_in_cluster_configuration() {
    let api = fake_api().await;
    // A path prefix is kept (the fake server only serves the bare path: 404).
    let config = KubeAuthConfig {
        api_server: format!("{}/prefix/", api.url),
        ..api.config()
    };
    let err = KubeTokenReviewAuthenticator::new(config)
        .unwrap()
        .review("tok-foo-bar")
        .await;
    assert!(
        matches!(err, Err(ReviewError::Api { status: 404, .. })),
        "{err:?}"
    );
    assert_eq!(api.seen()[0].path, format!("/prefix{TOKEN_REVIEW_PATH}"));
    let config = KubeAuthConfig {
        api_server: format!("{}/", api.url),
        ..api.config()
    };
    let caller = KubeTokenReviewAuthenticator::new(config)
        .unwrap()
        .review("tok-foo-bar")
        .await;
    assert_eq!(caller.unwrap().namespace, "foo");

    let dir = std::env::temp_dir().join(format!("mast-kube-auth-pod-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = Some("443".to_owned());
    let err = KubeAuthConfig::in_cluster_from(None, port.clone(), &dir).unwrap_err();
    assert!(
        err.to_string()
            .contains("KUBERNETES_SERVICE_HOST is not set"),
        "{err}"
    );
    let err = KubeAuthConfig::in_cluster_from(Some("10.96.0.1".into()), None, &dir).unwrap_err();
    assert!(
        err.to_string()
            .contains("KUBERNETES_SERVICE_PORT is not set"),
        "{err}"
    );
    let err =
        KubeAuthConfig::in_cluster_from(Some("10.96.0.1".into()), port.clone(), &dir).unwrap_err();
    assert!(err.to_string().contains("ca.crt"), "{err}");
    std::fs::write(dir.join("ca.crt"), &api.ca_pem).unwrap();
    let err =
        KubeAuthConfig::in_cluster_from(Some("10.96.0.1".into()), port.clone(), &dir).unwrap_err();
    assert!(err.to_string().contains("token"), "{err}");
    std::fs::write(dir.join("token"), MASTD_TOKEN).unwrap();
    let config = KubeAuthConfig::in_cluster_from(Some("fd00::1".into()), port, &dir).unwrap();
    assert_eq!(config.api_server, "https://[fd00::1]:443");
    assert_eq!(config.token, ClientToken::File(dir.join("token")));
    assert_eq!(config.audiences, vec!["istio-ca".to_owned()]);
    assert_eq!(config.timeout, Duration::from_secs(5));
    let auth = KubeTokenReviewAuthenticator::new(config).unwrap();
    assert_eq!(auth.api_server(), "https://[fd00::1]:443");
    std::fs::remove_dir_all(&dir).unwrap();
}
