//! `mastctl proxy-config secret <proxy>`: the certificates a proxy holds, read from the
//! `SecretsConfigDump` of its `/config_dump` (Envoy's and mast-proxy's have the same shape),
//! as istioctl's table: `RESOURCE NAME  TYPE  STATUS  VALID CERT  SERIAL NUMBER  NOT AFTER
//! NOT BEFORE`. `TYPE` is `Cert Chain` for a certificate (`default`) and `CA` for trusted
//! roots (`ROOTCA`); `STATUS` is `ACTIVE` or `WARMING` (asked for, not received yet);
//! the dates and serial are the first certificate's (the leaf, or the first root).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::der::{CertInfo, base64_decode, cert_info, pem_certificates};
use crate::cmd::table::Table;

/// The `SecretsConfigDump` of a `/config_dump` (`null` when it has none).
pub fn secrets_json(dump: &Value) -> Value {
    super::config(dump, "SecretsConfigDump")
        .cloned()
        .unwrap_or(Value::Null)
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    name: String,
    kind: &'static str,
    status: &'static str,
    cert: Option<CertInfo>,
}

/// The secrets of a dump, active ones (static, then dynamic) first, then warming ones.
fn rows(dump: &Value) -> Vec<Row> {
    let c = super::config(dump, "SecretsConfigDump");
    let listed = |key: &'static str, status: &'static str| {
        super::list(c, key).map(move |entry| row(entry, status))
    };
    listed("static_secrets", "ACTIVE")
        .chain(listed("dynamic_active_secrets", "ACTIVE"))
        .chain(listed("dynamic_warming_secrets", "WARMING"))
        .collect()
}

fn row(entry: &Value, status: &'static str) -> Row {
    let secret = entry.get("secret").unwrap_or(&Value::Null);
    let name = entry
        .get("name")
        .or_else(|| secret.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let (kind, source) = if let Some(tls) = secret.get("tls_certificate") {
        ("Cert Chain", tls.get("certificate_chain"))
    } else if let Some(vc) = secret.get("validation_context") {
        ("CA", vc.get("trusted_ca"))
    } else {
        ("", None)
    };
    let cert = source
        .and_then(pem_text)
        .and_then(|pem| pem_certificates(&pem).into_iter().next())
        .and_then(|der| cert_info(&der));
    Row {
        name,
        kind,
        status,
        cert,
    }
}

/// The PEM text of an inline `DataSource` (`inline_bytes` is base64 in JSON).
fn pem_text(source: &Value) -> Option<String> {
    if let Some(s) = source.get("inline_string").and_then(Value::as_str) {
        return Some(s.to_owned());
    }
    let bytes = base64_decode(source.get("inline_bytes")?.as_str()?)?;
    String::from_utf8(bytes).ok()
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// istioctl's secret table.
pub fn secret_table(dump: &Value) -> String {
    table_at(dump, now_unix())
}

fn table_at(dump: &Value, now: i64) -> String {
    let mut t = Table::new(&[
        "RESOURCE NAME",
        "TYPE",
        "STATUS",
        "VALID CERT",
        "SERIAL NUMBER",
        "NOT AFTER",
        "NOT BEFORE",
    ]);
    for r in rows(dump) {
        let mut cells = vec![r.name, r.kind.to_owned(), r.status.to_owned()];
        match r.cert {
            Some(c) => cells.extend([
                c.valid_at(now).to_string(),
                c.serial,
                c.not_after,
                c.not_before,
            ]),
            None => cells.push("false".into()),
        }
        t.row(cells);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBvjCCAWOgAwIBAgIQb77iVMIpAGFcsfdOPS8XEzAKBggqhkjOPQQDAjAYMRYw
FAYDVQQKDA1jbHVzdGVyLmxvY2FsMCAXDTI2MTEyNjA4NTczOVoYDzIxMjYxMTAy
MDg1NzM5WjAYMRYwFAYDVQQKDA1jbHVzdGVyLmxvY2FsMFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEZrE1JKfnSqhBqIvOZeEZVG9YonR36Dp7XUpusqfwr/zG8Fdo
D9ZOaCoblTHBK7dnQuDWHp5VK0UcLG7AQ628D6OBjDCBiTAdBgNVHQ4EFgQUdc7P
WiYrhaHHcex1IHlyIiFO6qowHwYDVR0jBBgwFoAUdc7PWiYrhaHHcex1IHlyIiFO
6qowDwYDVR0TAQH/BAUwAwEB/zA2BgNVHREELzAthitzcGlmZmU6Ly9jbHVzdGVy
LmxvY2FsL25zL2RlZmF1bHQvc2EvY2xpZW50MAoGCCqGSM49BAMCA0kAMEYCIQDT
08atmZojrnivZ2bUW5El6FWduTQ9NLhfTMFhDgDsigIhAJnsEmNJbeG+6KACEOKl
1wDIg/Tag0L4Q08zkLIhqXFg
-----END CERTIFICATE-----\n";

    fn b64(text: &str) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in text.as_bytes().chunks(3) {
            let n =
                chunk.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
            out.push_str(&"=".repeat(3 - chunk.len()));
        }
        out
    }

    fn dump() -> Value {
        let pem = b64(PEM);
        json!({"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
            "dynamic_active_secrets": [
                {"name": "default", "version_info": "1", "secret": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
                    "name": "default", "tls_certificate": {
                        "certificate_chain": {"inline_bytes": pem},
                        "private_key": {"inline_bytes": "W3JlZGFjdGVkXQ=="}}}},
                {"name": "ROOTCA", "version_info": "1", "secret": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
                    "name": "ROOTCA", "validation_context": {"trusted_ca": {"inline_string": PEM}}}}],
            "dynamic_warming_secrets": [{"name": "other", "version_info": "uninitialized",
                "secret": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", "name": "other"}}]}]})
    }

    #[test]
    fn reads_the_certificates_of_the_dump() {
        let d = dump();
        let rows = rows(&d);
        assert_eq!(rows.len(), 3);
        let c = rows[0].cert.clone().unwrap();
        assert_eq!(c.serial, "6fbee254c22900615cb1f74e3d2f1713");
        assert_eq!(c.not_before, "2026-11-26T08:57:39Z");
        assert_eq!(c.not_after, "2126-11-02T08:57:39Z");
        let table = table_at(&d, c.not_before_unix + 10);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "RESOURCE NAME     TYPE           STATUS      VALID CERT     SERIAL NUMBER                        NOT AFTER                NOT BEFORE"
        );
        assert_eq!(
            lines[1],
            "default           Cert Chain     ACTIVE      true           6fbee254c22900615cb1f74e3d2f1713     2126-11-02T08:57:39Z     2026-11-26T08:57:39Z"
        );
        assert!(
            lines[2].starts_with("ROOTCA            CA             ACTIVE      true"),
            "{table}"
        );
        assert_eq!(
            lines[3],
            "other                            WARMING     false"
        );
        let before = table_at(&d, c.not_before_unix - 10);
        assert!(
            before.lines().nth(1).unwrap().contains("ACTIVE      false"),
            "{before}"
        );
        assert_eq!(
            secrets_json(&d)["dynamic_active_secrets"][0]["name"],
            "default"
        );
        assert_eq!(secrets_json(&json!({"configs": []})), Value::Null);
    }
}
