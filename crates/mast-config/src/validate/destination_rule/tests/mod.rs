//! Tests of `DestinationRule` validation: one invalid case per rule (exact field path and
//! message) here and in [`balancing`], the warnings, load-time failures and round trips of
//! realistic resources in every served API version in [`round_trip`].

mod balancing;
mod round_trip;

use crate::validate::{Report, check, error_fields};

/// A `DestinationRule` in namespace `default` whose spec is `host: reviews` plus `body`.
fn dr(body: &str) -> String {
    dr_spec(&format!("host: reviews\n{body}"))
}

/// A `DestinationRule` in namespace `default` with exactly `spec`.
fn dr_spec(spec: &str) -> String {
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: test\n  namespace: default\nspec:\n{spec}"
    )
}

fn assert_error(report: &Report, field: &str, message: &str, case: &str) {
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.field == field && e.message.contains(message)),
        "case {case}: expected error at {field} containing {message:?}, got {:?}",
        report.errors
    );
}

const TP: &str = "spec.trafficPolicy";
const LB: &str = "spec.trafficPolicy.loadBalancer";
const CH: &str = "spec.trafficPolicy.loadBalancer.consistentHash";
const LOC: &str = "spec.trafficPolicy.loadBalancer.localityLbSetting";
const OD: &str = "spec.trafficPolicy.outlierDetection";
const CP: &str = "spec.trafficPolicy.connectionPool";
const TLS: &str = "spec.trafficPolicy.tls";

/// Asserts that each `(body, field, message)` case gives an error at `field` whose message
/// contains `message`.
fn assert_cases(cases: &[(&str, &str, &str)]) {
    for (body, field, message) in cases {
        assert_error(&check(&dr(body)), field, message, body);
    }
}

#[test]
fn invalid_host() {
    assert_error(
        &check(&dr_spec("host: \"\"")),
        "spec.host",
        "host is required",
        "empty host",
    );
    assert_error(
        &check(&dr_spec("host: bad_host!")),
        "spec.host",
        "invalid host",
        "bad host",
    );
    assert_error(
        &check(&dr_spec("host: \"foo.*.com\"")),
        "spec.host",
        "invalid host",
        "wildcard not first",
    );
    // Istio accepts a partial wildcard as the first label, with a warning.
    let report = check(&dr_spec("host: \"*foo.com\""));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.field == "spec.host" && w.message.contains("partial wildcard"))
    );
}

#[test]
fn invalid_subsets_and_policies() {
    assert_cases(&[
        // Subsets.
        (
            "subsets: [{name: \"\", labels: {version: v1}}]",
            "spec.subsets[0].name",
            "subset name cannot be empty",
        ),
        (
            "subsets: [{name: v1.0}]",
            "spec.subsets[0].name",
            "subset name is invalid",
        ),
        (
            "subsets: [{name: v1}, {name: v1}]",
            "spec.subsets[1].name",
            "duplicate subset names: v1",
        ),
        (
            "subsets: [{name: v1, labels: {\"bad key\": v1}}]",
            "spec.subsets[0].labels.bad key",
            "invalid label key",
        ),
        (
            "subsets: [{name: v1, labels: {version: \"-v1\"}}]",
            "spec.subsets[0].labels.version",
            "invalid label value",
        ),
        (
            "subsets: [{name: v1, trafficPolicy: {outlierDetection: {maxEjectionPercent: 101}}}]",
            "spec.subsets[0].trafficPolicy.outlierDetection.maxEjectionPercent",
            "percentage 101 is not in range 0..100",
        ),
        (
            "subsets: [{name: v1, trafficPolicy: {}}]",
            "spec.subsets[0].trafficPolicy",
            "traffic policy must have at least one field",
        ),
        // Traffic policy.
        (
            "trafficPolicy: {}",
            TP,
            "traffic policy must have at least one field",
        ),
        (
            "trafficPolicy: {tunnel: {targetHost: a.com, targetPort: 80}, proxyProtocol: {version: V2}}",
            TP,
            "tunnel and proxyProtocol must not be set together",
        ),
        (
            "trafficPolicy: {tunnel: {protocol: GET, targetHost: a.com, targetPort: 80}}",
            "spec.trafficPolicy.tunnel.protocol",
            "tunnel protocol must be \"CONNECT\" or \"POST\"",
        ),
        (
            "trafficPolicy: {tunnel: {targetHost: \"*.a.com\", targetPort: 80}}",
            "spec.trafficPolicy.tunnel.targetHost",
            "tunnel target host must be valid FQDN or IP address",
        ),
        (
            "trafficPolicy: {tunnel: {targetHost: 10.0.0.1, targetPort: 0}}",
            "spec.trafficPolicy.tunnel.targetPort",
            "tunnel target port is invalid",
        ),
        (
            "trafficPolicy: {retryBudget: {percent: 120.5}}",
            "spec.trafficPolicy.retryBudget.percent",
            "not in range 0..100",
        ),
        (
            "trafficPolicy: {retryBudget: {minRetryConcurrency: -1}}",
            "spec.trafficPolicy.retryBudget.minRetryConcurrency",
            "must be non-negative",
        ),
        // Port-level settings.
        (
            "trafficPolicy: {portLevelSettings: [{loadBalancer: {simple: RANDOM}}]}",
            "spec.trafficPolicy.portLevelSettings[0].port",
            "portTrafficPolicy must have valid port",
        ),
        (
            "trafficPolicy: {portLevelSettings: [{port: {number: 0}, loadBalancer: {simple: RANDOM}}]}",
            "spec.trafficPolicy.portLevelSettings[0].port.number",
            "port number 0 must be in the range 1..65535",
        ),
        (
            "trafficPolicy: {portLevelSettings: [{port: {number: 80}}]}",
            "spec.trafficPolicy.portLevelSettings[0]",
            "port traffic policy must have at least one field",
        ),
        (
            "trafficPolicy: {portLevelSettings: [{port: {number: 80}, tls: {mode: MUTUAL, privateKey: k}}]}",
            "spec.trafficPolicy.portLevelSettings[0].tls.clientCertificate",
            "client certificate required for mutual tls",
        ),
        // Outlier detection.
        (
            "trafficPolicy: {outlierDetection: {maxEjectionPercent: 150}}",
            "spec.trafficPolicy.outlierDetection.maxEjectionPercent",
            "percentage 150 is not in range 0..100",
        ),
        (
            "trafficPolicy: {outlierDetection: {minHealthPercent: -1}}",
            "spec.trafficPolicy.outlierDetection.minHealthPercent",
            "percentage -1 is not in range 0..100",
        ),
        (
            "trafficPolicy: {outlierDetection: {baseEjectionTime: 0.5ms}}",
            "spec.trafficPolicy.outlierDetection.baseEjectionTime",
            "duration must be greater than 1ms",
        ),
        (
            "trafficPolicy: {outlierDetection: {interval: 1.0005s}}",
            "spec.trafficPolicy.outlierDetection.interval",
            "only durations to ms precision are supported",
        ),
        (
            "trafficPolicy: {outlierDetection: {consecutiveLocalOriginFailures: 3}}",
            "spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures",
            "split external local origin errors is set to false",
        ),
        (
            "trafficPolicy: {outlierDetection: {consecutive5xxErrors: -1}}",
            "spec.trafficPolicy.outlierDetection.consecutive5xxErrors",
            "consecutive 5xx errors must be non-negative",
        ),
        (
            "trafficPolicy: {outlierDetection: {consecutiveGatewayErrors: 5000000000}}",
            "spec.trafficPolicy.outlierDetection.consecutiveGatewayErrors",
            "too large",
        ),
        // Connection pool.
        (
            "trafficPolicy: {connectionPool: {}}",
            CP,
            "connection pool must have at least one field",
        ),
        (
            "trafficPolicy: {connectionPool: {http: {http1MaxPendingRequests: -1}}}",
            "spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests",
            "http1 max pending requests must be non-negative",
        ),
        (
            "trafficPolicy: {connectionPool: {http: {http2MaxRequests: -5}}}",
            "spec.trafficPolicy.connectionPool.http.http2MaxRequests",
            "http2 max requests must be non-negative",
        ),
        (
            "trafficPolicy: {connectionPool: {http: {maxRequestsPerConnection: -1}}}",
            "spec.trafficPolicy.connectionPool.http.maxRequestsPerConnection",
            "max requests per connection must be non-negative",
        ),
        (
            "trafficPolicy: {connectionPool: {http: {maxRetries: -1}}}",
            "spec.trafficPolicy.connectionPool.http.maxRetries",
            "max retries must be non-negative",
        ),
        (
            "trafficPolicy: {connectionPool: {http: {maxConcurrentStreams: -1}}}",
            "spec.trafficPolicy.connectionPool.http.maxConcurrentStreams",
            "max concurrent streams must be non-negative",
        ),
        (
            "trafficPolicy: {connectionPool: {http: {idleTimeout: 0s}}}",
            "spec.trafficPolicy.connectionPool.http.idleTimeout",
            "duration must be greater than 1ms",
        ),
        (
            "trafficPolicy: {connectionPool: {http: {h2UpgradePolicy: UPGRADE, useClientProtocol: true}}}",
            "spec.trafficPolicy.connectionPool.http.useClientProtocol",
            "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
        ),
        (
            "trafficPolicy: {connectionPool: {tcp: {maxConnections: 3000000000}}}",
            "spec.trafficPolicy.connectionPool.tcp.maxConnections",
            "max connections 3000000000 is too large",
        ),
        (
            "trafficPolicy: {connectionPool: {tcp: {connectTimeout: 0s}}}",
            "spec.trafficPolicy.connectionPool.tcp.connectTimeout",
            "duration must be greater than 1ms",
        ),
        (
            "trafficPolicy: {connectionPool: {tcp: {maxConnectionDuration: 0.5ms}}}",
            "spec.trafficPolicy.connectionPool.tcp.maxConnectionDuration",
            "duration must be greater than 1ms",
        ),
        (
            "trafficPolicy: {connectionPool: {tcp: {idleTimeout: 1.0001s}}}",
            "spec.trafficPolicy.connectionPool.tcp.idleTimeout",
            "ms precision",
        ),
        (
            "trafficPolicy: {connectionPool: {tcp: {tcpKeepalive: {interval: 0.5ms}}}}",
            "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.interval",
            "duration must be greater than 1ms",
        ),
        (
            "trafficPolicy: {connectionPool: {tcp: {tcpKeepalive: {probes: -3}}}}",
            "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.probes",
            "keepalive probes must be non-negative",
        ),
    ]);
}

#[test]
fn rules_stay_on_their_field() {
    // One mistake gives exactly one error, at its own path.
    let report = check(&dr(
        "trafficPolicy: {outlierDetection: {maxEjectionPercent: 150}}",
    ));
    assert_eq!(error_fields(&report), [format!("{OD}.maxEjectionPercent")]);
    let report = check(&dr("trafficPolicy: {tls: {mode: MUTUAL}}"));
    assert_eq!(
        error_fields(&report),
        [
            format!("{TLS}.clientCertificate"),
            format!("{TLS}.privateKey")
        ]
    );
}
