//! The agent's Secret Discovery Service: Envoy's `sds-grpc` cluster reaches it on a Unix
//! socket in the work dir (`sds.sock`), and it serves the workload's certificates from the
//! certificate manager's watch channel, as Istio's agent does:
//!
//! - secret `default`: `tls_certificate { certificate_chain, private_key }` (inline PEM);
//! - secret `ROOTCA`: `validation_context { trusted_ca }` (every trusted root, inline PEM).
//!
//! Both `StreamSecrets` (state of the world, [`sotw`]) and `DeltaSecrets` ([`delta`]) are
//! served, plus the unary `FetchSecrets`. A resource's version is a hash of its content, so a
//! rotation that only changes the leaf pushes `default` again but not `ROOTCA`. Every open
//! stream gets the new version as soon as the bundle changes.
//!
//! Until the first certificate arrives the server either waits (Envoy keeps the clusters and
//! listeners that need it warming, as with Istio) or, when no certificate will ever come
//! ([`Pending::Refuse`]: no token file), says so: state of the world answers with the secret
//! named but without content (a `DataSource` with nothing in it, which Envoy rejects), delta
//! answers that the secret is removed. Either way Envoy stops waiting and goes on without
//! the secret: its TLS handshakes that need it fail while plaintext works.

mod delta;
mod sotw;

use std::collections::BTreeSet;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use envoy_types::pb::envoy::config::core::v3::DataSource;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::secret::Type;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, Secret, TlsCertificate,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_server::{
    SecretDiscoveryService, SecretDiscoveryServiceServer,
};
use envoy_types::pb::google::protobuf::Any;
use mast_ca::CertBundle;
use mast_ca::bundle::SharedBundle;
use prost::Message;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::{Request, Response, Status, Streaming};

use crate::metrics::AgentMetrics;

/// The socket's file name in the agent's work dir.
pub const SDS_SOCKET: &str = "sds.sock";
/// The bootstrap's static cluster that reaches the socket (Istio's name).
pub const SDS_CLUSTER: &str = "sds-grpc";
/// The workload certificate's secret name.
pub const WORKLOAD_SECRET: &str = "default";
/// The trusted roots' secret name.
pub const ROOT_SECRET: &str = "ROOTCA";
/// The type URL of an SDS resource.
pub const SECRET_TYPE_URL: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// How many responses may wait on one stream.
const STREAM_BUFFER: usize = 16;

/// What the server answers while it has no certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pending {
    /// Nothing: Envoy waits (a certificate is on its way).
    #[default]
    Wait,
    /// An answer without resources (no certificate will come): Envoy stops waiting.
    Refuse,
}

/// One secret as served: its name, its content version and the encoded resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    /// `default` or `ROOTCA`.
    pub name: String,
    /// A hash of the encoded secret, in hex.
    pub version: String,
    /// The secret as an `Any`.
    pub resource: Any,
}

/// The secret `name` made from `bundle`, or `None` for a name the agent does not serve.
pub fn secret(name: &str, bundle: &CertBundle) -> Option<Secret> {
    let inline = |pem: &str| DataSource {
        specifier: Some(Specifier::InlineBytes(pem.as_bytes().to_vec())),
        ..DataSource::default()
    };
    let kind = match name {
        WORKLOAD_SECRET => Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(inline(&bundle.chain_pem)),
            private_key: Some(inline(&bundle.key_pem)),
            ..TlsCertificate::default()
        }),
        ROOT_SECRET => Type::ValidationContext(CertificateValidationContext {
            trusted_ca: Some(inline(&bundle.roots_pem)),
            ..CertificateValidationContext::default()
        }),
        _ => return None,
    };
    Some(Secret {
        name: name.to_owned(),
        r#type: Some(kind),
    })
}

/// The secret `name` from `bundle`, encoded and versioned.
pub fn served(name: &str, bundle: &CertBundle) -> Option<Served> {
    let secret = secret(name, bundle)?;
    let value = secret.encode_to_vec();
    Some(Served {
        name: name.to_owned(),
        version: content_version(&[&value]),
        resource: Any {
            type_url: SECRET_TYPE_URL.to_owned(),
            value,
        },
    })
}

/// The secret `name` with its type but no content: what state of the world answers when no
/// certificate will come (Envoy rejects it, as a `DataSource` must hold something, and stops
/// waiting for the secret).
pub fn unusable(name: &str) -> Option<Served> {
    let empty = || Some(DataSource::default());
    let kind = match name {
        WORKLOAD_SECRET => Type::TlsCertificate(TlsCertificate {
            certificate_chain: empty(),
            private_key: empty(),
            ..TlsCertificate::default()
        }),
        ROOT_SECRET => Type::ValidationContext(CertificateValidationContext {
            trusted_ca: empty(),
            ..CertificateValidationContext::default()
        }),
        _ => return None,
    };
    let value = Secret {
        name: name.to_owned(),
        r#type: Some(kind),
    }
    .encode_to_vec();
    Some(Served {
        name: name.to_owned(),
        version: "none".to_owned(),
        resource: Any {
            type_url: SECRET_TYPE_URL.to_owned(),
            value,
        },
    })
}

/// A stable hex hash of some byte strings.
fn content_version(parts: &[&[u8]]) -> String {
    let mut h = std::hash::DefaultHasher::new();
    for p in parts {
        p.hash(&mut h);
    }
    format!("{:016x}", h.finish())
}

/// The names a request asks for: the named ones, or both secrets when it names none
/// (or names the wildcard `*`).
fn wanted(names: &[String]) -> BTreeSet<String> {
    if names.is_empty() || names.iter().any(|n| n == "*") {
        return [WORKLOAD_SECRET, ROOT_SECRET]
            .map(str::to_owned)
            .into_iter()
            .collect();
    }
    names.iter().cloned().collect()
}

/// Whether a request's type URL is a secret's (empty is taken as one).
fn check_type(type_url: &str) -> Result<(), Status> {
    if type_url.is_empty() || type_url == SECRET_TYPE_URL {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "this SDS server serves {SECRET_TYPE_URL} only, not {type_url:?}"
        )))
    }
}

/// The SDS service over a bundle watch channel. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SdsServer {
    bundles: watch::Receiver<SharedBundle>,
    pending: Pending,
    nonces: Arc<AtomicU64>,
    metrics: Option<AgentMetrics>,
}

impl SdsServer {
    /// A server for the bundles published on `bundles`.
    pub fn new(bundles: watch::Receiver<SharedBundle>, pending: Pending) -> Self {
        Self {
            bundles,
            pending,
            nonces: Arc::new(AtomicU64::new(0)),
            metrics: None,
        }
    }

    /// The same server, counting the secrets it pushes in `metrics`.
    pub fn with_metrics(self, metrics: AgentMetrics) -> Self {
        Self {
            metrics: Some(metrics),
            ..self
        }
    }

    /// Counts secrets sent to Envoy.
    fn pushed<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        if let Some(m) = &self.metrics {
            names.into_iter().for_each(|n| m.sds_pushed(n));
        }
    }

    /// The tonic service.
    pub fn into_service(self) -> SecretDiscoveryServiceServer<Self> {
        SecretDiscoveryServiceServer::new(self)
    }

    /// Listens on the Unix socket `path` (a stale socket file there is removed first).
    pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        UnixListener::bind(path)
    }

    /// Serves on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: UnixListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        tonic::transport::Server::builder()
            .add_service(self.into_service())
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
            .await
    }

    fn next_nonce(&self) -> String {
        (self.nonces.fetch_add(1, Ordering::Relaxed) + 1).to_string()
    }

    /// The current bundle's secrets among `names` (unknown names left out).
    fn current(&self, names: &BTreeSet<String>) -> Option<Vec<Served>> {
        let bundle = self.bundles.borrow().clone()?;
        Some(names.iter().filter_map(|n| served(n, &bundle)).collect())
    }
}

/// Responses of one stream.
type Stream<T> = ReceiverStream<Result<T, Status>>;

#[tonic::async_trait]
impl SecretDiscoveryService for SdsServer {
    type DeltaSecretsStream = Stream<DeltaDiscoveryResponse>;
    type StreamSecretsStream = Stream<DiscoveryResponse>;

    async fn delta_secrets(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaSecretsStream>, Status> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(delta::run(self.clone(), request.into_inner(), tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn stream_secrets(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamSecretsStream>, Status> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(sotw::run(self.clone(), request.into_inner(), tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn fetch_secrets(
        &self,
        request: Request<DiscoveryRequest>,
    ) -> Result<Response<DiscoveryResponse>, Status> {
        let request = request.into_inner();
        check_type(&request.type_url)?;
        let names = wanted(&request.resource_names);
        let Some(secrets) = self.current(&names) else {
            return Err(Status::unavailable("no workload certificate yet"));
        };
        Ok(Response::new(sotw::response(&secrets, self.next_nonce())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn bundle(chain: &str) -> CertBundle {
        CertBundle {
            identity: mast_core::SpiffeId::new("cluster.local", "ns", "sa").unwrap(),
            chain_pem: chain.into(),
            key_pem: "KEY".into(),
            roots_pem: "ROOTS".into(),
            not_before: SystemTime::UNIX_EPOCH,
            not_after: SystemTime::UNIX_EPOCH,
            serial_hex: "01".into(),
        }
    }

    #[test]
    fn secrets_carry_the_bundle_inline() {
        let b = bundle("CHAIN");
        let s = secret(WORKLOAD_SECRET, &b).unwrap();
        let Some(Type::TlsCertificate(tls)) = s.r#type else {
            panic!("not a certificate")
        };
        let bytes = |d: Option<DataSource>| match d.and_then(|d| d.specifier) {
            Some(Specifier::InlineBytes(b)) => String::from_utf8(b).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(bytes(tls.certificate_chain), "CHAIN");
        assert_eq!(bytes(tls.private_key), "KEY");
        let r = secret(ROOT_SECRET, &b).unwrap();
        let Some(Type::ValidationContext(vc)) = r.r#type else {
            panic!("not a validation context")
        };
        assert_eq!(bytes(vc.trusted_ca), "ROOTS");
        assert!(secret("other", &b).is_none());
    }

    #[test]
    fn versions_follow_content() {
        let (a, b) = (bundle("A"), bundle("B"));
        let v = |name, b: &CertBundle| served(name, b).unwrap().version;
        assert_ne!(v(WORKLOAD_SECRET, &a), v(WORKLOAD_SECRET, &b));
        assert_eq!(v(ROOT_SECRET, &a), v(ROOT_SECRET, &b));
        assert_eq!(v(ROOT_SECRET, &a), v(ROOT_SECRET, &a.clone()));
        assert_eq!(wanted(&[]).len(), 2);
        assert_eq!(wanted(&["default".into()]).len(), 1);
        assert!(check_type("x").is_err() && check_type("").is_ok());
    }
}
