//! The node on the first request of a stream: converts Envoy's `Node` (id, cluster,
//! `google.protobuf.Struct` metadata, build version) into a [`ProxyNode`] and the summary
//! shown in status. A node Mast cannot understand ends the stream with `InvalidArgument`.

use envoy_types::pb::envoy::config::core::v3::{Node, node::UserAgentVersionType};
use envoy_types::pb::google::protobuf::{Struct, Value as PbValue, value::Kind};
use mast_model::{CaptureMode, NodeType, ProxyNode};
use serde_json::{Map, Number, Value};
use tonic::Status;

use crate::status::ProxySummary;

/// Converts a protobuf `Struct` to a JSON object.
pub fn struct_to_json(s: &Struct) -> Value {
    let map: Map<String, Value> = s
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), value_to_json(v)))
        .collect();
    Value::Object(map)
}

fn value_to_json(v: &PbValue) -> Value {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::NumberValue(n)) => Number::from_f64(*n).map_or(Value::Null, Value::Number),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::StructValue(s)) => struct_to_json(s),
        Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(value_to_json).collect()),
    }
}

/// Parses the node of a stream's first request.
pub(crate) fn parse_node(node: Option<&Node>) -> Result<(ProxyNode, ProxySummary), Status> {
    let Some(node) = node else {
        return Err(Status::invalid_argument(
            "the first request on an ADS stream must carry the node",
        ));
    };
    if node.id.is_empty() {
        return Err(Status::invalid_argument("node.id is empty"));
    }
    let metadata = node
        .metadata
        .as_ref()
        .map_or_else(|| Value::Object(Map::new()), struct_to_json);
    let proxy = ProxyNode::parse(&node.id, &metadata)
        .map_err(|e| Status::invalid_argument(format!("node {:?} rejected: {e}", node.id)))?;
    let summary = summary(node, &proxy, &metadata);
    Ok((proxy, summary))
}

fn summary(node: &Node, proxy: &ProxyNode, metadata: &Value) -> ProxySummary {
    let cluster_id = metadata
        .get("CLUSTER_ID")
        .and_then(Value::as_str)
        .map_or_else(|| node.cluster.clone(), str::to_owned);
    ProxySummary {
        node_type: match proxy.node_type {
            NodeType::Sidecar => "sidecar".into(),
            NodeType::Router => "router".into(),
        },
        ip: proxy.ip.clone(),
        workload: proxy.workload.clone(),
        namespace: proxy.namespace.clone(),
        service_account: proxy.service_account.clone(),
        labels: proxy.labels.clone(),
        cluster_id,
        capture_mode: match proxy.capture {
            CaptureMode::Iptables => "iptables".into(),
            CaptureMode::Ports { .. } => "ports".into(),
        },
        proxy_version: proxy_version(node),
        admin_address: metadata
            .get("MAST_ADMIN_ADDRESS")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
    }
}

/// The proxy's version as it reports it (`1.40.0` for Envoy's structured build version).
fn proxy_version(node: &Node) -> String {
    match &node.user_agent_version_type {
        Some(UserAgentVersionType::UserAgentVersion(v)) => v.clone(),
        Some(UserAgentVersionType::UserAgentBuildVersion(b)) => b
            .version
            .as_ref()
            .map(|v| format!("{}.{}.{}", v.major_number, v.minor_number, v.patch))
            .unwrap_or_default(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::ListValue;
    use serde_json::json;

    fn s(v: &str) -> PbValue {
        PbValue {
            kind: Some(Kind::StringValue(v.into())),
        }
    }

    #[test]
    fn struct_becomes_json() {
        let labels = Struct {
            fields: [("app".to_string(), s("nginx"))].into(),
        };
        let md = Struct {
            fields: [
                ("NAMESPACE".to_string(), s("default")),
                (
                    "LABELS".to_string(),
                    PbValue {
                        kind: Some(Kind::StructValue(labels)),
                    },
                ),
                (
                    "N".to_string(),
                    PbValue {
                        kind: Some(Kind::NumberValue(2.0)),
                    },
                ),
                (
                    "L".to_string(),
                    PbValue {
                        kind: Some(Kind::ListValue(ListValue {
                            values: vec![s("a")],
                        })),
                    },
                ),
            ]
            .into(),
        };
        assert_eq!(
            struct_to_json(&md),
            json!({"NAMESPACE": "default", "LABELS": {"app": "nginx"}, "N": 2.0, "L": ["a"]})
        );
    }

    #[test]
    fn bad_nodes_are_invalid_argument() {
        let err = parse_node(None).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        let node = Node {
            id: "bogus".into(),
            ..Node::default()
        };
        let err = parse_node(Some(&node)).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("bogus"), "{}", err.message());
    }

    #[test]
    fn good_node_parses() {
        let node = Node {
            id: "sidecar~10.0.0.5~nginx-1.default~default.svc.cluster.local".into(),
            cluster: "nginx.default".into(),
            ..Node::default()
        };
        let (proxy, summary) = parse_node(Some(&node)).unwrap();
        assert_eq!(proxy.namespace, "default");
        assert_eq!(summary.cluster_id, "nginx.default");
        assert_eq!(summary.capture_mode, "iptables");
    }
}
