//! The descriptor pool: Envoy's message descriptors, compiled by build.rs from the `.proto`
//! files envoy-types ships, embedded in the binary and decoded once on first use.

use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, MessageDescriptor};

use crate::JsonError;

/// The encoded `FileDescriptorSet` written by build.rs.
static DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

static POOL: LazyLock<Result<DescriptorPool, String>> =
    LazyLock::new(|| DescriptorPool::decode(DESCRIPTOR_SET).map_err(|e| e.to_string()));

/// The pool holding every Envoy message Mast knows how to print: the xDS resource types, the
/// extensions Mast puts in `typed_config`, the admin `config_dump` messages, and their imports.
pub fn descriptor_pool() -> Result<&'static DescriptorPool, JsonError> {
    POOL.as_ref().map_err(|reason| JsonError::DescriptorSet {
        reason: reason.clone(),
    })
}

/// The descriptor of the message with this fully qualified name.
pub(crate) fn message_descriptor(type_name: &str) -> Result<MessageDescriptor, JsonError> {
    descriptor_pool()?
        .get_message_by_name(type_name)
        .ok_or_else(|| JsonError::UnknownType {
            type_name: type_name.to_owned(),
        })
}

/// The message name of a type URL: what follows its last `/` (the whole string if it has none).
pub(crate) fn type_name_of(type_url: &str) -> Result<&str, JsonError> {
    let name = type_url.rsplit('/').next().unwrap_or_default();
    if name.is_empty() {
        return Err(JsonError::InvalidTypeUrl {
            type_url: type_url.to_owned(),
        });
    }
    Ok(name)
}
