//! The wire formats: Zipkin v2 JSON's shape, and OTLP protobuf decoding back to the span.

use mast_otlp::{
    ExportTraceServiceRequest, KeyValue, SPAN_KIND_CLIENT, SPAN_KIND_SERVER, STATUS_CODE_ERROR,
    Value as V,
};
use serde_json::Value;

use crate::trace::LocalNode;
use crate::trace::context::TraceId;
use crate::trace::otlp;
use crate::trace::record::{FinishedSpan, Kind};

fn sample(kind: Kind, parent: Option<u64>, status: &str) -> FinishedSpan {
    let mut tags = vec![
        ("http.status_code".into(), status.to_owned()),
        ("upstream_cluster".into(), "outbound|80||svc".to_owned()),
    ];
    if status.starts_with('5') {
        tags.push(("error".into(), "true".to_owned()));
    }
    FinishedSpan {
        trace_id: TraceId {
            high: 0x463a_c35c_9f64_13ad,
            low: 0x4848_5a39_53bb_6124,
            wide: true,
        },
        id: 0xa2fb_4a1d_1a96_d312,
        parent_id: parent,
        name: "svc.default:80".into(),
        kind,
        shared: false,
        tracestate: Some("k=v".into()),
        start_us: 1_700_000_000_000_000,
        duration_us: 1234,
        tags,
    }
}

fn node() -> LocalNode {
    LocalNode {
        id: "sidecar~10.0.0.7~client.default~default.svc.cluster.local".into(),
        cluster: "client.default".into(),
        zone: String::new(),
        ip: Some("10.0.0.7".parse().unwrap()),
    }
}

#[test]
fn zipkin_v2_json_shape() {
    let mut server = sample(Kind::Server, None, "503");
    server.shared = true;
    let spans = [sample(Kind::Client, Some(0x20), "200"), server];
    let body = crate::trace::zipkin::encode(&spans, &node());
    let v: Value = serde_json::from_slice(&body).unwrap();
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let c = &list[0];
    assert_eq!(c["traceId"], "463ac35c9f6413ad48485a3953bb6124");
    assert_eq!(c["id"], "a2fb4a1d1a96d312");
    assert_eq!(c["parentId"], "0000000000000020");
    assert_eq!(c["name"], "svc.default:80");
    assert_eq!(c["kind"], "CLIENT");
    // Integers, never strings or floats in exponent form.
    assert_eq!(c["timestamp"].as_u64(), Some(1_700_000_000_000_000));
    assert_eq!(c["duration"].as_u64(), Some(1234));
    assert_eq!(c["localEndpoint"]["serviceName"], "client.default");
    assert_eq!(c["localEndpoint"]["ipv4"], "10.0.0.7");
    assert_eq!(c["tags"]["http.status_code"], "200");
    assert_eq!(c["tags"]["upstream_cluster"], "outbound|80||svc");
    assert!(c.get("shared").is_none());
    let s = &list[1];
    assert_eq!(s["kind"], "SERVER");
    assert!(s.get("parentId").is_none());
    assert_eq!(s["shared"], true);
    assert_eq!(s["tags"]["error"], "true");
}

#[test]
fn otlp_decodes_back() {
    let shared = otlp::Shared {
        resource: vec![KeyValue::string("service.name", "client.default")],
        scope: None,
    };
    let spans = [
        sample(Kind::Client, Some(0x20), "200"),
        sample(Kind::Server, None, "500"),
    ];
    let body = otlp::encode(&spans, &shared);
    let req = <ExportTraceServiceRequest as prost::Message>::decode(body.as_slice()).unwrap();
    let rs = &req.resource_spans[0];
    let attr = &rs.resource.as_ref().unwrap().attributes[0];
    assert_eq!(attr.key, "service.name");
    assert_eq!(
        attr.value.as_ref().unwrap().value,
        Some(V::StringValue("client.default".into()))
    );
    let got = &rs.scope_spans[0].spans;
    assert_eq!(got.len(), 2);
    let c = &got[0];
    assert_eq!(
        c.trace_id,
        [
            0x46, 0x3a, 0xc3, 0x5c, 0x9f, 0x64, 0x13, 0xad, 0x48, 0x48, 0x5a, 0x39, 0x53, 0xbb,
            0x61, 0x24
        ]
    );
    assert_eq!(c.span_id, 0xa2fb_4a1d_1a96_d312u64.to_be_bytes());
    assert_eq!(c.parent_span_id, 0x20u64.to_be_bytes());
    assert_eq!(c.kind, SPAN_KIND_CLIENT);
    assert_eq!(c.start_time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(c.end_time_unix_nano - c.start_time_unix_nano, 1_234_000);
    assert_eq!(c.trace_state, "k=v");
    assert!(c.status.is_none());
    assert!(c.attributes.iter().any(|a| a.key == "http.status_code"
        && a.value.as_ref().unwrap().value == Some(V::StringValue("200".into()))));
    let s = &got[1];
    assert_eq!(s.kind, SPAN_KIND_SERVER);
    assert!(s.parent_span_id.is_empty());
    assert_eq!(s.status.as_ref().unwrap().code, STATUS_CODE_ERROR);
}
