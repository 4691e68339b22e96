//! The proxies' access log settings (Istio's MeshConfig `accessLogFile`, `accessLogEncoding`
//! and `accessLogFormat`) and Istio's default formats, as `pilot/pkg/model/telemetry_logging.go`
//! (`FileAccessLogFromMeshConfig`, `EnvoyTextLogFormat`, `EnvoyJSONLogFormatIstio`) defines them.

use std::collections::BTreeMap;

use serde_json::Value;

/// Istio's default TEXT access log format (Istio 1.9 onwards), newline included.
pub const ISTIO_TEXT_FORMAT: &str = concat!(
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% ",
    "%PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% ",
    "%RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% ",
    "\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% ",
    "%DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" ",
    "\"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" ",
    "%UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% ",
    "%DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n",
);

/// Istio's default JSON access log keys and their command operators.
pub const ISTIO_JSON_FORMAT: [(&str, &str); 24] = [
    ("authority", "%REQ(:AUTHORITY)%"),
    ("bytes_received", "%BYTES_RECEIVED%"),
    ("bytes_sent", "%BYTES_SENT%"),
    (
        "connection_termination_details",
        "%CONNECTION_TERMINATION_DETAILS%",
    ),
    ("downstream_local_address", "%DOWNSTREAM_LOCAL_ADDRESS%"),
    ("downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"),
    ("duration", "%DURATION%"),
    ("method", "%REQ(:METHOD)%"),
    ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
    ("protocol", "%PROTOCOL%"),
    ("request_id", "%REQ(X-REQUEST-ID)%"),
    ("requested_server_name", "%REQUESTED_SERVER_NAME%"),
    ("response_code", "%RESPONSE_CODE%"),
    ("response_code_details", "%RESPONSE_CODE_DETAILS%"),
    ("response_flags", "%RESPONSE_FLAGS%"),
    ("route_name", "%ROUTE_NAME%"),
    ("start_time", "%START_TIME%"),
    ("upstream_cluster", "%UPSTREAM_CLUSTER_RAW%"),
    ("upstream_host", "%UPSTREAM_HOST%"),
    ("upstream_local_address", "%UPSTREAM_LOCAL_ADDRESS%"),
    (
        "upstream_service_time",
        "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    ),
    (
        "upstream_transport_failure_reason",
        "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    ),
    ("user_agent", "%REQ(USER-AGENT)%"),
    ("x_forwarded_for", "%REQ(X-FORWARDED-FOR)%"),
];

/// Istio's `accessLogEncoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessLogEncoding {
    /// One text line per request (`TEXT`, the default).
    #[default]
    Text,
    /// One JSON object per request (`JSON`).
    Json,
}

/// Where and how Envoy writes its access log (set: every HTTP connection manager and
/// `tcp_proxy` gets an `envoy.access_loggers.file` entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogOptions {
    /// `accessLogFile`: the path (`/dev/stdout`).
    pub path: String,
    /// `accessLogEncoding`.
    pub encoding: AccessLogEncoding,
    /// `accessLogFormat`: empty for Istio's default of the encoding; with JSON, an object of
    /// key → command operator.
    pub format: String,
}

/// Why an `accessLogFormat` cannot be used with the JSON encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("JSON access log format must be a JSON object: {0}")]
pub struct JsonFormatError(String);

impl AccessLogOptions {
    /// Logging to `path` in Istio's default TEXT format.
    pub fn text(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            encoding: AccessLogEncoding::Text,
            format: String::new(),
        }
    }

    /// The TEXT format: `format` with a newline appended when missing (as Istio does), or
    /// [`ISTIO_TEXT_FORMAT`] when empty.
    pub fn text_format(&self) -> String {
        if self.format.is_empty() {
            return ISTIO_TEXT_FORMAT.to_owned();
        }
        let mut f = self.format.clone();
        if !f.ends_with('\n') {
            f.push('\n');
        }
        f
    }

    /// The JSON format's keys and values: `format` parsed, or [`ISTIO_JSON_FORMAT`] when it
    /// is empty, is not a JSON object or has no key (Istio logs the error and falls back).
    pub fn json_format(&self) -> BTreeMap<String, Value> {
        match parse_json_format(&self.format) {
            Ok(Some(map)) if !map.is_empty() => map,
            _ => ISTIO_JSON_FORMAT
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
                .collect(),
        }
    }
}

/// Parses a JSON `accessLogFormat`: `None` when empty, else its object.
///
/// # Errors
/// When the text is not a JSON object.
pub fn parse_json_format(text: &str) -> Result<Option<BTreeMap<String, Value>>, JsonFormatError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(Some(map.into_iter().collect())),
        Ok(other) => Err(JsonFormatError(format!("got {other}"))),
        Err(e) => Err(JsonFormatError(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_istios() {
        let o = AccessLogOptions::text("/dev/stdout");
        assert_eq!(o.text_format(), ISTIO_TEXT_FORMAT);
        assert!(ISTIO_TEXT_FORMAT.starts_with("[%START_TIME%] \"%REQ(:METHOD)% "));
        assert!(ISTIO_TEXT_FORMAT.ends_with("%ROUTE_NAME%\n"));
        let json = AccessLogOptions {
            encoding: AccessLogEncoding::Json,
            ..o
        };
        let f = json.json_format();
        assert_eq!(f.len(), 24);
        assert_eq!(f["upstream_cluster"], "%UPSTREAM_CLUSTER_RAW%");
    }

    #[test]
    fn custom_formats() {
        let mut o = AccessLogOptions::text("/tmp/a.log");
        o.format = "%RESPONSE_CODE%".into();
        assert_eq!(o.text_format(), "%RESPONSE_CODE%\n");
        o.encoding = AccessLogEncoding::Json;
        o.format = r#"{"code": "%RESPONSE_CODE%", "n": {"m": "%REQ(:METHOD)%"}}"#.into();
        let f = o.json_format();
        assert_eq!(f.len(), 2);
        assert_eq!(f["n"]["m"], "%REQ(:METHOD)%");
        // Not an object: Istio's default.
        o.format = "[]".into();
        assert_eq!(o.json_format().len(), 24);
        assert!(parse_json_format("[]").is_err());
        assert!(parse_json_format("{").is_err());
        assert_eq!(parse_json_format(" "), Ok(None));
    }
}
