//! Canonical protobuf JSON for the Envoy v3 messages Mast generates, as Envoy's own admin
//! `/config_dump` prints them.
//!
//! envoy-types (prost) has no JSON mapping, so this crate compiles the `.proto` files
//! envoy-types ships into a descriptor set at build time (see `build.rs`) and converts through
//! [`prost_reflect::DynamicMessage`]. Nested `Any`s (`typed_config`, `typed_extension_protocol_options`,
//! …) resolve through the same pool, so a `Listener` prints its `HttpConnectionManager` in full.
//!
//! Output follows Envoy's admin endpoint by default: proto field names (`snake_case`), default
//! values left out, enums by name, 64-bit integers as strings, durations as `"5s"`, and `Any`s as
//! an object whose first key is `"@type"`. [`JsonOptions`] switches to the protobuf JSON default
//! of `lowerCamelCase` names or prints default values too. Reading accepts both spellings.
//!
//! [`config_dump`] builds the `{"configs": [...]}` document of Envoy's `/config_dump` from
//! resources grouped by type; [`parse_config_dump`] reads that document back (from Envoy or from
//! mastd), so `mastctl proxy-config` handles both the same way.

mod dump;
mod error;
mod pool;

use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use prost_reflect::{DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions};
use serde_json::Value;

pub use dump::{DumpSection, build_config_dump, config_dump, config_dump_with, parse_config_dump};
pub use error::JsonError;
pub use pool::descriptor_pool;

/// `google.protobuf.Any`, whose JSON form carries `"@type"`.
const ANY_TYPE: &str = "google.protobuf.Any";

/// How JSON field names are spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldNames {
    /// The names in the `.proto` files (`connect_timeout`), as Envoy's `/config_dump` prints them.
    #[default]
    Proto,
    /// `lowerCamelCase` (`connectTimeout`), the protobuf JSON default.
    CamelCase,
}

/// Options for writing JSON. The default matches Envoy's admin `/config_dump`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JsonOptions {
    /// How field names are spelled.
    pub field_names: FieldNames,
    /// Print fields that hold their default value (Envoy leaves them out).
    pub include_defaults: bool,
}

impl JsonOptions {
    /// Options with `lowerCamelCase` field names and defaults left out.
    pub fn camel_case() -> Self {
        Self {
            field_names: FieldNames::CamelCase,
            include_defaults: false,
        }
    }

    fn serialize_options(&self) -> SerializeOptions {
        SerializeOptions::new()
            .use_proto_field_name(self.field_names == FieldNames::Proto)
            .skip_default_fields(!self.include_defaults)
    }
}

/// An `Any` as JSON in Envoy's style: the packed message's fields plus `"@type"`.
pub fn any_to_json(any: &Any) -> Result<Value, JsonError> {
    any_to_json_with(any, &JsonOptions::default())
}

/// [`any_to_json`] with explicit options.
pub fn any_to_json_with(any: &Any, options: &JsonOptions) -> Result<Value, JsonError> {
    // Fail early with a typed error when the payload's type is unknown to the pool.
    pool::message_descriptor(pool::type_name_of(&any.type_url)?)?;
    to_json(
        pool::message_descriptor(ANY_TYPE)?,
        &any.encode_to_vec(),
        options,
    )
}

/// A message as JSON in Envoy's style (no `"@type"`: the message is not packed).
pub fn message_to_json<M: Message + prost::Name>(message: &M) -> Result<Value, JsonError> {
    message_to_json_with(message, &JsonOptions::default())
}

/// [`message_to_json`] with explicit options.
pub fn message_to_json_with<M: Message + prost::Name>(
    message: &M,
    options: &JsonOptions,
) -> Result<Value, JsonError> {
    to_json(
        pool::message_descriptor(&M::full_name())?,
        &message.encode_to_vec(),
        options,
    )
}

/// Reads the JSON of a message of type `type_url` into an `Any`. The JSON may carry `"@type"`
/// (as in a config dump), which must then equal `type_url`. Unknown fields are an error.
pub fn json_to_any(type_url: &str, json: &Value) -> Result<Any, JsonError> {
    let desc = pool::message_descriptor(pool::type_name_of(type_url)?)?;
    // Well-known types with a JSON form of their own sit under "value" inside an Any.
    let wrap = || serde_json::json!({ "@type": type_url, "value": json });
    let packed = match json.as_object() {
        Some(map) => match map.get("@type") {
            // Already in Any form: the fields (or, for well-known types, "value") and "@type".
            Some(found) => {
                check_type(type_url, found)?;
                json.clone()
            }
            None if !is_well_known(desc.full_name()) => {
                let mut map = map.clone();
                map.insert("@type".to_owned(), Value::String(type_url.to_owned()));
                Value::Object(map)
            }
            None => wrap(),
        },
        None => wrap(),
    };
    let message = from_json(pool::message_descriptor(ANY_TYPE)?, &packed, true)?;
    decode_as::<Any>(&message, ANY_TYPE)
}

/// Reads JSON that carries its own `"@type"` (an `Any` in JSON form) into an `Any`.
pub fn any_from_json(json: &Value) -> Result<Any, JsonError> {
    let type_url = json
        .get("@type")
        .and_then(Value::as_str)
        .ok_or(JsonError::MissingType)?;
    json_to_any(type_url, json)
}

/// Reads the JSON of a message into its envoy-types struct. A `"@type"` in the JSON must be
/// `M`'s type URL. Unknown fields are an error.
pub fn json_to_message<M: Message + prost::Name + Default>(json: &Value) -> Result<M, JsonError> {
    read_message(json, true)
}

/// [`json_to_message`], but fields unknown to Mast's descriptors are skipped (for JSON written
/// by an Envoy newer than envoy-types).
pub(crate) fn read_message<M: Message + prost::Name + Default>(
    json: &Value,
    deny_unknown: bool,
) -> Result<M, JsonError> {
    let type_name = M::full_name();
    let desc = pool::message_descriptor(&type_name)?;
    let stripped;
    let json = match json
        .as_object()
        .and_then(|map| map.get("@type").map(|t| (map, t)))
    {
        Some((map, found)) => {
            check_type(&M::type_url(), found)?;
            let mut map = map.clone();
            map.remove("@type");
            stripped = Value::Object(map);
            &stripped
        }
        None => json,
    };
    let message = from_json(desc, json, deny_unknown)?;
    decode_as::<M>(&message, &type_name)
}

fn to_json(
    desc: MessageDescriptor,
    bytes: &[u8],
    options: &JsonOptions,
) -> Result<Value, JsonError> {
    let type_name = desc.full_name().to_owned();
    let message = DynamicMessage::decode(desc, bytes).map_err(|source| JsonError::Decode {
        type_name: type_name.clone(),
        source,
    })?;
    message
        .serialize_with_options(serde_json::value::Serializer, &options.serialize_options())
        .map_err(|source| JsonError::ToJson { type_name, source })
}

fn from_json(
    desc: MessageDescriptor,
    json: &Value,
    deny_unknown: bool,
) -> Result<DynamicMessage, JsonError> {
    let type_name = desc.full_name().to_owned();
    let options = DeserializeOptions::new().deny_unknown_fields(deny_unknown);
    DynamicMessage::deserialize_with_options(desc, json, &options)
        .map_err(|source| JsonError::FromJson { type_name, source })
}

fn decode_as<M: Message + Default>(
    message: &DynamicMessage,
    type_name: &str,
) -> Result<M, JsonError> {
    M::decode(message.encode_to_vec().as_slice()).map_err(|source| JsonError::Decode {
        type_name: type_name.to_owned(),
        source,
    })
}

fn check_type(expected: &str, found: &Value) -> Result<(), JsonError> {
    match found.as_str() {
        Some(found) if found == expected => Ok(()),
        _ => Err(JsonError::TypeMismatch {
            expected: expected.to_owned(),
            found: found
                .as_str()
                .map_or_else(|| found.to_string(), str::to_owned),
        }),
    }
}

/// The `google.protobuf` types whose JSON form is not an object of fields (so an `Any` holding
/// one nests it under `"value"`).
fn is_well_known(full_name: &str) -> bool {
    matches!(
        full_name,
        "google.protobuf.Any"
            | "google.protobuf.Timestamp"
            | "google.protobuf.Duration"
            | "google.protobuf.Struct"
            | "google.protobuf.FloatValue"
            | "google.protobuf.DoubleValue"
            | "google.protobuf.Int32Value"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
            | "google.protobuf.FieldMask"
            | "google.protobuf.ListValue"
            | "google.protobuf.Value"
            | "google.protobuf.Empty"
    )
}

#[cfg(test)]
mod tests;
