//! What the SDS tests share: workload bundles made with rcgen (a root, and a leaf with the
//! workload's SPIFFE URI), an SDS server on a Unix socket in a temporary folder, and a
//! tonic client connected to it.

#![allow(clippy::unwrap_used, dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use hyper_util::rt::TokioIo;
use mast_agent::sds::{Pending, SDS_SOCKET, SdsServer};
use mast_ca::CertBundle;
use mast_ca::bundle::SharedBundle;
use mast_core::SpiffeId;
use mast_test_support::TempDir;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, SanType,
    SerialNumber,
};
use tokio::net::UnixStream;
use tokio::sync::watch;
use tonic::codegen::{Context, Future, Pin, Poll, Service};
use tonic::transport::{Channel, Endpoint, Uri};

/// A root CA that signs workload certificates.
pub struct TestCa {
    /// The root's PEM.
    pub root_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    /// A new self-signed root.
    pub fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "Test Mesh CA");
        params.distinguished_name = dn;
        let root = params.self_signed(&key).unwrap();
        Self {
            root_pem: root.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A bundle for `ns`/`sa` whose leaf has serial `serial`, valid a day.
    pub fn bundle(&self, ns: &str, sa: &str, serial: u64) -> CertBundle {
        let identity = SpiffeId::new("cluster.local", ns, sa).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let uri = format!("spiffe://{}", identity.principal());
        params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
        params.serial_number = Some(SerialNumber::from(serial));
        let now = SystemTime::now();
        let (not_before, not_after) = (
            now - Duration::from_secs(60),
            now + Duration::from_secs(86_400),
        );
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        let leaf = params.signed_by(&key, &self.issuer).unwrap();
        CertBundle {
            identity,
            chain_pem: leaf.pem(),
            key_pem: key.serialize_pem(),
            roots_pem: self.root_pem.clone(),
            not_before,
            not_after,
            serial_hex: format!("{serial:x}"),
        }
    }
}

/// A running SDS server and the channel feeding it.
pub struct Sds {
    /// Publish bundles here.
    pub bundles: watch::Sender<SharedBundle>,
    /// The socket.
    pub socket: PathBuf,
    /// The folder holding the socket.
    pub dir: TempDir,
}

impl Sds {
    /// Starts a server (on the caller's runtime) whose bundle starts as `first`.
    pub fn start(first: Option<CertBundle>, pending: Pending) -> Self {
        let dir = TempDir::new("mast-sds").unwrap();
        let socket = dir.join(SDS_SOCKET);
        let (bundles, rx) = watch::channel(first.map(Arc::new));
        let listener = SdsServer::bind(&socket).unwrap();
        let server = SdsServer::new(rx, pending);
        tokio::spawn(server.serve(listener, std::future::pending()));
        Self {
            bundles,
            socket,
            dir,
        }
    }

    /// Publishes a new bundle.
    pub fn publish(&self, bundle: CertBundle) {
        self.bundles.send_replace(Some(Arc::new(bundle)));
    }

    /// A client on the socket.
    pub async fn client(&self) -> SecretDiscoveryServiceClient<Channel> {
        connect(&self.socket).await
    }
}

/// A tonic client over the Unix socket `path`.
pub async fn connect(path: &Path) -> SecretDiscoveryServiceClient<Channel> {
    let channel = Endpoint::from_static("http://sds.local")
        .connect_with_connector(UnixConnector(path.to_path_buf()))
        .await
        .unwrap();
    SecretDiscoveryServiceClient::new(channel)
}

/// Connects to a Unix socket whatever the URI.
#[derive(Clone)]
struct UnixConnector(PathBuf);

impl Service<Uri> for UnixConnector {
    type Response = TokioIo<UnixStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let path = self.0.clone();
        Box::pin(async move { Ok(TokioIo::new(UnixStream::connect(path).await?)) })
    }
}
