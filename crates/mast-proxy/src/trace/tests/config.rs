//! Conversion of HCM `tracing`: what mastd (and Istio) emit is accepted with Envoy's
//! defaults; what mast-proxy cannot honour is refused naming the field.

use envoy_types::pb::envoy::config::core::v3::GrpcService;
use envoy_types::pb::envoy::r#type::tracing::v3::CustomTag as PbTag;
use envoy_types::pb::envoy::r#type::tracing::v3::custom_tag::{
    Environment, Header, Literal, Metadata, Type as TagType,
};

use super::*;
use crate::trace::config::CustomTag;
use crate::trace::provider::{Collector, Provider};

fn refused(t: &Tracing) -> (String, String) {
    TraceConfig::from_proto(t, "p").expect_err("refused")
}

#[test]
fn istio_zipkin_provider() {
    let c = config(&tracing(&zipkin_pb("zipkin"), 1.0));
    assert_eq!(c.sampling.random, 100);
    assert_eq!((c.sampling.client, c.sampling.overall), (10_000, 10_000));
    assert_eq!(c.max_path_tag_length, 256);
    let Some(Provider::Zipkin(z)) = &c.provider else {
        panic!("{:?}", c.provider)
    };
    assert_eq!(
        z.collector,
        Collector {
            cluster: "zipkin".into(),
            host: "zipkin.local:9411".into(),
            path: "/api/v2/spans".into(),
            headers: vec![],
            timeout: std::time::Duration::from_secs(5),
        }
    );
    assert!(z.trace_id_128bit && !z.shared_span_context && !z.w3c);
    // Envoy's defaults: shared span context on, Host = the cluster name.
    let mut pb = zipkin_pb("zipkin");
    pb.shared_span_context = None;
    pb.collector_hostname.clear();
    let c = config(&tracing(&pb, 100.0));
    let Some(Provider::Zipkin(z)) = &c.provider else {
        panic!()
    };
    assert!(z.shared_span_context);
    assert_eq!(z.collector.host, "zipkin");
}

#[test]
fn opentelemetry_http_service() {
    let c = config(&tracing(&otel_pb("otel"), 100.0));
    let Some(Provider::OpenTelemetry(o)) = &c.provider else {
        panic!("{:?}", c.provider)
    };
    let collector = o.collector.as_ref().unwrap();
    assert_eq!(
        (
            collector.cluster.as_str(),
            collector.host.as_str(),
            collector.path.as_str()
        ),
        ("otel", "otel.local:4318", "/v1/traces")
    );
    assert_eq!(o.service_name, "client.default");
    assert_eq!(o.buffer, 1024);
    // A path alone: the Host is the cluster name.
    let mut pb = otel_pb("otel");
    pb.http_service
        .as_mut()
        .unwrap()
        .http_uri
        .as_mut()
        .unwrap()
        .uri = "/v1/traces".into();
    pb.service_name.clear();
    let c = config(&tracing(&pb, 100.0));
    let Some(Provider::OpenTelemetry(o)) = &c.provider else {
        panic!()
    };
    assert_eq!(o.collector.as_ref().unwrap().host, "otel");
    assert_eq!(o.service_name, "unknown_service:envoy");
}

#[test]
fn custom_tags() {
    let mut t = tracing(&zipkin_pb("zipkin"), 100.0);
    let tag = |name: &str, ty| PbTag {
        tag: name.into(),
        r#type: Some(ty),
    };
    t.custom_tags = vec![
        tag("lit", TagType::Literal(Literal { value: "v".into() })),
        tag(
            "env",
            TagType::Environment(Environment {
                name: "MAST_TRACE_TEST_SURELY_UNSET".into(),
                default_value: "dflt".into(),
            }),
        ),
        tag(
            "hdr",
            TagType::RequestHeader(Header {
                name: "X-User".into(),
                default_value: String::new(),
            }),
        ),
    ];
    let c = config(&t);
    assert_eq!(
        c.custom_tags[..2],
        [
            CustomTag::Literal {
                tag: "lit".into(),
                value: "v".into()
            },
            CustomTag::Literal {
                tag: "env".into(),
                value: "dflt".into()
            },
        ]
    );
    assert!(matches!(&c.custom_tags[2], CustomTag::Header { name, .. } if name == "x-user"));
    t.custom_tags = vec![tag("m", TagType::Metadata(Metadata::default()))];
    assert_eq!(refused(&t).0, "custom_tags[0].metadata");
}

#[test]
fn refusals_name_the_field() {
    let mut pb = zipkin_pb("zipkin");
    pb.collector_endpoint_version = 2;
    let (field, reason) = refused(&tracing(&pb, 100.0));
    assert_eq!(field, "provider.typed_config.collector_endpoint_version");
    assert!(reason.contains("HTTP_JSON"), "{reason}");
    pb.collector_endpoint_version = 0;
    assert_eq!(
        refused(&tracing(&pb, 100.0)).0,
        "provider.typed_config.collector_endpoint_version"
    );
    let mut pb = otel_pb("otel");
    pb.grpc_service = Some(GrpcService::default());
    let (field, reason) = refused(&tracing(&pb, 100.0));
    assert_eq!(field, "provider.typed_config.grpc_service");
    assert!(
        reason.contains("not supported by mast-proxy yet"),
        "{reason}"
    );
    let mut t = tracing(&zipkin_pb("zipkin"), 100.0);
    t.operation = "op".into();
    assert_eq!(refused(&t).0, "operation");
    assert_eq!(
        refused(&tracing(&zipkin_pb("zipkin"), 101.0)).0,
        "random_sampling"
    );
    let mut t = tracing(&zipkin_pb("zipkin"), 100.0);
    t.provider.as_mut().unwrap().config_type = Some(ConfigType::TypedConfig(Any {
        type_url: "type.googleapis.com/envoy.config.trace.v3.DatadogConfig".into(),
        value: vec![],
    }));
    assert_eq!(refused(&t).0, "provider.typed_config");
}

#[test]
fn hcm_refusal_is_under_tracing() {
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        HttpConnectionManager, HttpFilter, http_connection_manager::RouteSpecifier,
    };
    let mut pb = zipkin_pb("zipkin");
    pb.collector_endpoint_version = 3;
    let hcm = HttpConnectionManager {
        stat_prefix: "p".into(),
        route_specifier: Some(RouteSpecifier::Rds(Default::default())),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".into(),
            ..Default::default()
        }],
        tracing: Some(tracing(&pb, 100.0)),
        ..Default::default()
    };
    let (field, _) = crate::hcm::HcmConfig::from_proto(&hcm).expect_err("refused");
    assert_eq!(
        field,
        "tracing.provider.typed_config.collector_endpoint_version"
    );
    let ok = HttpConnectionManager {
        tracing: Some(tracing(&zipkin_pb("zipkin"), 100.0)),
        ..hcm
    };
    assert!(
        crate::hcm::HcmConfig::from_proto(&ok)
            .unwrap()
            .tracing
            .is_some()
    );
}
