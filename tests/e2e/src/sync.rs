//! [`ProxySync`]: one proxy's entry of mastd's `/debug/syncz`, read the way
//! `mastctl proxy-status` reads it: a SYNCED / NOT SENT / STALE status per xDS type plus the
//! versions sent and ACKed.

use std::collections::BTreeMap;

use serde_json::Value;

/// The four xDS types, in push order, with the short names istioctl prints.
pub const TYPES: [(&str, &str); 4] = [
    ("CDS", "type.googleapis.com/envoy.config.cluster.v3.Cluster"),
    (
        "EDS",
        "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
    ),
    (
        "LDS",
        "type.googleapis.com/envoy.config.listener.v3.Listener",
    ),
    (
        "RDS",
        "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
    ),
];

/// One type's state for one proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeSync {
    /// SYNCED, NOT SENT or STALE.
    pub status: String,
    /// The version last sent.
    pub sent_version: Option<u64>,
    /// The version last ACKed.
    pub acked_version: Option<u64>,
    /// The error of the last NACK, if any.
    pub last_nack: Option<String>,
}

/// A proxy's sync state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySync {
    /// The node id.
    pub node_id: String,
    /// Short type name (`CDS`, …) → state.
    pub types: BTreeMap<&'static str, TypeSync>,
}

impl ProxySync {
    /// The newest entry for `node_id` in a syncz answer.
    pub fn find(syncz: &Value, node_id: &str) -> Option<Self> {
        let entry = syncz
            .as_array()?
            .iter()
            .rev()
            .find(|e| e.get("proxy_id").and_then(Value::as_str) == Some(node_id))?;
        let detail = entry.get("detail").and_then(|d| d.get("types"));
        let types = TYPES
            .iter()
            .map(|(short, url)| {
                let column = short.to_ascii_lowercase();
                let status = entry
                    .get(column.as_str())
                    .and_then(Value::as_str)
                    .unwrap_or("MISSING")
                    .to_owned();
                let t = detail.and_then(|d| d.get(*url));
                let version = |key: &str| {
                    t.and_then(|t| t.get(key))
                        .and_then(Value::as_str)
                        .and_then(|v| v.parse().ok())
                };
                let last_nack = t
                    .and_then(|t| t.get("last_nack"))
                    .and_then(|n| n.get("error"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let sync = TypeSync {
                    status,
                    sent_version: version("sent_version"),
                    acked_version: version("acked_version"),
                    last_nack,
                };
                (*short, sync)
            })
            .collect();
        Some(Self {
            node_id: node_id.to_owned(),
            types,
        })
    }

    /// Whether all four types are SYNCED.
    pub fn all_synced(&self) -> bool {
        self.types.values().all(|t| t.status == "SYNCED")
    }

    /// Whether nothing is in flight: every type SYNCED, or NOT SENT because the proxy has
    /// nothing of it (EDS before any service exists), and at least one SYNCED.
    pub fn settled(&self) -> bool {
        self.types
            .values()
            .all(|t| t.status == "SYNCED" || t.status == "NOT SENT")
            && self.types.values().any(|t| t.status == "SYNCED")
    }

    /// The newest version sent to the proxy, over all types.
    pub fn newest_sent(&self) -> Option<u64> {
        self.types.values().filter_map(|t| t.sent_version).max()
    }

    /// The newest version the proxy has ACKed, over all types.
    pub fn newest_acked(&self) -> Option<u64> {
        self.types.values().filter_map(|t| t.acked_version).max()
    }

    /// Whether the proxy is [settled](ProxySync::settled) and some type ACKed `version` or
    /// newer (a change re-sends only the types whose content changed, all with the snapshot's
    /// version).
    pub fn synced_at(&self, version: u64) -> bool {
        self.settled() && self.newest_acked().is_some_and(|v| v >= version)
    }

    /// The ACKed version of type `short` (`"RDS"`, …).
    pub fn acked(&self, short: &str) -> Option<u64> {
        self.types.get(short).and_then(|t| t.acked_version)
    }

    /// One line: `CDS SYNCED@3 EDS SYNCED@3 …`, NACK errors included.
    pub fn summary(&self) -> String {
        self.types
            .iter()
            .map(|(short, t)| {
                let acked = t.acked_version.map_or("-".to_owned(), |v| v.to_string());
                let nack = t
                    .last_nack
                    .as_ref()
                    .map(|e| format!(" (last NACK: {e})"))
                    .unwrap_or_default();
                format!("{short} {}@{acked}{nack}", t.status)
            })
            .collect::<Vec<_>>()
            .join("  ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(node: &str, rds: &str, version: &str) -> Value {
        let t = |v: &str| json!({"sent_version": v, "acked_version": v, "last_nack": null});
        json!({
            "proxy_id": node, "cds": "SYNCED", "lds": "SYNCED", "eds": "SYNCED", "rds": rds,
            "detail": {"types": {
                TYPES[0].1: t("1"), TYPES[1].1: t("1"), TYPES[2].1: t("1"), TYPES[3].1: t(version),
            }}
        })
    }

    #[test]
    fn reads_the_newest_entry_of_a_proxy() {
        let syncz = json!([
            entry("a", "STALE", "1"),
            entry("b", "SYNCED", "9"),
            entry("a", "SYNCED", "4")
        ]);
        let a = ProxySync::find(&syncz, "a").unwrap();
        assert!(a.all_synced());
        assert_eq!(a.acked("RDS"), Some(4));
        assert_eq!(a.newest_acked(), Some(4));
        assert!(a.synced_at(4));
        assert!(!a.synced_at(5));
        assert!(a.summary().contains("RDS SYNCED@4"));
        assert!(ProxySync::find(&syncz, "c").is_none());
        let stale = ProxySync::find(&json!([entry("a", "STALE", "7")]), "a").unwrap();
        assert!(!stale.synced_at(1));
        assert!(!stale.settled());
        let unsent = ProxySync::find(&json!([entry("a", "NOT SENT", "7")]), "a").unwrap();
        assert!(unsent.settled());
        assert!(!unsent.all_synced());
        assert_eq!(unsent.newest_sent(), Some(7));
    }
}
