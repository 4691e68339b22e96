//! Request matching: Istio's `HTTPMatchRequest` as an Envoy `RouteMatch` (`TranslateRouteMatch`),
//! and the selectors that decide whether a match block applies to this proxy and listener port
//! at all (`port`, `sourceLabels`, `sourceNamespace`, `gateways`), which Istio evaluates when it
//! generates configuration, not per request.

use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::query_parameter_matcher::QueryParameterMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, QueryParameterMatcher, RouteMatch};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher};
use envoy_types::pb::google::protobuf::BoolValue;
use mast_config::networking::virtual_service::HttpMatchRequest;
use mast_config::types::StringMatch;
use mast_model::ProxyNode;

/// The gateway name that means "every sidecar".
pub const MESH_GATEWAY: &str = "mesh";

/// Header names that carry JWT claims; only gateways with a JWT filter can match them.
const CLAIMS_PREFIX: &str = "@request.auth.claims";

/// Whether a match block applies to `proxy` on `listen_port`: its `port` (when set) is the
/// listener port, and its `gateways` include `mesh`, or (without gateways) the proxy carries
/// every `sourceLabels` entry and sits in `sourceNamespace` (when set).
#[cfg(test)]
pub fn applies_to(m: &HttpMatchRequest, listen_port: u16, proxy: &ProxyNode) -> bool {
    applies_to_gateways(m, listen_port, proxy, &[MESH_GATEWAY.to_owned()], "")
}

/// [`applies_to`] for a proxy serving `gateways` (`mesh` for sidecars, `ns/name` for a
/// gateway's server): a match's `gateways` are written relative to `vs_namespace` (the
/// VirtualService's), as Istio resolves them.
pub fn applies_to_gateways(
    m: &HttpMatchRequest,
    listen_port: u16,
    proxy: &ProxyNode,
    gateways: &[String],
    vs_namespace: &str,
) -> bool {
    if let Some(port) = m.port.filter(|p| *p != 0)
        && port != i64::from(listen_port)
    {
        return false;
    }
    if !m.gateways.is_empty() {
        return m.gateways.iter().any(|g| {
            let g = mast_model::MeshSnapshot::qualify_gateway(vs_namespace, g);
            gateways.contains(&g)
        });
    }
    let labels_match = m
        .source_labels
        .iter()
        .all(|(k, v)| proxy.labels.get(k) == Some(v));
    labels_match && (m.source_namespace.is_empty() || m.source_namespace == proxy.namespace)
}

/// An Envoy string matcher for an Istio `StringMatch`; `None` for the empty match `{}`.
/// Regexes are RE2 full matches (`safe_regex`, Envoy's default RE2 engine).
pub fn string_matcher(m: &StringMatch) -> Option<StringMatcher> {
    let pattern = match m {
        StringMatch::Exact(s) => MatchPattern::Exact(s.clone()),
        StringMatch::Prefix(s) => MatchPattern::Prefix(s.clone()),
        StringMatch::Regex(r) => MatchPattern::SafeRegex(regex(r.as_str())),
        StringMatch::Any => return None,
    };
    Some(StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    })
}

/// A `RegexMatcher` with Envoy's default engine (RE2).
pub fn regex(pattern: &str) -> RegexMatcher {
    RegexMatcher {
        regex: pattern.to_owned(),
        engine_type: None,
    }
}

/// A header matcher: the empty match means "present".
fn header_matcher(name: &str, m: &StringMatch) -> HeaderMatcher {
    let spec = match string_matcher(m) {
        Some(sm) => HeaderMatchSpecifier::StringMatch(sm),
        None => HeaderMatchSpecifier::PresentMatch(true),
    };
    HeaderMatcher {
        name: name.to_owned(),
        header_match_specifier: Some(spec),
        ..Default::default()
    }
}

/// A `withoutHeaders` entry: the inverted header match; a missing header counts as empty
/// unless the condition is "present" (Envoy forbids both together).
fn without_header_matcher(name: &str, m: &StringMatch) -> HeaderMatcher {
    let mut out = header_matcher(name, m);
    out.invert_match = true;
    out.treat_missing_header_as_empty = !matches!(m, StringMatch::Any);
    out
}

fn query_matcher(name: &str, m: &StringMatch) -> QueryParameterMatcher {
    let spec = match string_matcher(m) {
        Some(sm) => QueryParameterMatchSpecifier::StringMatch(sm),
        None => QueryParameterMatchSpecifier::PresentMatch(true),
    };
    QueryParameterMatcher {
        name: name.to_owned(),
        query_parameter_match_specifier: Some(spec),
    }
}

/// The catch-all match: every path.
pub fn match_all() -> RouteMatch {
    RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix("/".into())),
        ..Default::default()
    }
}

/// Translates a match block as Istio's `TranslateRouteMatch` does: headers and
/// `withoutHeaders` sorted by name, then `:method`, `:authority` and `:scheme`; the URI as
/// path / prefix / safe_regex with `case_sensitive = !ignoreUriCase`; query parameters.
///
/// `None` when the block can never match on a sidecar: it requires JWT claims
/// (`@request.auth.claims.*` headers), which only gateways validate.
pub fn route_match(m: Option<&HttpMatchRequest>) -> Option<RouteMatch> {
    let Some(m) = m else { return Some(match_all()) };
    let mut out = match_all();
    if m.headers.keys().any(|k| k.starts_with(CLAIMS_PREFIX)) {
        tracing::warn!(match_name = %m.name, "JWT claim matches only apply on gateways; route left out of the sidecar");
        return None;
    }
    let mut headers: Vec<HeaderMatcher> = m
        .headers
        .iter()
        .map(|(k, v)| header_matcher(k, v))
        .collect();
    headers.extend(
        m.without_headers
            .iter()
            .filter(|(k, _)| !k.starts_with(CLAIMS_PREFIX))
            .map(|(k, v)| without_header_matcher(k, v)),
    );
    headers.sort_by(|a, b| a.name.cmp(&b.name));
    out.headers = headers;
    match &m.uri {
        Some(StringMatch::Exact(p)) => out.path_specifier = Some(PathSpecifier::Path(p.clone())),
        Some(StringMatch::Prefix(p)) => out.path_specifier = Some(PathSpecifier::Prefix(p.clone())),
        Some(StringMatch::Regex(r)) => {
            out.path_specifier = Some(PathSpecifier::SafeRegex(regex(r.as_str())))
        }
        Some(StringMatch::Any) | None => {}
    }
    out.case_sensitive = Some(BoolValue {
        value: m.ignore_uri_case != Some(true),
    });
    let pseudo = [
        (":method", &m.method),
        (":authority", &m.authority),
        (":scheme", &m.scheme),
    ];
    for (name, cond) in pseudo {
        if let Some(cond) = cond {
            out.headers.push(header_matcher(name, cond));
        }
    }
    out.query_parameters = m
        .query_params
        .iter()
        .map(|(k, v)| query_matcher(k, v))
        .collect();
    Some(out)
}

/// Whether a route matches every request (prefix `/` or regex `.*`, no header or query
/// condition): routes after it are unreachable.
pub fn is_catch_all(m: &RouteMatch) -> bool {
    let all_paths = match &m.path_specifier {
        Some(PathSpecifier::Prefix(p)) => p == "/",
        Some(PathSpecifier::SafeRegex(r)) => r.regex == ".*",
        _ => false,
    };
    all_paths
        && m.headers.is_empty()
        && m.query_parameters.is_empty()
        && m.dynamic_metadata.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> HttpMatchRequest {
        serde_json::from_value(v).unwrap()
    }

    fn proxy(labels: serde_json::Value) -> ProxyNode {
        let md = json!({"NAMESPACE": "default", "LABELS": labels});
        ProxyNode::parse(
            "sidecar~10.0.0.1~client.default~default.svc.cluster.local",
            &md,
        )
        .unwrap()
    }

    #[test]
    fn selectors() {
        let p = proxy(json!({"app": "client"}));
        assert!(applies_to(&parse(json!({"port": 80})), 80, &p));
        assert!(!applies_to(&parse(json!({"port": 8080})), 80, &p));
        assert!(applies_to(
            &parse(json!({"sourceLabels": {"app": "client"}})),
            80,
            &p
        ));
        assert!(!applies_to(
            &parse(json!({"sourceLabels": {"app": "other"}})),
            80,
            &p
        ));
        assert!(!applies_to(
            &parse(json!({"sourceNamespace": "prod"})),
            80,
            &p
        ));
        assert!(applies_to(&parse(json!({"gateways": ["mesh"]})), 80, &p));
        assert!(!applies_to(
            &parse(json!({"gateways": ["istio-system/gw"]})),
            80,
            &p
        ));
    }

    #[test]
    fn catch_all() {
        assert!(is_catch_all(&route_match(None).unwrap()));
        assert!(!is_catch_all(
            &route_match(Some(&parse(json!({"uri": {"prefix": "/a"}})))).unwrap()
        ));
        assert!(
            route_match(Some(&parse(
                json!({"headers": {"@request.auth.claims.sub": {"exact": "x"}}})
            )))
            .is_none()
        );
    }
}
