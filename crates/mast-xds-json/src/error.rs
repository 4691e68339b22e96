//! The error type of every conversion in this crate.

/// Why a message could not be turned into JSON, or JSON into a message.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The descriptor set compiled at build time did not load (a build problem, not an input one).
    #[error("the embedded Envoy descriptor set does not load: {reason}")]
    DescriptorSet {
        /// What the descriptor pool reported.
        reason: String,
    },
    /// The message type is not in the descriptor set (see `PROTO_DIRS` in build.rs).
    #[error("type {type_name} is not in Mast's Envoy descriptor set")]
    UnknownType {
        /// Fully qualified protobuf name, e.g. `envoy.config.cluster.v3.Cluster`.
        type_name: String,
    },
    /// A type URL with no message name after its last `/`.
    #[error("type URL {type_url:?} names no message")]
    InvalidTypeUrl {
        /// The type URL as given.
        type_url: String,
    },
    /// The bytes of a message (or of an `Any`'s value) do not decode as its type.
    #[error("{type_name}: bytes do not decode: {source}")]
    Decode {
        /// Fully qualified protobuf name.
        type_name: String,
        /// prost's decode error.
        #[source]
        source: prost::DecodeError,
    },
    /// A message could not be written as JSON (for example a nested `Any` of an unknown type).
    #[error("{type_name} to JSON: {source}")]
    ToJson {
        /// Fully qualified protobuf name.
        type_name: String,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// JSON that does not follow the message's protobuf JSON mapping.
    #[error("JSON to {type_name}: {source}")]
    FromJson {
        /// Fully qualified protobuf name.
        type_name: String,
        /// The deserializer's error (unknown field, wrong value kind, unknown nested type, …).
        #[source]
        source: serde_json::Error,
    },
    /// The JSON's `"@type"` is not the type it was asked to be read as.
    #[error("JSON has \"@type\": {found:?} where {expected:?} was expected")]
    TypeMismatch {
        /// The type URL asked for.
        expected: String,
        /// The type URL found in the JSON.
        found: String,
    },
    /// JSON read as an `Any` has no `"@type"` string.
    #[error("JSON object has no \"@type\" string")]
    MissingType,
    /// `config_dump` was given resources of a type it has no section for.
    #[error("config_dump has no section for resources of type {type_url}")]
    UnsupportedDumpType {
        /// The type URL of the resources.
        type_url: String,
    },
    /// JSON read as a config dump lacks the shape of Envoy's `/config_dump`.
    #[error("not an Envoy config dump: {reason}")]
    MalformedDump {
        /// What is missing or wrong.
        reason: String,
    },
}
