//! Envoy-like SotW and delta clients built on envoy-types' generated ADS client.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use mast_xds::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::common::WAIT;

fn node(id: &str) -> Node {
    Node {
        id: id.into(),
        cluster: "test".into(),
        ..Node::default()
    }
}

/// An Envoy-like state-of-the-world client.
pub struct SotwClient {
    tx: mpsc::Sender<DiscoveryRequest>,
    rx: Streaming<DiscoveryResponse>,
    node: Option<Node>,
    names: HashMap<String, Vec<String>>,
}

impl SotwClient {
    /// Opens a stream as node `id`.
    pub async fn connect(addr: SocketAddr, id: &str) -> Self {
        let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(16);
        let response = client
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await
            .unwrap();
        Self {
            tx,
            rx: response.into_inner(),
            node: Some(node(id)),
            names: HashMap::new(),
        }
    }

    async fn send(&mut self, mut req: DiscoveryRequest) {
        req.node = self.node.take();
        self.tx.send(req).await.unwrap();
    }

    /// Subscribes to `type_url` (empty names: wildcard), as a first request.
    pub async fn subscribe(&mut self, type_url: &str, names: &[&str]) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        self.names.insert(type_url.to_owned(), names.clone());
        self.send(DiscoveryRequest {
            type_url: type_url.into(),
            resource_names: names,
            ..DiscoveryRequest::default()
        })
        .await;
    }

    /// Changes the names sent with the next requests for `type_url`.
    pub fn set_names(&mut self, type_url: &str, names: &[&str]) {
        self.names.insert(
            type_url.to_owned(),
            names.iter().map(|n| (*n).to_owned()).collect(),
        );
    }

    /// Subscribes to the four types the way Envoy's initial sync does.
    pub async fn subscribe_all(&mut self, eds: &[&str], rds: &[&str]) {
        self.subscribe(CLUSTER_TYPE, &[]).await;
        self.subscribe(ENDPOINT_TYPE, eds).await;
        self.subscribe(LISTENER_TYPE, &[]).await;
        self.subscribe(ROUTE_TYPE, rds).await;
    }

    /// ACKs `response`.
    pub async fn ack(&mut self, response: &DiscoveryResponse) {
        let names = self
            .names
            .get(&response.type_url)
            .cloned()
            .unwrap_or_default();
        self.send(DiscoveryRequest {
            version_info: response.version_info.clone(),
            resource_names: names,
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            ..DiscoveryRequest::default()
        })
        .await;
    }

    /// NACKs `response`, reporting `last_good` as the version held, as Envoy does.
    pub async fn nack(&mut self, response: &DiscoveryResponse, last_good: &str, error: &str) {
        let names = self
            .names
            .get(&response.type_url)
            .cloned()
            .unwrap_or_default();
        self.send(DiscoveryRequest {
            version_info: last_good.into(),
            resource_names: names,
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            error_detail: Some(RpcStatus {
                code: 13,
                message: error.into(),
                details: vec![],
            }),
            ..DiscoveryRequest::default()
        })
        .await;
    }

    /// The next response (fails the test after [`WAIT`]).
    pub async fn recv(&mut self) -> DiscoveryResponse {
        match tokio::time::timeout(WAIT, self.rx.message()).await {
            Ok(Ok(Some(r))) => r,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    /// The stream's end status (fails the test if a response comes instead).
    pub async fn recv_error(&mut self) -> tonic::Status {
        match tokio::time::timeout(WAIT, self.rx.message()).await {
            Ok(Err(status)) => status,
            other => panic!("expected the stream to fail, got {other:?}"),
        }
    }

    /// Asserts nothing arrives for `quiet`.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        if let Ok(r) = tokio::time::timeout(quiet, self.rx.message()).await {
            panic!("expected no response, got {r:?}");
        }
    }

    /// Receives one response per type and ACKs each, returning them by type.
    pub async fn sync(&mut self, count: usize) -> HashMap<String, DiscoveryResponse> {
        let mut got = HashMap::new();
        for _ in 0..count {
            let r = self.recv().await;
            self.ack(&r).await;
            got.insert(r.type_url.clone(), r);
        }
        got
    }
}

/// The resource names in a SotW response, decoded from the packed messages' own names.
pub fn names(response: &DiscoveryResponse) -> Vec<String> {
    use prost::Message;
    response
        .resources
        .iter()
        .map(|any| match response.type_url.as_str() {
            CLUSTER_TYPE => Cluster::decode(any.value.as_slice()).unwrap().name,
            ENDPOINT_TYPE => {
                ClusterLoadAssignment::decode(any.value.as_slice())
                    .unwrap()
                    .cluster_name
            }
            LISTENER_TYPE => Listener::decode(any.value.as_slice()).unwrap().name,
            ROUTE_TYPE => {
                RouteConfiguration::decode(any.value.as_slice())
                    .unwrap()
                    .name
            }
            other => panic!("unexpected type {other}"),
        })
        .collect()
}

/// An Envoy-like delta client.
pub struct DeltaClient {
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    rx: Streaming<DeltaDiscoveryResponse>,
    node: Option<Node>,
}

impl DeltaClient {
    /// Opens a delta stream as node `id`.
    pub async fn connect(addr: SocketAddr, id: &str) -> Self {
        let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(16);
        let response = client
            .delta_aggregated_resources(ReceiverStream::new(rx))
            .await
            .unwrap();
        Self {
            tx,
            rx: response.into_inner(),
            node: Some(node(id)),
        }
    }

    /// Sends `req` (the node goes on the first one).
    pub async fn send(&mut self, mut req: DeltaDiscoveryRequest) {
        req.node = self.node.take();
        self.tx.send(req).await.unwrap();
    }

    /// ACKs `response`.
    pub async fn ack(&mut self, response: &DeltaDiscoveryResponse) {
        self.send(DeltaDiscoveryRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            ..DeltaDiscoveryRequest::default()
        })
        .await;
    }

    /// NACKs `response`.
    pub async fn nack(&mut self, response: &DeltaDiscoveryResponse, error: &str) {
        self.send(DeltaDiscoveryRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            error_detail: Some(RpcStatus {
                code: 13,
                message: error.into(),
                details: vec![],
            }),
            ..DeltaDiscoveryRequest::default()
        })
        .await;
    }

    /// The next response.
    pub async fn recv(&mut self) -> DeltaDiscoveryResponse {
        match tokio::time::timeout(WAIT, self.rx.message()).await {
            Ok(Ok(Some(r))) => r,
            other => panic!("expected a delta response, got {other:?}"),
        }
    }

    /// Asserts nothing arrives for `quiet`.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        if let Ok(r) = tokio::time::timeout(quiet, self.rx.message()).await {
            panic!("expected no delta response, got {r:?}");
        }
    }
}
