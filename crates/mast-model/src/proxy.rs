//! The proxy a configuration is generated for: its node id
//! (`sidecar~<ip>~<workload>.<namespace>~<namespace>.svc.cluster.local`), its Istio node
//! metadata (NAMESPACE, LABELS, WORKLOAD_NAME, SERVICE_ACCOUNT, CLUSTER_ID, MESH_ID) and
//! Mast's capture-mode keys.
//!
//! Capture modes (DESIGN.md section 4), from metadata:
//! - `MAST_CAPTURE_MODE: "iptables"` (default): traffic arrives by redirection on 15001
//!   (outbound) and 15006 (inbound), original destinations intact.
//! - `MAST_CAPTURE_MODE: "ports"`: no redirection. `MAST_OUTBOUND_PORT` is an explicit outbound
//!   listener on 127.0.0.1 that the workload uses as its HTTP proxy (absolute-form requests and
//!   `CONNECT`), routed by host; `MAST_INBOUND_PORTS` (`"9080=15106,9090=15107"`) gives, for
//!   each application port, the listener port on which the sidecar accepts inbound traffic
//!   for it and forwards to the application at `127.0.0.1:<application port>`.

use std::collections::BTreeMap;

use serde_json::Value;

/// Why a node could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyNodeError {
    /// The id is not `type~ip~workload.namespace~domain`.
    #[error(
        "node id {0:?} is not of the form sidecar~<ip>~<workload>.<namespace>~<namespace>.svc.cluster.local"
    )]
    BadId(String),
    /// The node type is neither `sidecar` nor `router`.
    #[error("unknown node type {0:?}: expected sidecar or router")]
    BadType(String),
    /// A capture-mode key is missing or malformed.
    #[error("metadata {key}: {problem}")]
    BadMetadata {
        /// The metadata key.
        key: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// What kind of proxy this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeType {
    /// A workload's sidecar.
    Sidecar,
    /// A standalone gateway (ingress, egress).
    Router,
}

/// How traffic reaches the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureMode {
    /// iptables redirection to 15001 (outbound) and 15006 (inbound).
    Iptables,
    /// Explicit listeners on loopback (no root needed).
    Ports {
        /// The outbound listener, used by the workload as an HTTP proxy.
        outbound: u16,
        /// Application port -> inbound listener port.
        inbound: BTreeMap<u16, u16>,
    },
}

/// A connected proxy, as translation needs to know it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyNode {
    /// The node id as sent.
    pub id: String,
    /// Sidecar or gateway.
    pub node_type: NodeType,
    /// The workload's IP (from the id).
    pub ip: String,
    /// The workload's name (WORKLOAD_NAME, else from the id).
    pub workload: String,
    /// The workload's namespace (NAMESPACE, else from the id).
    pub namespace: String,
    /// The workload's labels (LABELS).
    pub labels: BTreeMap<String, String>,
    /// The workload's service account (SERVICE_ACCOUNT), empty when unknown.
    pub service_account: String,
    /// How traffic is captured.
    pub capture: CaptureMode,
    /// The whole metadata as sent, for keys translation does not interpret.
    pub metadata: Value,
}

impl ProxyNode {
    /// Parses the node id and metadata (the xDS `Node.metadata` Struct as JSON).
    pub fn parse(id: &str, metadata: &Value) -> Result<Self, ProxyNodeError> {
        let parts: Vec<&str> = id.split('~').collect();
        let [kind, ip, workload_ns, _domain] = parts.as_slice() else {
            return Err(ProxyNodeError::BadId(id.to_owned()));
        };
        let node_type = match *kind {
            "sidecar" => NodeType::Sidecar,
            "router" => NodeType::Router,
            other => return Err(ProxyNodeError::BadType(other.to_owned())),
        };
        let (id_workload, id_ns) = workload_ns.rsplit_once('.').unwrap_or((workload_ns, ""));
        let text = |key: &str| {
            metadata
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let labels = metadata
            .get("LABELS")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            id: id.to_owned(),
            node_type,
            ip: (*ip).to_owned(),
            workload: text("WORKLOAD_NAME").unwrap_or_else(|| id_workload.to_owned()),
            namespace: text("NAMESPACE").unwrap_or_else(|| id_ns.to_owned()),
            labels,
            service_account: text("SERVICE_ACCOUNT").unwrap_or_default(),
            capture: capture_mode(metadata)?,
            metadata: metadata.clone(),
        })
    }
}

fn capture_mode(metadata: &Value) -> Result<CaptureMode, ProxyNodeError> {
    let text = |key: &str| metadata.get(key).and_then(Value::as_str).unwrap_or("");
    match text("MAST_CAPTURE_MODE") {
        "" | "iptables" => Ok(CaptureMode::Iptables),
        "ports" => {
            let outbound =
                text("MAST_OUTBOUND_PORT")
                    .parse()
                    .map_err(|_| ProxyNodeError::BadMetadata {
                        key: "MAST_OUTBOUND_PORT",
                        problem: "required in ports mode: the outbound listener's port number"
                            .into(),
                    })?;
            let mut inbound = BTreeMap::new();
            for pair in text("MAST_INBOUND_PORTS")
                .split(',')
                .filter(|p| !p.trim().is_empty())
            {
                let parsed = pair
                    .split_once('=')
                    .and_then(|(a, l)| Some((a.trim().parse().ok()?, l.trim().parse().ok()?)));
                let Some((app, listen)) = parsed else {
                    return Err(ProxyNodeError::BadMetadata {
                        key: "MAST_INBOUND_PORTS",
                        problem: format!("{pair:?} is not <application port>=<listener port>"),
                    });
                };
                inbound.insert(app, listen);
            }
            Ok(CaptureMode::Ports { outbound, inbound })
        }
        other => Err(ProxyNodeError::BadMetadata {
            key: "MAST_CAPTURE_MODE",
            problem: format!("{other:?} is not iptables or ports"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_istio_node() {
        let md = json!({"NAMESPACE": "default", "LABELS": {"app": "nginx", "version": "v1"}, "SERVICE_ACCOUNT": "nginx"});
        let n = ProxyNode::parse(
            "sidecar~10.0.0.5~nginx-1.default~default.svc.cluster.local",
            &md,
        )
        .unwrap();
        assert_eq!(n.node_type, NodeType::Sidecar);
        assert_eq!(n.ip, "10.0.0.5");
        assert_eq!(n.workload, "nginx-1");
        assert_eq!(n.namespace, "default");
        assert_eq!(n.labels["version"], "v1");
        assert_eq!(n.capture, CaptureMode::Iptables);
    }

    #[test]
    fn parses_ports_mode() {
        let md = json!({"MAST_CAPTURE_MODE": "ports", "MAST_OUTBOUND_PORT": "15101", "MAST_INBOUND_PORTS": "8080=15106"});
        let n = ProxyNode::parse(
            "sidecar~127.0.0.1~client.default~default.svc.cluster.local",
            &md,
        )
        .unwrap();
        assert_eq!(
            n.capture,
            CaptureMode::Ports {
                outbound: 15101,
                inbound: BTreeMap::from([(8080, 15106)])
            }
        );
        assert!(
            ProxyNode::parse(
                "sidecar~127.0.0.1~c.default~d",
                &json!({"MAST_CAPTURE_MODE": "ports"})
            )
            .is_err()
        );
        assert!(ProxyNode::parse("bogus", &json!({})).is_err());
        assert!(ProxyNode::parse("waypoint~1~a.b~c", &json!({})).is_err());
    }
}
