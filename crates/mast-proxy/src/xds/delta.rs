//! Incremental ADS (`DeltaAggregatedResources`): a wildcard subscription to each type (an
//! empty first `resource_names_subscribe`, Envoy's legacy wildcard), `initial_resource_versions`
//! of what the cache holds on a reconnect, and an ACK or NACK (by nonce) per response.

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource as PbResource,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::session::{Session, check_types, error_detail};
use super::{Resource, TYPES, Update};

/// Runs one stream until it ends or fails.
pub(super) async fn run(session: &Session<'_>) -> Result<(), Status> {
    let mut grpc = session.connect().await?;
    let client = session.client;
    let (tx, rx) = mpsc::channel(TYPES.len() + 4);
    for (i, type_url) in TYPES.iter().enumerate() {
        let request = DeltaDiscoveryRequest {
            node: (i == 0).then(|| client.node.clone()),
            type_url: (*type_url).to_owned(),
            initial_resource_versions: client.cache.versions(type_url).into_iter().collect(),
            ..DeltaDiscoveryRequest::default()
        };
        tx.try_send(request)
            .map_err(|e| Status::internal(format!("queueing the first requests: {e}")))?;
    }
    let mut responses = grpc
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await?
        .into_inner();
    session.set_connected();
    tracing::info!(address = %client.address, "xDS connected (delta)");
    while let Some(response) = responses.message().await? {
        let reply = respond(session, response).await;
        if tx.send(reply).await.is_err() {
            break;
        }
    }
    Ok(())
}

async fn respond(session: &Session<'_>, response: DeltaDiscoveryResponse) -> DeltaDiscoveryRequest {
    let DeltaDiscoveryResponse {
        system_version_info,
        resources,
        type_url,
        removed_resources,
        nonce,
        ..
    } = response;
    let update = update(&type_url, resources, removed_resources);
    let result = session
        .apply(&type_url, update, &system_version_info, &nonce)
        .await;
    DeltaDiscoveryRequest {
        type_url,
        response_nonce: nonce,
        error_detail: result.err().map(error_detail),
        ..DeltaDiscoveryRequest::default()
    }
}

pub(super) fn update(
    type_url: &str,
    resources: Vec<PbResource>,
    removed: Vec<String>,
) -> Result<Update, String> {
    let resources = resources
        .into_iter()
        .map(|r| match r.resource {
            Some(value) => Ok(Resource {
                name: r.name,
                version: r.version,
                value,
            }),
            None => Err(format!("resource {:?} has no body", r.name)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_types(type_url, &resources)?;
    Ok(Update {
        resources,
        removed,
        complete: false,
    })
}
