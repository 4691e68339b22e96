//! The agent's SDS server, through a real tonic client on its Unix socket: `default` and
//! `ROOTCA` are served from the bundle channel, a rotation pushes a new version on every
//! open stream whose secrets changed, ACKs and NACKs are not answered, and before the first
//! certificate the server waits (or, with no certificate coming, answers empty).

#![allow(clippy::unwrap_used)]

mod sds_support;

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::secret::Type;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use mast_agent::sds::{Pending, SECRET_TYPE_URL};
use prost::Message;
use sds_support::{Sds, TestCa};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

fn request(names: &[&str]) -> DiscoveryRequest {
    DiscoveryRequest {
        node: Some(Node {
            id: "sidecar~127.0.0.1~client.default~default.svc.cluster.local".into(),
            ..Node::default()
        }),
        type_url: SECRET_TYPE_URL.into(),
        resource_names: names.iter().map(|n| (*n).to_owned()).collect(),
        ..DiscoveryRequest::default()
    }
}

fn ack(r: &DiscoveryResponse, names: &[&str]) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: r.version_info.clone(),
        response_nonce: r.nonce.clone(),
        ..request(names)
    }
}

/// An open SotW stream.
struct SotwStream {
    tx: mpsc::Sender<DiscoveryRequest>,
    rx: Streaming<DiscoveryResponse>,
}

impl SotwStream {
    async fn open(sds: &Sds, first: DiscoveryRequest) -> Self {
        let (tx, requests) = mpsc::channel(8);
        tx.send(first).await.unwrap();
        let rx = sds
            .client()
            .await
            .stream_secrets(ReceiverStream::new(requests))
            .await
            .unwrap()
            .into_inner();
        Self { tx, rx }
    }

    async fn next(&mut self) -> DiscoveryResponse {
        tokio::time::timeout(WAIT, self.rx.message())
            .await
            .expect("a response in time")
            .unwrap()
            .expect("an open stream")
    }

    async fn assert_quiet(&mut self) {
        if let Ok(r) = tokio::time::timeout(QUIET, self.rx.message()).await {
            panic!("unexpected response: {r:?}");
        }
    }
}

fn secret(any: &Any) -> Secret {
    assert_eq!(any.type_url, SECRET_TYPE_URL);
    Secret::decode(any.value.as_slice()).unwrap()
}

fn inline(d: Option<&envoy_types::pb::envoy::config::core::v3::DataSource>) -> String {
    match d.and_then(|d| d.specifier.as_ref()) {
        Some(Specifier::InlineBytes(b)) => String::from_utf8(b.clone()).unwrap(),
        other => panic!("not inline bytes: {other:?}"),
    }
}

fn chain_of(s: &Secret) -> String {
    match &s.r#type {
        Some(Type::TlsCertificate(t)) => {
            assert!(inline(t.private_key.as_ref()).contains("PRIVATE KEY"));
            inline(t.certificate_chain.as_ref())
        }
        other => panic!("not a certificate: {other:?}"),
    }
}

fn roots_of(s: &Secret) -> String {
    match &s.r#type {
        Some(Type::ValidationContext(v)) => inline(v.trusted_ca.as_ref()),
        other => panic!("not a validation context: {other:?}"),
    }
}

#[tokio::test]
async fn sotw_serves_both_secrets_and_pushes_rotations() {
    let ca = TestCa::new();
    let first = ca.bundle("default", "client", 1);
    let sds = Sds::start(Some(first.clone()), Pending::Wait);

    let mut cert = SotwStream::open(&sds, request(&["default"])).await;
    let r1 = cert.next().await;
    assert_eq!(r1.type_url, SECRET_TYPE_URL);
    assert_eq!(r1.resources.len(), 1);
    let s = secret(&r1.resources[0]);
    assert_eq!(s.name, "default");
    assert_eq!(chain_of(&s), first.chain_pem);
    cert.tx.send(ack(&r1, &["default"])).await.unwrap();
    cert.assert_quiet().await;

    let mut root = SotwStream::open(&sds, request(&["ROOTCA"])).await;
    let rr = root.next().await;
    let s = secret(&rr.resources[0]);
    assert_eq!(s.name, "ROOTCA");
    assert_eq!(roots_of(&s), ca.root_pem);
    root.tx.send(ack(&rr, &["ROOTCA"])).await.unwrap();

    // A rotation: the certificate stream gets the new leaf, the roots stream nothing.
    let second = ca.bundle("default", "client", 2);
    sds.publish(second.clone());
    let r2 = cert.next().await;
    assert_ne!(r2.version_info, r1.version_info);
    assert_ne!(r2.nonce, r1.nonce);
    assert_eq!(chain_of(&secret(&r2.resources[0])), second.chain_pem);
    root.assert_quiet().await;

    // A NACK of the new version is logged, not answered; a stale nonce is ignored.
    let nack = DiscoveryRequest {
        error_detail: Some(RpcStatus {
            code: 3,
            message: "bad".into(),
            ..RpcStatus::default()
        }),
        ..ack(&r2, &["default"])
    };
    cert.tx.send(nack).await.unwrap();
    cert.tx
        .send(ack(&r1, &["default", "ROOTCA"]))
        .await
        .unwrap();
    cert.assert_quiet().await;

    // Asking for other names is answered at once.
    cert.tx
        .send(ack(&r2, &["default", "ROOTCA"]))
        .await
        .unwrap();
    let r3 = cert.next().await;
    let names: Vec<String> = r3.resources.iter().map(|a| secret(a).name).collect();
    assert_eq!(names, ["ROOTCA", "default"]);
}

#[tokio::test]
async fn waits_for_the_first_certificate() {
    let ca = TestCa::new();
    let sds = Sds::start(None, Pending::Wait);
    let mut stream = SotwStream::open(&sds, request(&["default"])).await;
    stream.assert_quiet().await;
    let bundle = ca.bundle("ns1", "sa1", 7);
    sds.publish(bundle.clone());
    let r = stream.next().await;
    assert_eq!(chain_of(&secret(&r.resources[0])), bundle.chain_pem);
}

#[tokio::test]
async fn without_a_certificate_coming_the_answer_is_unusable() {
    let sds = Sds::start(None, Pending::Refuse);
    let mut stream = SotwStream::open(&sds, request(&["default"])).await;
    let r = stream.next().await;
    assert_eq!(r.resources.len(), 1);
    let s = secret(&r.resources[0]);
    assert_eq!(s.name, "default");
    let Some(Type::TlsCertificate(tls)) = s.r#type else {
        panic!("not a certificate")
    };
    let chain = tls.certificate_chain.unwrap();
    assert!(
        chain.specifier.is_none(),
        "an empty DataSource Envoy rejects"
    );
    stream.tx.send(ack(&r, &["default"])).await.unwrap();
    stream.assert_quiet().await;

    let subscribe = DeltaDiscoveryRequest {
        type_url: SECRET_TYPE_URL.into(),
        resource_names_subscribe: vec!["ROOTCA".into()],
        ..DeltaDiscoveryRequest::default()
    };
    let (_tx, mut rx) = delta_open(&sds, subscribe).await;
    let r = delta_next(&mut rx).await;
    assert!(r.resources.is_empty());
    assert_eq!(r.removed_resources, ["ROOTCA"]);
}

#[tokio::test]
async fn fetch_secrets_and_wrong_type() {
    let ca = TestCa::new();
    let sds = Sds::start(None, Pending::Wait);
    let mut client = sds.client().await;
    let err = client.fetch_secrets(request(&[])).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    sds.publish(ca.bundle("default", "client", 3));
    let r = client
        .fetch_secrets(request(&[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.resources.len(), 2, "no names: both secrets");
    let wrong = DiscoveryRequest {
        type_url: "type.googleapis.com/envoy.config.cluster.v3.Cluster".into(),
        ..request(&["default"])
    };
    let err = client.fetch_secrets(wrong).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

async fn delta_next(rx: &mut Streaming<DeltaDiscoveryResponse>) -> DeltaDiscoveryResponse {
    tokio::time::timeout(WAIT, rx.message())
        .await
        .expect("a response in time")
        .unwrap()
        .expect("an open stream")
}

async fn delta_open(
    sds: &Sds,
    first: DeltaDiscoveryRequest,
) -> (
    mpsc::Sender<DeltaDiscoveryRequest>,
    Streaming<DeltaDiscoveryResponse>,
) {
    let (tx, requests) = mpsc::channel(8);
    tx.send(first).await.unwrap();
    let rx = sds
        .client()
        .await
        .delta_secrets(ReceiverStream::new(requests))
        .await
        .unwrap()
        .into_inner();
    (tx, rx)
}

#[tokio::test]
async fn delta_sends_what_changed() {
    let ca = TestCa::new();
    let sds = Sds::start(Some(ca.bundle("default", "client", 1)), Pending::Wait);
    let subscribe = DeltaDiscoveryRequest {
        type_url: SECRET_TYPE_URL.into(),
        resource_names_subscribe: vec!["default".into(), "ROOTCA".into()],
        ..DeltaDiscoveryRequest::default()
    };
    let (tx, mut rx) = delta_open(&sds, subscribe.clone()).await;
    let r1 = delta_next(&mut rx).await;
    let mut names: Vec<&str> = r1.resources.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["ROOTCA", "default"]);
    tx.send(DeltaDiscoveryRequest {
        type_url: SECRET_TYPE_URL.into(),
        response_nonce: r1.nonce.clone(),
        ..DeltaDiscoveryRequest::default()
    })
    .await
    .unwrap();

    let second = ca.bundle("default", "client", 2);
    sds.publish(second.clone());
    let r2 = delta_next(&mut rx).await;
    assert_eq!(r2.resources.len(), 1, "only the certificate changed");
    assert_eq!(r2.resources[0].name, "default");
    let s = secret(r2.resources[0].resource.as_ref().unwrap());
    assert_eq!(chain_of(&s), second.chain_pem);

    // Reconnecting with the versions held: nothing to send.
    let held = r1
        .resources
        .iter()
        .chain(&r2.resources)
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect();
    let again = DeltaDiscoveryRequest {
        initial_resource_versions: held,
        ..subscribe
    };
    let (_tx2, mut rx2) = delta_open(&sds, again).await;
    if let Ok(r) = tokio::time::timeout(QUIET, rx2.message()).await {
        panic!("unexpected response: {r:?}");
    }
}
