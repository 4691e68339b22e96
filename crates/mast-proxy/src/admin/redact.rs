//! Envoy's redaction of sensitive fields in `/config_dump` (`MessageUtil::redact`): every
//! string inside a `TlsCertificate`'s `private_key` or `password` (and a DownstreamTlsContext's
//! `session_ticket_keys`) becomes `[redacted]` — so inlined secrets (a gateway's
//! `credentialName` certificates) never leave the proxy; `inline_bytes` hold the bytes
//! `[redacted]` (base64 in JSON), as Envoy prints them.

use serde_json::Value;

/// The sensitive fields (JSON names of the Envoy API).
const SENSITIVE: [&str; 3] = ["private_key", "password", "session_ticket_keys"];

/// `[redacted]` as base64 (a redacted `bytes` field in JSON).
const REDACTED_BYTES: &str = "W3JlZGFjdGVkXQ==";

/// Redacts the sensitive fields anywhere in `v`.
pub(super) fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if SENSITIVE.contains(&key.as_str()) {
                    redact_all(value, key);
                } else {
                    redact(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// Replaces every string under a sensitive field (`key`: the field holding it).
fn redact_all(v: &mut Value, key: &str) {
    match v {
        Value::String(s) => {
            *s = if key == "inline_bytes" {
                REDACTED_BYTES.to_owned()
            } else {
                "[redacted]".to_owned()
            };
        }
        Value::Object(map) => map.iter_mut().for_each(|(k, v)| redact_all(v, k)),
        Value::Array(items) => items.iter_mut().for_each(|i| redact_all(i, key)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::redact;

    #[test]
    fn inlined_keys_and_passwords_are_redacted_the_rest_kept() {
        let mut v = json!({"filter_chains": [{"transport_socket": {"typed_config": {
        "common_tls_context": {"tls_certificates": [{
            "certificate_chain": {"inline_string": "-----BEGIN CERTIFICATE-----"},
            "private_key": {"inline_string": "-----BEGIN PRIVATE KEY-----"},
            "password": {"inline_bytes": "c2VjcmV0"}
        }, {
            "certificate_chain": {"filename": "/etc/certs/cert.pem"},
            "private_key": {"filename": "/etc/certs/key.pem"}
        }]}}}}]});
        redact(&mut v);
        let certs = &v["filter_chains"][0]["transport_socket"]["typed_config"]["common_tls_context"]
            ["tls_certificates"];
        assert_eq!(
            certs[0]["certificate_chain"]["inline_string"],
            "-----BEGIN CERTIFICATE-----"
        );
        assert_eq!(certs[0]["private_key"]["inline_string"], "[redacted]");
        assert_eq!(certs[0]["password"]["inline_bytes"], "W3JlZGFjdGVkXQ==");
        assert_eq!(certs[1]["private_key"]["filename"], "[redacted]");
        assert_eq!(
            certs[1]["certificate_chain"]["filename"],
            "/etc/certs/cert.pem"
        );
    }
}
