//! State-of-the-world ADS (`StreamAggregatedResources`): a wildcard subscription to each type
//! (empty `resource_names`), `version_info` = the last accepted version (so a NACK never
//! claims the rejected one), and complete sets for CDS/LDS (what is not listed is removed)
//! but partial ones for EDS/RDS (docs/ads.md: mastd sends only what changed) — except the
//! first response of each type on a stream, which mastd always sends in full, so a
//! reconnect also drops the EDS/RDS resources that disappeared meanwhile.

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::session::{Session, check_types, error_detail};
use super::{CLUSTER_TYPE, LISTENER_TYPE, Resource, TYPES, Update};

/// The first field of Cluster, Listener and RouteConfiguration (`name`) and of
/// ClusterLoadAssignment (`cluster_name`): decoding only it names a resource cheaply.
#[derive(Clone, PartialEq, prost::Message)]
struct NameOnly {
    #[prost(string, tag = "1")]
    name: String,
}

/// Runs one stream until it ends or fails.
pub(super) async fn run(session: &Session<'_>) -> Result<(), Status> {
    let mut grpc = session.connect().await?;
    let client = session.client;
    let (tx, rx) = mpsc::channel(TYPES.len() + 4);
    for (i, type_url) in TYPES.iter().enumerate() {
        let request = DiscoveryRequest {
            node: (i == 0).then(|| client.node.clone()),
            type_url: (*type_url).to_owned(),
            version_info: client.cache.versions_of_type(type_url).0,
            ..DiscoveryRequest::default()
        };
        tx.try_send(request)
            .map_err(|e| Status::internal(format!("queueing the first requests: {e}")))?;
    }
    let mut responses = grpc
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await?
        .into_inner();
    session.set_connected();
    tracing::info!(address = %client.address, "xDS connected (state of the world)");
    let mut seen = std::collections::BTreeSet::new();
    while let Some(response) = responses.message().await? {
        let first = seen.insert(response.type_url.clone());
        let reply = respond(session, response, first).await;
        if tx.send(reply).await.is_err() {
            break;
        }
    }
    Ok(())
}

async fn respond(
    session: &Session<'_>,
    response: DiscoveryResponse,
    first: bool,
) -> DiscoveryRequest {
    let DiscoveryResponse {
        version_info,
        resources,
        type_url,
        nonce,
        ..
    } = response;
    let complete = first || type_url == CLUSTER_TYPE || type_url == LISTENER_TYPE;
    let held = if complete {
        session.client.cache.versions(&type_url)
    } else {
        Default::default()
    };
    let update = update(&type_url, &version_info, resources, complete, held);
    let result = session
        .apply(&type_url, update, &version_info, &nonce)
        .await;
    let accepted = session.client.cache.versions_of_type(&type_url).0;
    DiscoveryRequest {
        version_info: accepted,
        type_url,
        response_nonce: nonce,
        error_detail: result.err().map(error_detail),
        ..DiscoveryRequest::default()
    }
}

pub(super) fn update(
    type_url: &str,
    version: &str,
    values: Vec<Any>,
    complete: bool,
    mut held: std::collections::BTreeMap<String, String>,
) -> Result<Update, String> {
    let mut resources = Vec::with_capacity(values.len());
    let mut seen = std::collections::BTreeSet::new();
    for value in values {
        let name = NameOnly::decode(value.value.as_slice())
            .map_err(|e| format!("a {} does not decode: {e}", value.type_url))?
            .name;
        if !seen.insert(name.clone()) {
            return Err(format!("resource {name:?} is listed twice"));
        }
        held.remove(&name);
        resources.push(Resource {
            name,
            version: version.to_owned(),
            value,
        });
    }
    check_types(type_url, &resources)?;
    Ok(Update {
        resources,
        removed: held.into_keys().collect(),
        complete,
    })
}
