//! Deterministic protobuf encoding of generated xDS resources.
//!
//! prost generates protobuf `map` fields as `HashMap`s, whose iteration order is random per
//! instance, so two generations of the same input encode to different bytes and mastd (which
//! hashes `Any.value` to decide what to push) would push unchanged resources again. Protobuf
//! lets fields appear in any order and a decoder merges them, so a message is written here as
//! its plain prost encoding with the map-bearing fields taken out, followed by those fields:
//! map entries in key order (an entry is a nested message, key = field 1, value = field 2,
//! with prost's rule of omitting a default key or value), and nested messages that contain maps
//! (singular, repeated in order, or the chosen member of a oneof) written the same way, all the
//! way down. The bytes have exactly the length prost computes, and decode to an equal message.
//!
//! Map fields covered (everything the generators fill, plus their close relatives):
//! `Metadata.filter_metadata` / `typed_filter_metadata`, `Struct.fields` (through `Value` and
//! `ListValue`); `Cluster.typed_extension_protocol_options`, `.metadata`, `.load_assignment`,
//! `.lb_subset_config.default_subset`, `.transport_socket_matches[].match`;
//! `ClusterLoadAssignment.named_endpoints`, `.endpoints[].metadata`,
//! `.endpoints[].lb_endpoints[].metadata`; `Listener.metadata`, filter chains' metadata and an
//! `HttpConnectionManager` filter's inline `route_config` (spliced into its `Any`); and
//! `RouteConfiguration` / `VirtualHost` / `Route` / `ClusterWeight` `typed_per_filter_config`
//! and metadata, `RouteAction.metadata_match`. Other `Any` payloads are opaque bytes: the
//! generators fill no map inside them.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{LbSubsetConfig, TransportSocketMatch};
use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::ClusterWeight;
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, VirtualHost, WeightedCluster,
};
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{Any, ListValue, Struct, Value};
use prost::Message;
use prost::encoding::{
    DecodeContext, WireType, decode_key, decode_varint, encode_key, encode_varint, skip_field,
};

#[cfg(test)]
mod tests;

/// The type URL of the HTTP connection manager, whose inline route configuration may hold maps.
const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
/// `HttpConnectionManager.route_config`.
const HCM_ROUTE_CONFIG_TAG: u32 = 4;
/// The members of `HttpConnectionManager.route_specifier`: `rds`, `route_config`,
/// `scoped_routes`.
const HCM_ROUTE_SPECIFIER_TAGS: [u32; 3] = [3, 4, 31];

/// A message that can be written with its map entries in key order, at every depth.
pub(crate) trait Deterministic: Message + Sized {
    /// Appends the message's fields (no key or length of its own) to `buf`, consuming it.
    /// Writes exactly `self.encoded_len()` bytes.
    fn write_fields(self, buf: &mut Vec<u8>);
}

/// `msg` packed as an `Any` whose bytes depend only on the message's content.
pub(crate) fn pack_deterministic<T: prost::Name + Deterministic>(msg: T) -> Any {
    let mut value = Vec::with_capacity(msg.encoded_len());
    msg.write_fields(&mut value);
    Any {
        type_url: T::type_url(),
        value,
    }
}

/// The plain prost encoding of what is left of a message once its map-bearing fields are taken
/// out. (`encode_raw` is what `Message::encode` runs after checking capacity, which a `Vec`
/// always has.)
fn write_rest<M: Message>(msg: &M, buf: &mut Vec<u8>) {
    msg.encode_raw(buf);
}

/// A nested message field: key, length, then the message's fields.
fn write_message<M: Deterministic>(tag: u32, msg: M, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    let len = msg.encoded_len();
    encode_varint(len as u64, buf);
    let start = buf.len();
    msg.write_fields(buf);
    debug_assert_eq!(
        buf.len() - start,
        len,
        "deterministic encoding changed a length"
    );
}

/// An optional (or oneof member) message field, written when present.
fn write_optional<M: Deterministic>(tag: u32, msg: Option<M>, buf: &mut Vec<u8>) {
    if let Some(msg) = msg {
        write_message(tag, msg, buf);
    }
}

/// A repeated message field, elements in order.
fn write_repeated<M: Deterministic>(tag: u32, msgs: Vec<M>, buf: &mut Vec<u8>) {
    for msg in msgs {
        write_message(tag, msg, buf);
    }
}

/// A `map<string, message>` field, entries in key order.
fn write_map<V: Deterministic + Default + PartialEq>(
    tag: u32,
    map: HashMap<String, V>,
    buf: &mut Vec<u8>,
) {
    if map.len() <= 1 {
        // Nothing to order (and no need for a sorted copy).
        for (key, value) in map {
            write_entry(tag, key, value, buf);
        }
        return;
    }
    let mut entries: Vec<(String, V)> = map.into_iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (key, value) in entries {
        write_entry(tag, key, value, buf);
    }
}

/// One map entry: a nested message with the key as field 1 and the value as field 2, leaving
/// out an empty key or a default value, as prost does.
fn write_entry<V: Deterministic + Default + PartialEq>(
    tag: u32,
    key: String,
    value: V,
    buf: &mut Vec<u8>,
) {
    let key = (!key.is_empty()).then_some(key);
    let value = (value != V::default()).then_some(value);
    let len = key
        .as_ref()
        .map_or(0, |k| prost::encoding::string::encoded_len(1, k))
        + value
            .as_ref()
            .map_or(0, |v| prost::encoding::message::encoded_len(2, v));
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
    if let Some(key) = &key {
        prost::encoding::string::encode(1, key, buf);
    }
    write_optional(2, value, buf);
}

/// Implements [`Deterministic`] for a message with no map inside it: its prost encoding.
macro_rules! leaf {
    ($($ty:ty),* $(,)?) => {$(
        impl Deterministic for $ty {
            fn write_fields(self, buf: &mut Vec<u8>) {
                write_rest(&self, buf);
            }
        }
    )*};
}

/// Implements [`Deterministic`] for a message whose listed fields hold maps: they are taken
/// out, the rest is encoded by prost, then each listed field is written by its writer.
macro_rules! deterministic {
    ($ty:ty { $($write:ident($tag:literal, $field:ident)),* $(,)? }) => {
        impl Deterministic for $ty {
            fn write_fields(mut self, buf: &mut Vec<u8>) {
                $(let $field = std::mem::take(&mut self.$field);)*
                write_rest(&self, buf);
                $($write($tag, $field, buf);)*
            }
        }
    };
}

leaf!(Any, Endpoint);

deterministic!(Struct {
    write_map(1, fields)
});
deterministic!(ListValue {
    write_repeated(1, values)
});
deterministic!(Metadata {
    write_map(1, filter_metadata),
    write_map(2, typed_filter_metadata),
});

impl Deterministic for Value {
    fn write_fields(mut self, buf: &mut Vec<u8>) {
        match self.kind.take() {
            Some(Kind::StructValue(s)) => write_message(5, s, buf),
            Some(Kind::ListValue(l)) => write_message(6, l, buf),
            other => {
                self.kind = other;
                write_rest(&self, buf);
            }
        }
    }
}

deterministic!(Cluster {
    write_optional(22, lb_subset_config),
    write_optional(25, metadata),
    write_optional(33, load_assignment),
    write_map(36, typed_extension_protocol_options),
    write_repeated(43, transport_socket_matches),
});
deterministic!(LbSubsetConfig {
    write_optional(2, default_subset)
});
deterministic!(TransportSocketMatch {
    write_optional(2, r#match)
});

deterministic!(ClusterLoadAssignment {
    write_repeated(2, endpoints),
    write_map(5, named_endpoints),
});
deterministic!(LocalityLbEndpoints {
    write_repeated(2, lb_endpoints),
    write_optional(9, metadata),
});
deterministic!(LbEndpoint {
    write_optional(3, metadata)
});

deterministic!(Listener {
    write_repeated(3, filter_chains),
    write_optional(6, metadata),
    write_optional(25, default_filter_chain),
});
deterministic!(FilterChain {
    write_repeated(3, filters),
    write_optional(5, metadata),
});

impl Deterministic for Filter {
    fn write_fields(mut self, buf: &mut Vec<u8>) {
        if let Some(filter::ConfigType::TypedConfig(any)) = &mut self.config_type {
            normalize_hcm(any);
        }
        write_rest(&self, buf);
    }
}

/// Rewrites an `HttpConnectionManager` that carries an inline route configuration (which may
/// hold maps): every other top-level field is kept byte for byte and the route configuration
/// is written deterministically after them. Any other `Any` is left alone, and so are bytes
/// that do not parse or would change length (so the enclosing length prefix stays right).
fn normalize_hcm(any: &mut Any) {
    if any.type_url != HCM_TYPE || !has_field(&any.value, HCM_ROUTE_CONFIG_TAG) {
        return;
    }
    if let Some(value) = splice_routes(&any.value)
        && value.len() == any.value.len()
    {
        any.value = value;
    }
}

/// The HCM bytes with the inline route configuration moved to the end, deterministic; `None`
/// when there is none, another member of its oneof is present, or the bytes do not parse.
fn splice_routes(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut routes: Option<RouteConfiguration> = None;
    let mut rest = bytes;
    while !rest.is_empty() {
        let field = rest;
        let (tag, wire_type) = decode_key(&mut rest).ok()?;
        if HCM_ROUTE_SPECIFIER_TAGS.contains(&tag) && tag != HCM_ROUTE_CONFIG_TAG {
            return None;
        }
        if tag == HCM_ROUTE_CONFIG_TAG && wire_type == WireType::LengthDelimited {
            let len = usize::try_from(decode_varint(&mut rest).ok()?).ok()?;
            let body = rest.get(..len)?;
            rest = rest.get(len..)?;
            // Occurrences of a singular message field merge, as a decoder would.
            routes
                .get_or_insert_with(RouteConfiguration::default)
                .merge(body)
                .ok()?;
        } else {
            skip_field(wire_type, tag, &mut rest, DecodeContext::default()).ok()?;
            out.extend_from_slice(field.get(..field.len() - rest.len())?);
        }
    }
    write_message(HCM_ROUTE_CONFIG_TAG, routes?, &mut out);
    Some(out)
}

/// Whether the encoded message has a top-level field `wanted` (true when the bytes do not
/// parse, so the caller looks closer).
fn has_field(mut bytes: &[u8], wanted: u32) -> bool {
    while !bytes.is_empty() {
        let Ok((tag, wire_type)) = decode_key(&mut bytes) else {
            return true;
        };
        if tag == wanted {
            return true;
        }
        if skip_field(wire_type, tag, &mut bytes, DecodeContext::default()).is_err() {
            return true;
        }
    }
    false
}

deterministic!(RouteConfiguration {
    write_repeated(2, virtual_hosts),
    write_map(16, typed_per_filter_config),
    write_optional(17, metadata),
});
deterministic!(VirtualHost {
    write_repeated(3, routes),
    write_map(15, typed_per_filter_config),
    write_optional(24, metadata),
});

impl Deterministic for Route {
    fn write_fields(mut self, buf: &mut Vec<u8>) {
        let metadata = self.metadata.take();
        let per_filter = std::mem::take(&mut self.typed_per_filter_config);
        let action = match self.action.take() {
            Some(Action::Route(action)) => Some(action),
            other => {
                self.action = other;
                None
            }
        };
        write_rest(&self, buf);
        write_optional(2, action, buf);
        write_optional(4, metadata, buf);
        write_map(13, per_filter, buf);
    }
}

impl Deterministic for RouteAction {
    fn write_fields(mut self, buf: &mut Vec<u8>) {
        let metadata_match = self.metadata_match.take();
        let weighted = match self.cluster_specifier.take() {
            Some(ClusterSpecifier::WeightedClusters(w)) => Some(w),
            other => {
                self.cluster_specifier = other;
                None
            }
        };
        write_rest(&self, buf);
        write_optional(3, weighted, buf);
        write_optional(4, metadata_match, buf);
    }
}

deterministic!(WeightedCluster {
    write_repeated(1, clusters)
});
deterministic!(ClusterWeight {
    write_optional(3, metadata_match),
    write_map(10, typed_per_filter_config),
});
