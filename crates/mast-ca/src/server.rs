//! [`CaService`]: the server side of `istio.v1.auth.IstioCertificateService`, mounted by
//! mastd on its xDS gRPC port. A request is authenticated from its
//! `authorization: Bearer <token>` metadata by the configured [`Authenticator`]s (local
//! tokens now; a Kubernetes TokenReview authenticator can be added), and the CSR is signed
//! for the authenticated identity only.
//!
//! Errors, as Istio's CA: UNAUTHENTICATED (no or bad token), INVALID_ARGUMENT (bad CSR),
//! PERMISSION_DENIED (CSR for another identity), INTERNAL (signing failed).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::RwLock;
use std::task::{Context, Poll};
use std::time::{Duration, UNIX_EPOCH};

use mast_core::SpiffeId;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use crate::authority::{CertificateAuthority, SignError};
use crate::pb::{CREATE_CERTIFICATE_PATH, IstioCertificateRequest, IstioCertificateResponse};
use crate::token::{AuthError, TokenIssuer};

/// An authenticated caller: the identity its certificate gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Namespace.
    pub namespace: String,
    /// Service account.
    pub service_account: String,
}

/// A boxed authentication future.
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<Caller, AuthError>> + Send + 'a>>;

/// Turns a bearer token into a caller (local HMAC tokens; Kubernetes TokenReview later).
pub trait Authenticator: Send + Sync + 'static {
    /// A short name for messages (`local-token`).
    fn name(&self) -> &'static str;
    /// Checks `token` (the text after `Bearer `).
    fn authenticate<'a>(&'a self, token: &'a str) -> AuthFuture<'a>;
}

/// Authenticates mastd's local tokens ([`TokenIssuer`]).
#[derive(Debug, Clone)]
pub struct LocalTokenAuthenticator(pub TokenIssuer);

impl Authenticator for LocalTokenAuthenticator {
    fn name(&self) -> &'static str {
        "local-token"
    }

    fn authenticate<'a>(&'a self, token: &'a str) -> AuthFuture<'a> {
        Box::pin(async move {
            let (namespace, service_account) = self.0.verify(token)?;
            Ok(Caller {
                namespace,
                service_account,
            })
        })
    }
}

/// The CA in use, swappable at run time (reload after a root rotation).
#[derive(Debug, Clone)]
pub struct SharedCa {
    inner: Arc<RwLock<Arc<CertificateAuthority>>>,
    metrics: CaMetrics,
}

impl SharedCa {
    /// Shares `ca`.
    pub fn new(ca: CertificateAuthority) -> Self {
        let metrics = CaMetrics::default();
        metrics.set_root_expiry(&ca);
        Self {
            inner: Arc::new(RwLock::new(Arc::new(ca))),
            metrics,
        }
    }

    /// The CA now.
    pub fn get(&self) -> Arc<CertificateAuthority> {
        self.inner.read().clone()
    }

    /// Replaces the CA (new requests use it).
    pub fn set(&self, ca: CertificateAuthority) {
        self.metrics.set_root_expiry(&ca);
        let ca = Arc::new(ca);
        *self.inner.write() = ca;
    }

    /// The CA's metrics.
    pub fn metrics(&self) -> &CaMetrics {
        &self.metrics
    }
}

/// Label of `mast_ca_csr_errors_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why the request failed (`unauthenticated`, `csr_parse`, `identity_mismatch`, ...).
    pub reason: String,
}

/// The CA's Prometheus metrics.
#[derive(Debug, Clone, Default)]
pub struct CaMetrics {
    /// Certificates issued.
    pub issued: Counter,
    /// Failed requests by reason.
    pub errors: Family<ReasonLabel, Counter>,
    /// The earliest root's notAfter, unix seconds.
    pub root_expiry: Gauge,
}

impl CaMetrics {
    /// Registers `mast_ca_certs_issued_total`, `mast_ca_csr_errors_total{reason}` and
    /// `citadel_server_root_cert_expiry_timestamp`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "mast_ca_certs_issued",
            "Workload certificates issued by the CA",
            self.issued.clone(),
        );
        registry.register(
            "mast_ca_csr_errors",
            "Certificate requests refused or failed, by reason",
            self.errors.clone(),
        );
        registry.register(
            "citadel_server_root_cert_expiry_timestamp",
            "The unix time (seconds) when the CA's root certificate expires",
            self.root_expiry.clone(),
        );
    }

    fn set_root_expiry(&self, ca: &CertificateAuthority) {
        let secs = ca
            .root_expiry()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.root_expiry
            .set(i64::try_from(secs).unwrap_or(i64::MAX));
    }

    fn error(&self, reason: &str) {
        self.errors
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }
}

struct State {
    ca: SharedCa,
    authenticators: Vec<Arc<dyn Authenticator>>,
}

/// The tonic service for `IstioCertificateService` (mount it with
/// `tonic::transport::Server::add_service`).
#[derive(Clone)]
pub struct CaService {
    state: Arc<State>,
}

impl std::fmt::Debug for CaService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaService").finish_non_exhaustive()
    }
}

impl CaService {
    /// Signs with `ca` for callers that one of `authenticators` accepts (tried in order).
    pub fn new(ca: SharedCa, authenticators: Vec<Arc<dyn Authenticator>>) -> Self {
        Self {
            state: Arc::new(State { ca, authenticators }),
        }
    }

    /// Handles one request (the gRPC method body; public for in-process tests).
    pub async fn create_certificate(
        &self,
        request: Request<IstioCertificateRequest>,
    ) -> Result<Response<IstioCertificateResponse>, Status> {
        let state = &self.state;
        let metrics = state.ca.metrics();
        let caller = match self.authenticate(&request).await {
            Ok(c) => c,
            Err(e) => {
                metrics.error("unauthenticated");
                return Err(Status::unauthenticated(format!(
                    "request authenticate failure: {e}"
                )));
            }
        };
        let ca = state.ca.get();
        let identity = SpiffeId::new(
            &ca.options().trust_domain,
            &caller.namespace,
            &caller.service_account,
        )
        .map_err(|e| {
            metrics.error("identity");
            Status::permission_denied(e.to_string())
        })?;
        let req = request.into_inner();
        let ttl = Duration::from_secs(req.validity_duration.max(0).unsigned_abs());
        match ca.sign(&req.csr, &identity, ttl) {
            Ok(cert_chain) => {
                metrics.issued.inc();
                tracing::debug!(%identity, ?ttl, "issued a workload certificate");
                Ok(Response::new(IstioCertificateResponse { cert_chain }))
            }
            Err(e) => {
                metrics.error(e.reason());
                tracing::info!(%identity, "refused a certificate request: {e}");
                let message = format!("CSR signing error ({e})");
                Err(match e {
                    SignError::Parse(_) | SignError::Signature(_) => {
                        Status::invalid_argument(message)
                    }
                    SignError::IdentityMismatch { .. } | SignError::TrustDomain { .. } => {
                        Status::permission_denied(message)
                    }
                    SignError::Internal(_) => Status::internal(message),
                })
            }
        }
    }

    async fn authenticate<T>(&self, request: &Request<T>) -> Result<Caller, AuthError> {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or(AuthError::Missing)?;
        let header = header
            .to_str()
            .map_err(|_| AuthError::Malformed("authorization is not ASCII".into()))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| AuthError::Malformed("expected `authorization: Bearer <token>`".into()))?
            .trim();
        let mut errors = Vec::new();
        for a in &self.state.authenticators {
            match a.authenticate(token).await {
                Ok(c) => return Ok(c),
                Err(e) => errors.push(format!("{}: {e}", a.name())),
            }
        }
        if errors.is_empty() {
            return Err(AuthError::Rejected("no authenticator is configured".into()));
        }
        Err(AuthError::Rejected(errors.join("; ")))
    }
}

impl NamedService for CaService {
    const NAME: &'static str = crate::pb::SERVICE_NAME;
}

struct CreateCertificate(CaService);

impl UnaryService<IstioCertificateRequest> for CreateCertificate {
    type Response = IstioCertificateResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;

    fn call(&mut self, request: Request<IstioCertificateRequest>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { service.create_certificate(request).await })
    }
}

impl Service<http::Request<tonic::body::Body>> for CaService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let service = self.clone();
        match req.uri().path() {
            CREATE_CERTIFICATE_PATH => Box::pin(async move {
                let codec = tonic_prost::ProstCodec::default();
                let mut grpc = Grpc::new(codec).apply_max_message_size_config(Some(1 << 20), None);
                Ok(grpc.unary(CreateCertificate(service), req).await)
            }),
            _ => Box::pin(async move { Ok(Status::unimplemented("").into_http()) }),
        }
    }
}
