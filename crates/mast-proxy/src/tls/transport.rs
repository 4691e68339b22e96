//! Transport sockets (`envoy.transport_sockets.tls`, `envoy.transport_sockets.raw_buffer`) of
//! clusters and filter chains, and the cluster's `transport_socket_matches`: the first entry
//! whose `match` fields all equal the endpoint's
//! `metadata.filter_metadata["envoy.transport_socket_match"]` fields wins (an empty `match`
//! matches every endpoint); with none, the cluster's `transport_socket` applies.

use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::cluster::TransportSocketMatch;
use envoy_types::pb::envoy::config::core::v3::{Metadata, TransportSocket, transport_socket};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    DownstreamTlsContext, UpstreamTlsContext,
};
use envoy_types::pb::google::protobuf::Value;
use prost::Message as _;

use super::client::ClientTls;
use super::context::Fail;
use super::secrets::SecretStore;
use super::server::ServerTls;

const TLS_NAME: &str = "envoy.transport_sockets.tls";
const RAW_NAME: &str = "envoy.transport_sockets.raw_buffer";
const UPSTREAM_TLS: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
const DOWNSTREAM_TLS: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
const RAW_BUFFER: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer";
/// The endpoint metadata filter `transport_socket_matches` look at.
pub const MATCH_FILTER: &str = "envoy.transport_socket_match";

enum Kind<'a> {
    Raw,
    Tls(&'a [u8]),
}

fn kind<'a>(ts: &'a TransportSocket, tls_type: &str) -> Result<Kind<'a>, Fail> {
    match &ts.config_type {
        Some(transport_socket::ConfigType::TypedConfig(any)) => match any.type_url.as_str() {
            RAW_BUFFER => Ok(Kind::Raw),
            t if t == tls_type => Ok(Kind::Tls(&any.value)),
            other => Err((
                "typed_config".into(),
                format!("transport socket type {other:?} is not supported"),
            )),
        },
        None if ts.name == RAW_NAME => Ok(Kind::Raw),
        None if ts.name == TLS_NAME => Err((
            "typed_config".into(),
            "envoy.transport_sockets.tls needs a typed_config (a TLS context)".into(),
        )),
        None => Err((
            "name".into(),
            format!("transport socket {:?} is not supported", ts.name),
        )),
    }
}

/// A filter chain's `transport_socket`: `None` for plaintext.
pub fn downstream(
    ts: &TransportSocket,
    store: &Arc<SecretStore>,
) -> Result<Option<ServerTls>, Fail> {
    match kind(ts, DOWNSTREAM_TLS)? {
        Kind::Raw => Ok(None),
        Kind::Tls(bytes) => {
            let ctx = DownstreamTlsContext::decode(bytes)
                .map_err(|e| ("typed_config".to_owned(), e.to_string()))?;
            ServerTls::from_proto(&ctx, store)
                .map(Some)
                .map_err(|(f, r)| (format!("typed_config.{f}"), r))
        }
    }
}

/// An upstream transport socket: `None` for plaintext.
pub fn upstream(
    ts: &TransportSocket,
    store: &Arc<SecretStore>,
    (auto_sni, auto_san): (bool, bool),
) -> Result<Option<Arc<ClientTls>>, Fail> {
    match kind(ts, UPSTREAM_TLS)? {
        Kind::Raw => Ok(None),
        Kind::Tls(bytes) => {
            let ctx = UpstreamTlsContext::decode(bytes)
                .map_err(|e| ("typed_config".to_owned(), e.to_string()))?;
            ClientTls::from_proto(&ctx, store, auto_sni, auto_san)
                .map(|c| Some(Arc::new(c)))
                .map_err(|(f, r)| (format!("typed_config.{f}"), r))
        }
    }
}

/// One `transport_socket_matches` entry.
#[derive(Debug, Clone, PartialEq)]
struct SocketMatch {
    criteria: Vec<(String, Value)>,
    tls: Option<Arc<ClientTls>>,
}

/// A cluster's transport sockets: the default and the metadata-matched ones.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transports {
    default: Option<Arc<ClientTls>>,
    matches: Vec<SocketMatch>,
}

impl Transports {
    /// Converts `transport_socket` and `transport_socket_matches` (errors carry the field).
    pub fn from_cluster(
        ts: Option<&TransportSocket>,
        matches: &[TransportSocketMatch],
        store: &Arc<SecretStore>,
        auto: (bool, bool),
    ) -> Result<Self, Fail> {
        let default = match ts {
            None => None,
            Some(ts) => {
                upstream(ts, store, auto).map_err(|(f, r)| (format!("transport_socket.{f}"), r))?
            }
        };
        let mut out = Vec::with_capacity(matches.len());
        for (i, m) in matches.iter().enumerate() {
            let at = format!("transport_socket_matches[{i}]");
            let tls = match &m.transport_socket {
                None => None,
                Some(ts) => upstream(ts, store, auto)
                    .map_err(|(f, r)| (format!("{at}.transport_socket.{f}"), r))?,
            };
            let mut criteria: Vec<(String, Value)> = m
                .r#match
                .as_ref()
                .map(|s| {
                    s.fields
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            criteria.sort_by(|a, b| a.0.cmp(&b.0));
            out.push(SocketMatch { criteria, tls });
        }
        Ok(Self {
            default,
            matches: out,
        })
    }

    /// Whether any transport is TLS.
    pub fn any_tls(&self) -> bool {
        self.default.is_some() || self.matches.iter().any(|m| m.tls.is_some())
    }

    /// The transport for an endpoint with `metadata`: (its index — 0 for the default, `i + 1`
    /// for match `i` — and its TLS context, `None` for plaintext).
    pub fn select(&self, metadata: Option<&Metadata>) -> (usize, Option<&Arc<ClientTls>>) {
        let fields = metadata
            .and_then(|m| m.filter_metadata.get(MATCH_FILTER))
            .map(|s| &s.fields);
        for (i, m) in self.matches.iter().enumerate() {
            let all = m
                .criteria
                .iter()
                .all(|(k, v)| fields.and_then(|f| f.get(k)) == Some(v));
            if all {
                return (i + 1, m.tls.as_ref());
            }
        }
        (0, self.default.as_ref())
    }
}
