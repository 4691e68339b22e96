//! Zipkin v2 JSON (`POST /api/v2/spans`, `application/json`): an array of
//! `{traceId, id, parentId, name, kind, timestamp, duration, localEndpoint {serviceName, ipv4
//! | ipv6, port}, tags, shared}`, as Envoy's `JsonV2Serializer` writes it.

use serde_json::{Map, Value, json};

use super::LocalNode;
use super::record::FinishedSpan;

/// The local endpoint of every span: the node's `cluster` and address.
fn local_endpoint(node: &LocalNode) -> Value {
    let mut e = Map::new();
    if !node.cluster.is_empty() {
        e.insert("serviceName".into(), Value::from(node.cluster.as_str()));
    }
    match node.ip {
        Some(std::net::IpAddr::V4(ip)) => {
            e.insert("ipv4".into(), Value::from(ip.to_string()));
        }
        Some(std::net::IpAddr::V6(ip)) => {
            e.insert("ipv6".into(), Value::from(ip.to_string()));
        }
        None => {}
    }
    Value::Object(e)
}

fn span(s: &FinishedSpan, endpoint: &Value) -> Value {
    let mut v = json!({
        "traceId": s.trace_id.hex(),
        "id": format!("{:016x}", s.id),
        "name": s.name,
        "kind": s.kind.as_str(),
        "timestamp": s.start_us,
        "duration": s.duration_us,
        "localEndpoint": endpoint,
    });
    let Value::Object(m) = &mut v else {
        return v;
    };
    if let Some(p) = s.parent_id {
        m.insert("parentId".into(), Value::from(format!("{p:016x}")));
    }
    if !s.tags.is_empty() {
        let tags: Map<String, Value> = s
            .tags
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(v.as_str())))
            .collect();
        m.insert("tags".into(), Value::Object(tags));
    }
    if s.shared {
        m.insert("shared".into(), Value::Bool(true));
    }
    v
}

/// The request body for `spans`.
pub fn encode(spans: &[FinishedSpan], node: &LocalNode) -> Vec<u8> {
    let endpoint = local_endpoint(node);
    let list: Vec<Value> = spans.iter().map(|s| span(s, &endpoint)).collect();
    serde_json::to_vec(&list).unwrap_or_else(|_| b"[]".to_vec())
}
