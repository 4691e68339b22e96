//! Conversion refusals: each unsupported or invalid input gives a `ConfigError` naming the
//! resource and the exact field path.

use serde_json::json;

use super::*;

const FAULT: &str = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault";
const CORS: &str = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy";

#[test]
fn invalid_routes_name_their_field() {
    let r0 = "virtual_hosts[0].routes[0]";
    let cases = [
        (
            json!({"match": {"safe_regex": {"regex": "/a/(["}}, "route": {"cluster": "c"}}),
            format!("{r0}.match.safe_regex.regex"),
        ),
        (
            json!({"match": {"prefix": "/", "headers": [{"name": "x", "string_match": {"safe_regex": {"regex": "("}}}]}, "route": {"cluster": "c"}}),
            format!("{r0}.match.headers[0].string_match.safe_regex.regex"),
        ),
        (
            json!({"match": {"prefix": "/", "query_parameters": [{"name": "q", "string_match": {"safe_regex": {"regex": "*"}}}]}, "route": {"cluster": "c"}}),
            format!("{r0}.match.query_parameters[0].string_match.safe_regex.regex"),
        ),
        (
            json!({"match": {"prefix": "/"}, "route": {"cluster_header": "x-cluster"}}),
            format!("{r0}.route.cluster_header"),
        ),
        (
            json!({"match": {"prefix": "/"}, "route": {"cluster_specifier_plugin": "p"}}),
            format!("{r0}.route.cluster_specifier_plugin"),
        ),
        (
            json!({"match": {"path_match_policy": {"name": "p", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}}, "route": {"cluster": "c"}}),
            format!("{r0}.match.path_match_policy"),
        ),
        (
            json!({"match": {"prefix": "/", "runtime_fraction": {"default_value": {"numerator": 1}}}, "route": {"cluster": "c"}}),
            format!("{r0}.match.runtime_fraction"),
        ),
        (
            json!({"match": {"prefix": "/"}, "route": {"cluster": "c"}, "typed_per_filter_config": {"envoy.filters.http.lua": {"@type": FAULT}}}),
            format!("{r0}.typed_per_filter_config[\"envoy.filters.http.lua\"]"),
        ),
        (
            json!({"match": {"prefix": "/"}, "route": {"cluster": "c"}, "typed_per_filter_config": {"envoy.filters.http.fault": {"@type": CORS}}}),
            format!("{r0}.typed_per_filter_config[\"envoy.filters.http.fault\"].type_url"),
        ),
        (
            json!({"match": {"prefix": "/"}, "route": {"cluster": "c"}, "request_headers_to_add": [{"header": {"key": "x", "value": "v"}, "append_action": 7}]}),
            format!("{r0}.request_headers_to_add[0].append_action"),
        ),
        (
            json!({"match": {"prefix": "/"}, "route": {"cluster": "c"}, "response_headers_to_remove": [":status"]}),
            format!("{r0}.response_headers_to_remove[0]"),
        ),
        (
            json!({"match": {"prefix": "/"}, "route": {"cluster": "c", "retry_policy": {"retry_on": "5xx,bogus"}}}),
            format!("{r0}.route.retry_policy.retry_on"),
        ),
        (
            json!({"match": {"prefix": "/"}, "route": {"cluster": "c", "retry_policy": {"retry_on": "5xx", "retry_host_predicate": [{"name": "envoy.retry_host_predicates.omit_canary_hosts"}]}}}),
            format!("{r0}.route.retry_policy.retry_host_predicate[0].name"),
        ),
        (
            json!({"match": {"prefix": "/"}, "route": {"weighted_clusters": {"clusters": [{"name": "a", "weight": 0}]}}}),
            format!("{r0}.route.weighted_clusters.clusters"),
        ),
        (
            json!({"match": {"prefix": "/"}, "route": {"cluster": "c", "hedge_policy": {}}}),
            format!("{r0}.route.hedge_policy"),
        ),
        (
            json!({"match": {"prefix": "/"}, "route": {"cluster": "c", "auto_host_rewrite": true}}),
            format!("{r0}.route.host_rewrite_specifier"),
        ),
        (
            json!({"match": {"prefix": "/"}, "route": {"cluster": "c", "prefix_rewrite": "/x", "regex_rewrite": {"pattern": {"regex": "a"}, "substitution": "b"}}}),
            format!("{r0}.route.regex_rewrite"),
        ),
        (
            json!({"match": {"prefix": "/"}, "route": {"cluster": "c", "regex_rewrite": {"pattern": {"regex": "a"}, "substitution": "\\2"}}}),
            format!("{r0}.route.regex_rewrite.substitution"),
        ),
        (
            json!({"match": {"prefix": "/"}, "route": {"cluster": "c", "hash_policy": [{"filter_state": {"key": "k"}}]}}),
            format!("{r0}.route.hash_policy[0].filter_state"),
        ),
        (
            json!({"match": {"prefix": "/"}, "route": {"cluster": "c", "request_mirror_policies": [{"cluster_header": "x"}]}}),
            format!("{r0}.route.request_mirror_policies[0].cluster_header"),
        ),
        (
            json!({"match": {"prefix": "/"}, "route": {"cluster": "c", "upgrade_configs": [{"upgrade_type": "websocket", "enabled": false}]}}),
            format!("{r0}.route.upgrade_configs[0].enabled"),
        ),
        (
            json!({"match": {"prefix": "/"}, "redirect": {"regex_rewrite": {"pattern": {"regex": "a"}, "substitution": "b"}}}),
            format!("{r0}.redirect.regex_rewrite"),
        ),
        (
            json!({"match": {"prefix": "/"}, "direct_response": {"status": 99}}),
            format!("{r0}.direct_response.status"),
        ),
        (
            json!({"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"filename": "/etc/passwd"}}}),
            format!("{r0}.direct_response.body.filename"),
        ),
        (
            json!({"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "x".repeat(4097)}}}),
            format!("{r0}.direct_response.body"),
        ),
        (json!({"match": {"prefix": "/"}}), r0.to_string()),
        (json!({"route": {"cluster": "c"}}), format!("{r0}.match")),
        (
            json!({"match": {"prefix": "/"}, "route": {"cluster": "c"}, "tracing": {}}),
            format!("{r0}.tracing"),
        ),
        (
            json!({"match": {"prefix": "/", "headers": [{"name": ":protocol", "present_match": true}]}, "route": {"cluster": "c"}}),
            format!("{r0}.match.headers[0].name"),
        ),
    ];
    for (route, field) in cases {
        let e = one_err(route.clone());
        assert_eq!(e.field, field, "{route}: {e}");
        assert_eq!((e.kind, e.name.as_str()), ("RouteConfiguration", "t"));
    }
}

#[test]
fn invalid_filter_configs_name_their_field() {
    let tpfc = "virtual_hosts[0].routes[0].typed_per_filter_config";
    let with = |filter: &str, cfg: serde_json::Value| {
        one_err(
            json!({"match": {"prefix": "/"}, "route": {"cluster": "c"}, "typed_per_filter_config": {filter: cfg}}),
        )
    };
    let f = "envoy.filters.http.fault";
    let e = with(
        f,
        json!({"@type": FAULT, "abort": {"header_abort": {}, "percentage": {"numerator": 1}}}),
    );
    assert_eq!(e.field, format!("{tpfc}[\"{f}\"].abort.header_abort"));
    let e = with(f, json!({"@type": FAULT, "abort": {"http_status": 700}}));
    assert_eq!(e.field, format!("{tpfc}[\"{f}\"].abort.http_status"));
    let e = with(f, json!({"@type": FAULT, "max_active_faults": 3}));
    assert_eq!(e.field, format!("{tpfc}[\"{f}\"].max_active_faults"));
    let e = with(f, json!({"@type": FAULT, "delay": {"header_delay": {}}}));
    assert_eq!(e.field, format!("{tpfc}[\"{f}\"].delay.header_delay"));
    let c = "envoy.filters.http.cors";
    let e = with(
        c,
        json!({"@type": CORS, "filter_enabled": {"default_value": {"numerator": 50}}}),
    );
    assert_eq!(
        e.field,
        format!("{tpfc}[\"{c}\"].filter_enabled.default_value")
    );
    let e = with(
        c,
        json!({"@type": CORS, "allow_origin_string_match": [{"safe_regex": {"regex": "("}}]}),
    );
    assert_eq!(
        e.field,
        format!("{tpfc}[\"{c}\"].allow_origin_string_match[0].safe_regex.regex")
    );
}

#[test]
fn invalid_tables_and_virtual_hosts() {
    let e = table(json!({"name": "t", "vhds": {"config_source": {"ads": {}}}})).unwrap_err();
    assert_eq!(e.field, "vhds");
    let e = table(
        json!({"name": "t", "request_headers_to_add": [{"header": {"key": "x", "value": "v"}}]}),
    )
    .unwrap_err();
    assert_eq!(e.field, "request_headers_to_add");
    let e = table(json!({"name": "t", "virtual_hosts": [{"name": "a", "domains": ["*"], "retry_policy": {}}]})).unwrap_err();
    assert_eq!(e.field, "virtual_hosts[0].retry_policy");
    let e = table(json!({"name": "t", "virtual_hosts": [
        {"name": "a", "domains": ["x", "y"]}, {"name": "b", "domains": ["z", "Y"]}
    ]}))
    .unwrap_err();
    assert_eq!(e.field, "virtual_hosts[1].domains[1]");
    assert!(e.to_string().contains("RouteConfiguration \"t\""), "{e}");
}

#[test]
fn ignored_fields_do_not_refuse() {
    // Metadata, validate_clusters, virtual_clusters (stats only) change no behaviour.
    let t = table(json!({
        "name": "t",
        "validate_clusters": false,
        "max_direct_response_body_size_bytes": 10,
        "virtual_hosts": [{
            "name": "a", "domains": ["*"],
            "virtual_clusters": [{"name": "vc", "headers": [{"name": ":path", "present_match": true}]}],
            "routes": [{
                "match": {"prefix": "/"},
                "metadata": {"filter_metadata": {"istio": {"config": "x"}}},
                "decorator": {"operation": "op"},
                "stat_prefix": "sp",
                "direct_response": {"status": 200, "body": {"inline_string": "0123456789"}}
            }]
        }]
    }))
    .unwrap();
    assert_eq!(t.name(), "t");
    assert_eq!(t.max_direct_response_body_size(), 10);
    let r = only(&t);
    assert_eq!(r.decorator.as_deref(), Some("op"));
    assert_eq!(r.stat_prefix.as_deref(), Some("sp"));
    assert_eq!(
        routes(json!([{"match": {"prefix": "/"}, "direct_response": {"status": 200}}]))
            .unwrap()
            .max_direct_response_body_size(),
        4096,
        "Envoy's default"
    );
}
