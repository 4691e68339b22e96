//! Small constructors for protobuf values shared by the CDS and EDS generators: durations,
//! wrappers, socket addresses, the ADS config source and `istio` filter metadata.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, ConfigSource, Metadata, SocketAddress,
};
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{
    Duration, ListValue, Struct, UInt32Value, UInt64Value, Value,
};

/// A protobuf `Duration` from a standard one (saturating; Envoy's limit is far above any
/// duration Istio YAML can express).
pub(crate) fn duration(d: std::time::Duration) -> Duration {
    Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// A protobuf `Duration` from an Istio one.
pub(crate) fn config_duration(d: mast_config::types::Duration) -> Duration {
    duration(d.as_std())
}

/// A `Duration` of whole seconds.
pub(crate) fn seconds(s: i64) -> Duration {
    Duration {
        seconds: s,
        nanos: 0,
    }
}

/// `UInt32Value`.
pub(crate) fn u32_value(value: u32) -> UInt32Value {
    UInt32Value { value }
}

/// `UInt64Value`.
pub(crate) fn u64_value(value: u64) -> UInt64Value {
    UInt64Value { value }
}

/// An Istio integer (`i64` so validation can report negatives) as `u32`, clamped to 0..=u32::MAX.
pub(crate) fn clamp_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// An Istio integer as `u64`, negatives clamped to 0.
pub(crate) fn clamp_u64(v: i64) -> u64 {
    u64::try_from(v.max(0)).unwrap_or(0)
}

/// `Address { socket_address { address, port_value } }`.
pub(crate) fn socket_address(address: &str, port: u32) -> Address {
    Address {
        address: Some(AddressKind::SocketAddress(SocketAddress {
            address: address.to_owned(),
            port_specifier: Some(PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}

/// `ConfigSource { ads {}, initial_fetch_timeout: 0s, resource_api_version: V3 }` (Istio's EDS
/// source: no initial fetch timeout, which is why every EDS cluster must get an assignment).
pub(crate) fn ads_source() -> ConfigSource {
    ConfigSource {
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        initial_fetch_timeout: Some(seconds(0)),
        resource_api_version: ApiVersion::V3 as i32,
        ..Default::default()
    }
}

/// A string `Value`.
pub(crate) fn string_value(s: impl Into<String>) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

/// A struct `Value` from string fields.
pub(crate) fn struct_value(fields: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    Value {
        kind: Some(Kind::StructValue(Struct {
            fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        })),
    }
}

/// A list `Value`.
pub(crate) fn list_value(values: Vec<Value>) -> Value {
    Value {
        kind: Some(Kind::ListValue(ListValue { values })),
    }
}

/// `Metadata { filter_metadata { "istio": { fields } } }`, as Istio attaches to clusters
/// (read by `proxy-config` tooling: services, DestinationRule, subset).
pub(crate) fn istio_metadata(fields: Vec<(&'static str, Value)>) -> Metadata {
    let istio = Struct {
        fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    };
    Metadata {
        filter_metadata: HashMap::from([("istio".to_owned(), istio)]),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_durations_and_integers() {
        let d = duration(std::time::Duration::from_millis(1500));
        assert_eq!((d.seconds, d.nanos), (1, 500_000_000));
        assert_eq!(clamp_u32(-3), 0);
        assert_eq!(clamp_u32(i64::MAX), u32::MAX);
        assert_eq!(clamp_u32(7), 7);
        assert_eq!(clamp_u64(-1), 0);
    }
}
