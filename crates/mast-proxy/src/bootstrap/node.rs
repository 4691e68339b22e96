//! Who the proxy is: the node id (`sidecar~<ip>~<workload>.<ns>~<ns>.svc.<domain>`), the
//! node `cluster` and Istio's metadata keys plus Mast's capture-mode keys — the same ones
//! `mast-agent` writes, so mastd generates the same configuration for both proxies — and
//! the conversion of that metadata from JSON into a `google.protobuf.Struct`.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::google::protobuf::{ListValue, Struct, Value as PbValue, value::Kind};
use serde_json::{Value, json};

use super::BootstrapError;

/// Sidecar or gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProxyType {
    /// A workload's sidecar.
    #[default]
    Sidecar,
    /// A gateway (`router` in the node id).
    Router,
}

impl ProxyType {
    /// The node id's first part.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sidecar => "sidecar",
            Self::Router => "router",
        }
    }
}

/// The capture mode with its (already chosen) ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capture {
    /// iptables redirection to 15001 (outbound) / 15006 (inbound).
    Iptables,
    /// Explicit listeners on 127.0.0.1.
    Ports {
        /// The outbound listener's port.
        outbound: u16,
        /// Application port → listener port.
        inbound: BTreeMap<u16, u16>,
    },
}

/// Everything that goes into the xDS `Node`.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    /// Sidecar or router.
    pub proxy_type: ProxyType,
    /// The workload's IP.
    pub ip: String,
    /// The workload's name (for a pod: the pod's, which the node id carries).
    pub workload: String,
    /// The name of the workload the pod belongs to (`WORKLOAD_NAME`, Istio's metrics'
    /// `*_workload`); `None`: [`Self::workload`].
    pub workload_name: Option<String>,
    /// The workload's namespace.
    pub namespace: String,
    /// The cluster DNS domain (`cluster.local`).
    pub domain: String,
    /// The workload's labels (LABELS).
    pub labels: BTreeMap<String, String>,
    /// SERVICE_ACCOUNT, when known.
    pub service_account: Option<String>,
    /// CLUSTER_ID.
    pub cluster_id: String,
    /// MESH_ID.
    pub mesh_id: String,
    /// The capture mode and its ports.
    pub capture: Capture,
    /// A node id used as is instead of the one built from the parts.
    pub id_override: Option<String>,
}

/// The parts of a node id: type, IP, workload, namespace.
pub(super) fn parse_node_id(
    id: &str,
) -> Result<(ProxyType, String, String, String), BootstrapError> {
    let bad = |why: &str| BootstrapError::BadNodeId(id.to_owned(), why.to_owned());
    let parts: Vec<&str> = id.split('~').collect();
    let [kind, ip, workload_ns, _domain] = parts.as_slice() else {
        return Err(bad(
            "not of the form sidecar~<ip>~<workload>.<namespace>~<namespace>.svc.<domain>",
        ));
    };
    let kind = match *kind {
        "sidecar" => ProxyType::Sidecar,
        "router" => ProxyType::Router,
        _ => return Err(bad("the type must be sidecar or router")),
    };
    let (workload, namespace) = workload_ns.rsplit_once('.').unwrap_or((workload_ns, ""));
    Ok((
        kind,
        (*ip).to_owned(),
        workload.to_owned(),
        namespace.to_owned(),
    ))
}

impl NodeSpec {
    /// The node id (or the override).
    pub fn node_id(&self) -> String {
        if let Some(id) = &self.id_override {
            return id.clone();
        }
        let kind = self.proxy_type.as_str();
        let (ip, w, ns, domain) = (&self.ip, &self.workload, &self.namespace, &self.domain);
        format!("{kind}~{ip}~{w}.{ns}~{ns}.svc.{domain}")
    }

    /// The node's `cluster`: `<workload>.<namespace>`.
    pub fn cluster(&self) -> String {
        format!("{}.{}", self.workload, self.namespace)
    }

    /// `WORKLOAD_NAME`: the owning workload's name, else the node's.
    pub fn workload_name(&self) -> &str {
        self.workload_name.as_deref().unwrap_or(&self.workload)
    }

    /// The metadata as JSON: Istio's keys, Mast's capture keys (all strings, LABELS a map)
    /// and `MAST_ADMIN_ADDRESS` (where `mastctl proxy-config` finds the admin interface).
    pub fn metadata(&self, admin_port: u16) -> Value {
        let mut md = json!({
            "NAMESPACE": self.namespace,
            "WORKLOAD_NAME": self.workload_name(),
            "LABELS": self.labels,
            "CLUSTER_ID": self.cluster_id,
            "MESH_ID": self.mesh_id,
            "INSTANCE_IPS": self.ip,
            "MAST_ADMIN_ADDRESS": format!("127.0.0.1:{admin_port}"),
        });
        if let Some(sa) = &self.service_account {
            md["SERVICE_ACCOUNT"] = json!(sa);
        }
        match &self.capture {
            Capture::Iptables => md["MAST_CAPTURE_MODE"] = json!("iptables"),
            Capture::Ports { outbound, inbound } => {
                let pairs: Vec<String> = inbound.iter().map(|(a, l)| format!("{a}={l}")).collect();
                md["MAST_CAPTURE_MODE"] = json!("ports");
                md["MAST_OUTBOUND_PORT"] = json!(outbound.to_string());
                md["MAST_INBOUND_PORTS"] = json!(pairs.join(","));
            }
        }
        md
    }

    /// The xDS `Node`: id, cluster, metadata, and `mast-proxy` with its version as user agent.
    pub fn to_node(&self, admin_port: u16) -> Node {
        Node {
            id: self.node_id(),
            cluster: self.cluster(),
            metadata: Some(json_to_struct(&self.metadata(admin_port))),
            user_agent_name: "mast-proxy".into(),
            user_agent_version_type: Some(UserAgentVersionType::UserAgentVersion(
                env!("CARGO_PKG_VERSION").into(),
            )),
            ..Node::default()
        }
    }
}

/// A JSON object as a `google.protobuf.Struct` (a non-object gives an empty Struct).
pub fn json_to_struct(value: &Value) -> Struct {
    let fields = match value {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect(),
        _ => Default::default(),
    };
    Struct { fields }
}

fn json_to_value(value: &Value) -> PbValue {
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        Value::Object(_) => Kind::StructValue(json_to_struct(value)),
    };
    PbValue { kind: Some(kind) }
}
