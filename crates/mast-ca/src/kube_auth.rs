//! [`KubeTokenReviewAuthenticator`]: authenticates CA callers by their Kubernetes
//! service-account token, as istiod does (`kubeauth.KubeJWTAuthenticator`): the token is sent to
//! the API server in an `authentication.k8s.io/v1` `TokenReview` (audience `istio-ca`), with
//! mastd's own credentials, and the reviewed username `system:serviceaccount:<ns>:<sa>` is the
//! caller's identity.
//!
//! Refused (each with its own message; the CA answers UNAUTHENTICATED): a token the API server
//! does not authenticate or reports an error for, a token whose reviewed audiences do not include
//! the requested one, a user that is not a service account (not in the `system:serviceaccounts`
//! group, or a username not of the `system:serviceaccount:<ns>:<sa>` form), and any API or
//! transport failure (HTTP error, timeout, TLS). mastd's local tokens (`mast1.` prefix) are never
//! sent to the API server.
//!
//! Transport: HTTPS (rustls trusting only the configured CA bundle), HTTP/1.1, one connection
//! per review, the whole review bounded by a timeout (5 s by default).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::authentication::v1::{
    TokenReview, TokenReviewSpec, TokenReviewStatus, UserInfo,
};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::server::{AuthFuture, Authenticator, Caller};
use crate::token::{AuthError, TOKEN_PREFIX};

/// The audience a workload's projected token is requested for (Istio's `istio-ca`).
pub const DEFAULT_AUDIENCE: &str = "istio-ca";

/// Where TokenReviews are created on the API server.
pub const TOKEN_REVIEW_PATH: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

/// The in-cluster service-account folder (`token`, `ca.crt`).
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The longest one review (connect, TLS, request, answer) may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest API server answer read.
const MAX_BODY: usize = 1 << 20;

/// The username prefix of service accounts.
const SERVICE_ACCOUNT_USER_PREFIX: &str = "system:serviceaccount:";

/// The group every service account belongs to.
const SERVICE_ACCOUNT_GROUP: &str = "system:serviceaccounts";

/// mastd's own credential for the API server.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientToken {
    /// A fixed bearer token.
    Static(String),
    /// A token file, re-read before every review (projected tokens are rotated by the kubelet).
    File(PathBuf),
}

/// How to reach the API server.
#[derive(Clone, PartialEq, Eq)]
pub struct KubeAuthConfig {
    /// The API server's base URL, `https://host:port`.
    pub api_server: String,
    /// PEM certificates trusted for the API server (only these).
    pub ca_pem: String,
    /// mastd's bearer token.
    pub token: ClientToken,
    /// The audiences asked for in the review (default `["istio-ca"]`).
    pub audiences: Vec<String>,
    /// The longest one review may take (default 5 s).
    pub timeout: Duration,
}

impl std::fmt::Debug for KubeAuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeAuthConfig")
            .field("api_server", &self.api_server)
            .field("token", &self.token.describe())
            .field("audiences", &self.audiences)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ClientToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl ClientToken {
    /// For messages: the file, never the token itself.
    fn describe(&self) -> String {
        match self {
            Self::Static(_) => "(static token)".to_owned(),
            Self::File(p) => p.display().to_string(),
        }
    }

    /// The token now (a file is read again), trimmed; never empty.
    fn read(&self) -> Result<String, ReviewError> {
        let token = match self {
            Self::Static(t) => t.trim().to_owned(),
            Self::File(path) => std::fs::read_to_string(path)
                .map_err(|e| ReviewError::Credentials {
                    path: self.describe(),
                    reason: e.to_string(),
                })?
                .trim()
                .to_owned(),
        };
        if token.is_empty() {
            return Err(ReviewError::Credentials {
                path: self.describe(),
                reason: "empty".into(),
            });
        }
        Ok(token)
    }
}

/// Why the authenticator cannot be configured.
#[derive(Debug, thiserror::Error)]
pub enum KubeConfigError {
    /// `KUBERNETES_SERVICE_HOST` / `_PORT` are not set.
    #[error("not running in a Kubernetes pod: {0} is not set")]
    NotInCluster(&'static str),
    /// An in-cluster file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The API server URL is unusable.
    #[error("bad API server URL {url:?}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The CA bundle or TLS setup is unusable.
    #[error("API server TLS: {0}")]
    Tls(String),
}

/// Why a token was refused. The messages reach the caller (after `request authenticate
/// failure:`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// A mastd local token: not a Kubernetes token, not sent to the API server.
    #[error("a local mast token is not a Kubernetes token (not sent to the API server)")]
    LocalToken,
    /// An empty token.
    #[error("the token is empty")]
    Empty,
    /// mastd's own token cannot be read.
    #[error("cannot read mastd's API server token {path}: {reason}")]
    Credentials {
        /// The token file.
        path: String,
        /// The failure.
        reason: String,
    },
    /// Connecting or talking to the API server failed.
    #[error("the TokenReview request to {api} failed: {reason}")]
    Transport {
        /// The API server URL.
        api: String,
        /// The failure.
        reason: String,
    },
    /// The API server did not answer in time.
    #[error("the TokenReview request to {api} timed out after {timeout:?}")]
    Timeout {
        /// The API server URL.
        api: String,
        /// The limit.
        timeout: Duration,
    },
    /// The API server answered with an HTTP error.
    #[error("the API server refused the TokenReview (HTTP {status}): {message}")]
    Api {
        /// The HTTP status code.
        status: u16,
        /// The API server's message (its `Status.message`, else the body).
        message: String,
    },
    /// The answer is not a TokenReview.
    #[error("cannot decode the TokenReview answer: {0}")]
    Decode(String),
    /// The review reported an error (`status.error`).
    #[error("the service account authentication returns an error: {0}")]
    Review(String),
    /// `status.authenticated` is not true.
    #[error("the token is not authenticated")]
    NotAuthenticated,
    /// `status.audiences` does not include a requested audience.
    #[error("the token is not valid for the audience {wanted:?} (reviewed audiences: {got:?})")]
    Audience {
        /// The audiences asked for.
        wanted: Vec<String>,
        /// The audiences the API server reported.
        got: Vec<String>,
    },
    /// The user is not a service account.
    #[error("the token is not a service account (user {0:?})")]
    NotServiceAccount(String),
    /// The username is not `system:serviceaccount:<ns>:<sa>`.
    #[error("invalid username field in the token review result: {0:?}")]
    BadUsername(String),
}

impl KubeAuthConfig {
    /// An API server at `api_server` (`https://host:port`) trusted through `ca_pem`, called with
    /// `token`; audience `istio-ca`, timeout 5 s.
    pub fn new(
        api_server: impl Into<String>,
        ca_pem: impl Into<String>,
        token: ClientToken,
    ) -> Self {
        Self {
            api_server: api_server.into(),
            ca_pem: ca_pem.into(),
            token,
            audiences: vec![DEFAULT_AUDIENCE.to_owned()],
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Asks the review for `audiences` instead of `istio-ca`.
    pub fn with_audiences(mut self, audiences: Vec<String>) -> Self {
        self.audiences = audiences;
        self
    }

    /// Bounds one review by `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The pod's configuration: `KUBERNETES_SERVICE_HOST`/`_PORT` and
    /// `/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt}`.
    pub fn in_cluster() -> Result<Self, KubeConfigError> {
        Self::in_cluster_from(
            std::env::var("KUBERNETES_SERVICE_HOST").ok(),
            std::env::var("KUBERNETES_SERVICE_PORT").ok(),
            Path::new(SERVICE_ACCOUNT_DIR),
        )
    }

    /// As [`KubeAuthConfig::in_cluster`], from the given host, port and service-account folder.
    pub fn in_cluster_from(
        host: Option<String>,
        port: Option<String>,
        dir: &Path,
    ) -> Result<Self, KubeConfigError> {
        let host = host
            .filter(|h| !h.is_empty())
            .ok_or(KubeConfigError::NotInCluster("KUBERNETES_SERVICE_HOST"))?;
        let port = port
            .filter(|p| !p.is_empty())
            .ok_or(KubeConfigError::NotInCluster("KUBERNETES_SERVICE_PORT"))?;
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let ca_path = dir.join("ca.crt");
        let ca_pem = std::fs::read_to_string(&ca_path).map_err(|source| KubeConfigError::Read {
            path: ca_path,
            source,
        })?;
        let token_path = dir.join("token");
        std::fs::metadata(&token_path).map_err(|source| KubeConfigError::Read {
            path: token_path.clone(),
            source,
        })?;
        Ok(Self::new(
            format!("https://{host}:{port}"),
            ca_pem,
            ClientToken::File(token_path),
        ))
    }

    /// Whether mastd runs in a pod: `KUBERNETES_SERVICE_HOST` is set and the service-account
    /// token and CA files exist.
    pub fn in_cluster_available() -> bool {
        let dir = Path::new(SERVICE_ACCOUNT_DIR);
        std::env::var_os("KUBERNETES_SERVICE_HOST").is_some_and(|h| !h.is_empty())
            && dir.join("token").is_file()
            && dir.join("ca.crt").is_file()
    }
}

/// The API server endpoint, parsed once.
#[derive(Debug, Clone)]
struct Endpoint {
    url: String,
    host: String,
    port: u16,
    authority: String,
    path: String,
}

impl Endpoint {
    fn parse(url: &str) -> Result<Self, KubeConfigError> {
        let bad = |reason: &str| KubeConfigError::Url {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad("the API server is reached over https only"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            port: authority.port_u16().unwrap_or(443),
            authority: authority.as_str().to_owned(),
            path: format!("{}{TOKEN_REVIEW_PATH}", uri.path().trim_end_matches('/')),
            host,
        })
    }
}

/// Authenticates callers with a Kubernetes TokenReview (see the module docs).
pub struct KubeTokenReviewAuthenticator {
    endpoint: Endpoint,
    tls: tokio_rustls::TlsConnector,
    token: ClientToken,
    audiences: Vec<String>,
    timeout: Duration,
}

impl std::fmt::Debug for KubeTokenReviewAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeTokenReviewAuthenticator")
            .field("api_server", &self.endpoint.url)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl KubeTokenReviewAuthenticator {
    /// Checks the URL and CA bundle; no connection is made until the first review.
    pub fn new(config: KubeAuthConfig) -> Result<Self, KubeConfigError> {
        let endpoint = Endpoint::parse(&config.api_server)?;
        let mut roots = rustls::RootCertStore::empty();
        let certs = crate::bundle::certs_der(&config.ca_pem, "API server CA bundle")
            .map_err(|e| KubeConfigError::Tls(e.to_string()))?;
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| KubeConfigError::Tls(format!("API server CA bundle: {e}")))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| KubeConfigError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            endpoint,
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            token: config.token,
            audiences: config.audiences,
            timeout: config.timeout,
        })
    }

    /// The API server's URL.
    pub fn api_server(&self) -> &str {
        &self.endpoint.url
    }

    /// Reviews `token` and returns the service account it belongs to.
    pub async fn review(&self, token: &str) -> Result<Caller, ReviewError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(ReviewError::Empty);
        }
        if token.starts_with(TOKEN_PREFIX) {
            return Err(ReviewError::LocalToken);
        }
        let body = self.request_body(token)?;
        let bearer = self.token.read()?;
        let answer = tokio::time::timeout(self.timeout, self.post(body, &bearer))
            .await
            .map_err(|_| ReviewError::Timeout {
                api: self.endpoint.url.clone(),
                timeout: self.timeout,
            })??;
        let review: TokenReview =
            serde_json::from_slice(&answer).map_err(|e| ReviewError::Decode(e.to_string()))?;
        let caller = check_status(review.status.unwrap_or_default(), &self.audiences)?;
        tracing::debug!(
            ns = %caller.namespace,
            sa = %caller.service_account,
            "TokenReview authenticated a CA caller"
        );
        Ok(caller)
    }

    fn request_body(&self, token: &str) -> Result<Vec<u8>, ReviewError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: Some(self.audiences.clone()).filter(|a| !a.is_empty()),
            },
            ..TokenReview::default()
        };
        serde_json::to_vec(&review).map_err(|e| ReviewError::Decode(e.to_string()))
    }

    /// POSTs the review on a fresh HTTPS connection; the body of a 2xx answer.
    async fn post(&self, body: Vec<u8>, bearer: &str) -> Result<Bytes, ReviewError> {
        let ep = &self.endpoint;
        let transport = |reason: String| ReviewError::Transport {
            api: ep.url.clone(),
            reason,
        };
        let tcp = TcpStream::connect((ep.host.as_str(), ep.port))
            .await
            .map_err(|e| transport(format!("connecting to {}: {e}", ep.authority)))?;
        let name = ServerName::try_from(ep.host.clone())
            .map_err(|e| transport(format!("bad TLS server name: {e}")))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| transport(format!("TLS handshake: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| transport(format!("HTTP handshake: {e}")))?;
        let conn = tokio::spawn(conn);
        let req = http::Request::post(ep.path.as_str())
            .header(http::header::HOST, ep.authority.as_str())
            .header(http::header::AUTHORIZATION, format!("Bearer {bearer}"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("mastd/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| transport(format!("building the request: {e}")))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| transport(format!("sending the request: {e}")))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| transport(format!("reading the answer: {e}")))?
            .to_bytes();
        conn.abort();
        if !status.is_success() {
            return Err(ReviewError::Api {
                status: status.as_u16(),
                message: api_message(&body),
            });
        }
        Ok(body)
    }
}

/// The `message` of a Kubernetes `Status` answer, else the body's text (shortened).
fn api_message(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    if let Some(m) = parsed
        .as_ref()
        .and_then(|v| v.get("message"))
        .and_then(serde_json::Value::as_str)
    {
        return m.to_owned();
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(no message)".to_owned();
    }
    text.chars().take(200).collect()
}

/// Istio's checks on a review's status (`getTokenReviewResult`), plus the audience.
fn check_status(status: TokenReviewStatus, wanted: &[String]) -> Result<Caller, ReviewError> {
    if let Some(error) = status.error.filter(|e| !e.is_empty()) {
        return Err(ReviewError::Review(error));
    }
    if status.authenticated != Some(true) {
        return Err(ReviewError::NotAuthenticated);
    }
    let got = status.audiences.unwrap_or_default();
    if !wanted.is_empty() && !wanted.iter().any(|w| got.contains(w)) {
        return Err(ReviewError::Audience {
            wanted: wanted.to_vec(),
            got,
        });
    }
    let user = status.user.unwrap_or_default();
    service_account(&user)
}

/// The namespace and service account of a `system:serviceaccount:<ns>:<sa>` user.
fn service_account(user: &UserInfo) -> Result<Caller, ReviewError> {
    let username = user.username.clone().unwrap_or_default();
    let in_group = user
        .groups
        .iter()
        .flatten()
        .any(|g| g == SERVICE_ACCOUNT_GROUP);
    if !in_group || !username.starts_with(SERVICE_ACCOUNT_USER_PREFIX) {
        return Err(ReviewError::NotServiceAccount(username));
    }
    let parts: Vec<&str> = username.split(':').collect();
    match parts.as_slice() {
        [_, _, ns, sa] if !ns.is_empty() && !sa.is_empty() => Ok(Caller {
            namespace: (*ns).to_owned(),
            service_account: (*sa).to_owned(),
        }),
        _ => Err(ReviewError::BadUsername(username)),
    }
}

impl Authenticator for KubeTokenReviewAuthenticator {
    fn name(&self) -> &'static str {
        "kube-token-review"
    }

    fn authenticate<'a>(&'a self, token: &'a str) -> AuthFuture<'a> {
        Box::pin(async move {
            self.review(token).await.map_err(|e| {
                if !matches!(e, ReviewError::LocalToken) {
                    tracing::info!(api = %self.endpoint.url, "TokenReview refused a CA caller: {e}");
                }
                AuthError::Rejected(e.to_string())
            })
        })
    }
}
