//! Deterministic packing of the filter configs this module emits.
//!
//! RBAC `policies` and jwt_authn `providers` are protobuf maps, which prost holds as
//! `HashMap`s and writes in random order; mastd compares encoded bytes to decide what to
//! push, so the configs are written here with those maps' entries in key order (protobuf
//! accepts fields in any order and merges them, so the bytes decode to the same message).

use std::collections::BTreeMap;

use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, message, string};

/// Appends one `map<string, message>` entry (`key` = field 1, `value` = field 2) as field `tag`.
fn map_entry<V: Message>(tag: u32, key: &str, value: &V, buf: &mut Vec<u8>) {
    let key_len = if key.is_empty() {
        0
    } else {
        string::encoded_len(1, &key.to_owned())
    };
    let value_len = message::encoded_len(2, value);
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint((key_len + value_len) as u64, buf);
    if !key.is_empty() {
        string::encode(1, &key.to_owned(), buf);
    }
    message::encode(2, value, buf);
}

/// `msg`'s encoding (with its map field left empty) followed by `map`'s entries as field
/// `tag`, in key order.
pub(crate) fn with_sorted_map<M: Message, V: Message>(
    msg: &M,
    tag: u32,
    map: &BTreeMap<String, V>,
) -> Vec<u8> {
    let mut buf = msg.encode_to_vec();
    for (k, v) in map {
        map_entry(tag, k, v, &mut buf);
    }
    buf
}

/// Appends `nested` (an encoded message) to `buf` as field `tag`.
pub(crate) fn append_nested(buf: &mut Vec<u8>, tag: u32, nested: &[u8]) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(nested.len() as u64, buf);
    buf.extend_from_slice(nested);
}

/// An `Any` of type `T` holding `value` (already encoded).
pub(crate) fn any<T: prost::Name>(value: Vec<u8>) -> Any {
    Any {
        type_url: T::type_url(),
        value,
    }
}
