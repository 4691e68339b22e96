//! What both protocols share for one stream: connecting, handing a response to the handler
//! (on the blocking pool: conversion can be heavy) and recording the outcome in the cache.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tonic::Status;
use tonic::transport::{Channel, Endpoint};

use super::{Resource, TYPES, Update, XdsClient};

/// `google.rpc.Code.INVALID_ARGUMENT`, the code Envoy puts in a NACK's `error_detail`.
const INVALID_ARGUMENT: i32 = 3;

/// One connection attempt and its stream.
pub(super) struct Session<'a> {
    pub(super) client: &'a XdsClient,
    received: AtomicBool,
}

impl<'a> Session<'a> {
    pub(super) fn new(client: &'a XdsClient) -> Self {
        Self {
            client,
            received: AtomicBool::new(false),
        }
    }

    /// Whether this stream received any response (the back-off then starts over).
    pub(super) fn received_any(&self) -> bool {
        self.received.load(Ordering::Relaxed)
    }

    pub(super) async fn connect(
        &self,
    ) -> Result<AggregatedDiscoveryServiceClient<Channel>, Status> {
        if self.client.address.starts_with("https://") {
            let channel = mast_ca::channel::channel(
                &self.client.address,
                self.client.roots_pem.as_deref(),
                None,
            )
            .map_err(|e| Status::invalid_argument(format!("bad xDS address: {e}")))?;
            return Ok(AggregatedDiscoveryServiceClient::new(channel)
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX));
        }
        let endpoint = Endpoint::from_shared(self.client.address.clone())
            .map_err(|e| Status::invalid_argument(format!("bad xDS address: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10));
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| Status::unavailable(format!("cannot connect: {e}")))?;
        Ok(AggregatedDiscoveryServiceClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX))
    }

    pub(super) fn set_connected(&self) {
        self.client.connected.store(true, Ordering::Relaxed);
    }

    /// Hands `update` to the handler and records the outcome; `Err` is the NACK message.
    pub(super) async fn apply(
        &self,
        type_url: &str,
        update: Result<Update, String>,
        version: &str,
        nonce: &str,
    ) -> Result<(), String> {
        self.received.store(true, Ordering::Relaxed);
        let client = self.client;
        let result = match update {
            Ok(update) => {
                let handler = client.handler.clone();
                let url = type_url.to_owned();
                let applied = tokio::task::spawn_blocking(move || {
                    let result = handler.apply(&url, &update);
                    (result, update)
                })
                .await;
                match applied {
                    Ok((Ok(()), update)) => {
                        let n = update.resources.len();
                        let removed = update.removed.len();
                        client.cache.accept(
                            type_url,
                            update.resources,
                            &update.removed,
                            version,
                            nonce,
                        );
                        tracing::debug!(type_url, version, changed = n, removed, "xDS ACK");
                        Ok(())
                    }
                    Ok((Err(e), _)) => Err(e),
                    Err(e) => Err(format!("the configuration handler failed: {e}")),
                }
            }
            Err(e) => Err(e),
        };
        if let Err(error) = &result {
            tracing::warn!(type_url, version, nonce, %error, "rejected xDS response (NACK)");
            client.cache.reject(type_url, version, nonce, error);
        }
        if !client.initial_fetch_done() && client.cache.all_received() {
            tracing::info!("xDS initial fetch done");
            client.initial.send_replace(true);
        }
        result
    }
}

/// A NACK's `error_detail`.
pub(super) fn error_detail(message: String) -> RpcStatus {
    RpcStatus {
        code: INVALID_ARGUMENT,
        message,
        details: Vec::new(),
    }
}

/// Refuses types not subscribed to and resources whose type differs from the response's.
pub(super) fn check_types(type_url: &str, resources: &[Resource]) -> Result<(), String> {
    if !TYPES.contains(&type_url) {
        return Err(format!("type {type_url} was not subscribed to"));
    }
    match resources.iter().find(|r| r.value.type_url != type_url) {
        Some(r) => Err(format!(
            "resource {:?} is a {} in a response for {type_url}",
            r.name, r.value.type_url
        )),
        None => Ok(()),
    }
}
