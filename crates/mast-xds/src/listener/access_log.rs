//! The Envoy access log every HTTP connection manager and `tcp_proxy` carries when the mesh
//! configures one (`SnapshotOptions.access_log`, Istio's `meshConfig.accessLogFile`), as
//! Istio's `FileAccessLogFromMeshConfig` (`pilot/pkg/model/telemetry_logging.go`) builds it:
//! `envoy.access_loggers.file` with a `FileAccessLog { path, log_format }` whose format is
//! `text_format_source.inline_string` (TEXT: the configured format with a trailing newline,
//! else Istio's default) or `json_format` (JSON: the configured object, else Istio's default
//! keys).
//!
//! The JSON format is a `google.protobuf.Struct`, whose fields prost keeps in a `HashMap`: the
//! `FileAccessLog` is packed with its keys in order (`crate::encode`), so the same settings
//! always give the same listener bytes.

use envoy_types::pb::envoy::config::accesslog::v3::AccessLog;
use envoy_types::pb::envoy::config::accesslog::v3::access_log::ConfigType;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::core::v3::substitution_format_string::Format;
use envoy_types::pb::envoy::config::core::v3::{DataSource, SubstitutionFormatString};
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::FileAccessLog;
use envoy_types::pb::google::protobuf::{Any, ListValue, Struct, Value, value::Kind};
use mast_model::snapshot::{AccessLogEncoding, AccessLogOptions};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint};

use crate::encode::Deterministic;

/// `envoy.access_loggers.file`.
pub const FILE_ACCESS_LOG: &str = "envoy.access_loggers.file";

/// The access log entry for `options`.
pub fn file_access_log(options: &AccessLogOptions) -> AccessLog {
    let format = match options.encoding {
        AccessLogEncoding::Text => Format::TextFormatSource(DataSource {
            specifier: Some(Specifier::InlineString(options.text_format())),
            ..Default::default()
        }),
        AccessLogEncoding::Json => Format::JsonFormat(Struct {
            fields: options
                .json_format()
                .into_iter()
                .map(|(k, v)| (k, to_value(v)))
                .collect(),
        }),
    };
    let log_format = SubstitutionFormatString {
        format: Some(format),
        ..Default::default()
    };
    AccessLog {
        name: FILE_ACCESS_LOG.to_owned(),
        config_type: Some(ConfigType::TypedConfig(pack(&options.path, log_format))),
        ..Default::default()
    }
}

/// A JSON value as a protobuf `Value`.
fn to_value(v: serde_json::Value) -> Value {
    use serde_json::Value as J;
    let kind = match v {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(b),
        J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        J::String(s) => Kind::StringValue(s),
        J::Array(items) => Kind::ListValue(ListValue {
            values: items.into_iter().map(to_value).collect(),
        }),
        J::Object(map) => Kind::StructValue(Struct {
            fields: map.into_iter().map(|(k, v)| (k, to_value(v))).collect(),
        }),
    };
    Value { kind: Some(kind) }
}

/// `FileAccessLog { path, log_format }` packed with the JSON keys in order: the path, then
/// field 5 (`log_format`) holding the format string's other fields followed by its
/// `json_format` (field 2) written by [`Deterministic`].
fn pack(path: &str, mut log_format: SubstitutionFormatString) -> Any {
    let head = FileAccessLog {
        path: path.to_owned(),
        access_log_format: None,
    };
    let inner_len = log_format.encoded_len();
    let json = match log_format.format.take() {
        Some(Format::JsonFormat(s)) => Some(s),
        other => {
            log_format.format = other;
            None
        }
    };
    let mut value = Vec::with_capacity(head.encoded_len() + inner_len + 8);
    head.encode_raw(&mut value);
    encode_key(5, WireType::LengthDelimited, &mut value);
    encode_varint(inner_len as u64, &mut value);
    log_format.encode_raw(&mut value);
    if let Some(json) = json {
        encode_key(2, WireType::LengthDelimited, &mut value);
        encode_varint(json.encoded_len() as u64, &mut value);
        json.write_fields(&mut value);
    }
    Any {
        type_url: <FileAccessLog as prost::Name>::type_url(),
        value,
    }
}

/// The `FileAccessLog` inside an access log entry (tests).
#[cfg(test)]
pub(crate) fn decode(log: &AccessLog) -> FileAccessLog {
    let Some(ConfigType::TypedConfig(any)) = &log.config_type else {
        panic!("access log without typed config: {log:?}");
    };
    assert_eq!(any.type_url, <FileAccessLog as prost::Name>::type_url());
    FileAccessLog::decode(any.value.as_slice()).expect("FileAccessLog decodes")
}

/// The format of a decoded `FileAccessLog` (tests).
#[cfg(test)]
pub(crate) fn format(fl: &FileAccessLog) -> &Format {
    use envoy_types::pb::envoy::extensions::access_loggers::file::v3::file_access_log::AccessLogFormat;
    match &fl.access_log_format {
        Some(AccessLogFormat::LogFormat(f)) => f.format.as_ref().expect("a format"),
        other => panic!("unexpected access log format {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use mast_model::snapshot::access_log::ISTIO_TEXT_FORMAT;

    use super::*;

    #[test]
    fn text_defaults_to_istios_format() {
        let log = file_access_log(&AccessLogOptions::text("/dev/stdout"));
        assert_eq!(log.name, FILE_ACCESS_LOG);
        let fl = decode(&log);
        assert_eq!(fl.path, "/dev/stdout");
        let Format::TextFormatSource(src) = format(&fl) else {
            panic!("text expected");
        };
        assert_eq!(
            src.specifier,
            Some(Specifier::InlineString(ISTIO_TEXT_FORMAT.into()))
        );
    }

    #[test]
    fn json_is_deterministic_and_decodes() {
        let options = AccessLogOptions {
            path: "/tmp/access.log".into(),
            encoding: AccessLogEncoding::Json,
            format: String::new(),
        };
        let first = file_access_log(&options);
        for _ in 0..20 {
            assert_eq!(file_access_log(&options), first, "bytes must not vary");
        }
        let fl = decode(&first);
        let Format::JsonFormat(s) = format(&fl) else {
            panic!("json expected");
        };
        assert_eq!(s.fields.len(), 24);
        assert_eq!(
            s.fields["response_flags"].kind,
            Some(Kind::StringValue("%RESPONSE_FLAGS%".into()))
        );
        // Same message as prost would pack, field order aside.
        let plain = FileAccessLog {
            path: options.path.clone(),
            access_log_format: fl.access_log_format.clone(),
        };
        assert_eq!(fl, plain);
        let Some(ConfigType::TypedConfig(any)) = &first.config_type else {
            panic!()
        };
        assert_eq!(any.value.len(), plain.encoded_len());
    }

    #[test]
    fn json_custom_nested_values() {
        let options = AccessLogOptions {
            path: "/dev/stdout".into(),
            encoding: AccessLogEncoding::Json,
            format: r#"{"code":"%RESPONSE_CODE%","n":{"a":"%PROTOCOL%","b":1},"l":[true]}"#.into(),
        };
        let fl = decode(&file_access_log(&options));
        let Format::JsonFormat(s) = format(&fl) else {
            panic!("json expected");
        };
        assert_eq!(s.fields.len(), 3);
        let Some(Kind::StructValue(n)) = &s.fields["n"].kind else {
            panic!("nested struct expected");
        };
        assert_eq!(n.fields["b"].kind, Some(Kind::NumberValue(1.0)));
    }
}
