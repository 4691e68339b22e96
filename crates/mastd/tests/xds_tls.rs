//! `--xds-tls-addr` (istiod's 15012): a proxy that holds only the mesh root reaches mastd over
//! TLS — the handshake verifies mastd's certificate (issued by the mesh CA for
//! `mastd.mast-system.svc`), an ADS stream over it receives the mesh's clusters — while a
//! client that trusts another root is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use hyper_util::rt::TokioIo;
use mast_test_support::{MastdOptions, MastdProcess, TempDir, free_port};
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject as _;
use rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

const MESH: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n  namespace: default\nspec:\n  selector:\n    app: reviews\n  ports:\n  - name: http\n    port: 9080\n";

fn client_config(roots_pem: &str) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(roots_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

async fn start(dir: &TempDir, tls_port: u16) -> MastdProcess {
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("mesh.yaml"), MESH).unwrap();
    let mut options = MastdOptions::new(&config).unwrap();
    options
        .extra_args
        .extend(["--xds-tls-addr".to_owned(), format!("127.0.0.1:{tls_port}")]);
    MastdProcess::start(&options).await.unwrap()
}

/// An ADS client whose connections are TLS to `port`, verified with `config` for `name`.
async fn ads_over_tls(
    port: u16,
    config: Arc<ClientConfig>,
    name: &'static str,
) -> Result<AggregatedDiscoveryServiceClient<tonic::transport::Channel>, tonic::transport::Error> {
    let connector = tower::service_fn(move |_uri: http::Uri| {
        let config = Arc::clone(&config);
        async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            let tls = TlsConnector::from(config)
                .connect(ServerName::try_from(name).unwrap(), tcp)
                .await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    let channel = tonic::transport::Endpoint::from_static("http://mastd.mast-system.svc:15012")
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(connector)
        .await?;
    Ok(AggregatedDiscoveryServiceClient::new(channel))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xds_over_tls_with_a_certificate_from_the_mesh_ca() {
    let dir = TempDir::new("mastd-xds-tls").unwrap();
    let port = free_port();
    let mastd = start(&dir, port).await;
    let roots = mastd.root_cert_pem().unwrap();
    // mastd may still be starting the TLS listener: retry the first connection briefly.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut client = loop {
        match ads_over_tls(port, client_config(&roots), "mastd.mast-system.svc").await {
            Ok(c) => break c,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no TLS connection to mastd: {e:?}"),
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(DiscoveryRequest {
        node: Some(Node {
            id: "sidecar~10.0.0.5~reviews-v1.default~default.svc.cluster.local".into(),
            cluster: "reviews.default".into(),
            ..Node::default()
        }),
        type_url: mast_xds::CLUSTER_TYPE.into(),
        ..DiscoveryRequest::default()
    })
    .await
    .unwrap();
    let mut stream = client
        .stream_aggregated_resources(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let response = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a CDS response within 10 s")
        .unwrap()
        .unwrap();
    let names: Vec<String> = response
        .resources
        .iter()
        .map(|r| {
            use prost::Message as _;
            envoy_types::pb::envoy::config::cluster::v3::Cluster::decode(r.value.as_slice())
                .unwrap()
                .name
        })
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n == "outbound|9080||reviews.default.svc.cluster.local"),
        "clusters over TLS: {names:?}"
    );

    // The CA over the same TLS port, as a sidecar in a pod asks for its certificate
    // (`https://` address, mesh root, bearer token).
    let token = std::fs::read_to_string(mastd.token_file("default", "reviews").unwrap()).unwrap();
    let mut ca =
        mast_ca::client::CaClient::with_roots(&format!("https://localhost:{port}"), Some(&roots))
            .unwrap();
    let id = mast_core::SpiffeId::new("cluster.local", "default", "reviews").unwrap();
    let chain = ca
        .create_certificate(
            mast_ca::pb::IstioCertificateRequest {
                csr: mast_ca::authority::make_csr(&id).unwrap().1,
                validity_duration: 3600,
                metadata: None,
            },
            Some(&token),
        )
        .await
        .expect("a certificate over TLS")
        .cert_chain;
    assert!(chain.len() >= 2, "{chain:?}");

    // A client trusting another root is refused by its own verification.
    let other = rcgen::generate_simple_self_signed(vec!["other".to_owned()]).unwrap();
    let refused = ads_over_tls(
        port,
        client_config(&other.cert.pem()),
        "mastd.mast-system.svc",
    )
    .await;
    assert!(refused.is_err(), "a foreign root must not verify mastd");
    // A name the certificate does not carry is refused too.
    let wrong = ads_over_tls(port, client_config(&roots), "example.com").await;
    assert!(
        wrong.is_err(),
        "mastd's certificate is for its service names only"
    );
}
