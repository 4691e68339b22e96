//! Invalid and warned-about load balancing, locality, client TLS, `exportTo` and
//! workload selector settings.

use super::{CH, LB, LOC, assert_cases, dr};
use crate::validate::check;

#[test]
fn invalid_balancing_tls_and_export() {
    assert_cases(&[
        // Load balancer.
        (
            "trafficPolicy: {loadBalancer: {simple: RANDOM, consistentHash: {useSourceIp: true}}}",
            LB,
            "only one of simple or consistentHash may be set",
        ),
        (
            "trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user, useSourceIp: true}}}",
            CH,
            "only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName",
        ),
        (
            "trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, ringHash: {}, maglev: {tableSize: 65537}}}}",
            CH,
            "only one of ringHash or maglev",
        ),
        (
            "trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {ttl: 0s}}}}",
            "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name",
            "name required for HttpCookie",
        ),
        (
            "trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: u, attributes: [{value: Strict}]}}}}",
            "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.attributes[0].name",
            "name required for cookie attribute",
        ),
        (
            "trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, minimumRingSize: 1024, ringHash: {minimumRingSize: 1024}}}}",
            "spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize",
            "only one of MinimumRingSize or Maglev/Ringhash",
        ),
        (
            "trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, ringHash: {minimumRingSize: -1}}}}",
            "spec.trafficPolicy.loadBalancer.consistentHash.ringHash.minimumRingSize",
            "minimum ring size must be non-negative",
        ),
        (
            "trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, maglev: {}}}}",
            "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
            "tableSize must be set for maglev",
        ),
        (
            "trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 65536}}}}",
            "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
            "tableSize must be a prime number for maglev",
        ),
        (
            "trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 5000011}}}}",
            "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
            "tableSize must be less than 5000011",
        ),
        (
            "trafficPolicy: {loadBalancer: {warmupDurationSecs: 0s}}",
            "spec.trafficPolicy.loadBalancer.warmupDurationSecs",
            "duration must be greater than 1ms",
        ),
        (
            "trafficPolicy: {loadBalancer: {warmup: {minimumPercent: 10.5}}}",
            "spec.trafficPolicy.loadBalancer.warmup.duration",
            "duration is required",
        ),
        (
            "trafficPolicy: {loadBalancer: {warmup: {duration: 60s, minimumPercent: 120.5}}}",
            "spec.trafficPolicy.loadBalancer.warmup.minimumPercent",
            "less than or equal to 100",
        ),
        (
            "trafficPolicy: {loadBalancer: {warmup: {duration: 60s, aggression: 0.5}}}",
            "spec.trafficPolicy.loadBalancer.warmup.aggression",
            "aggression should be greater than or equal to 1",
        ),
        // Locality load balancing.
        (
            "trafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: a/*, to: {b/*: 100}}], failover: [{from: a, to: b}]}}}",
            LOC,
            "can not simultaneously specify 'distribute' and 'failover'",
        ),
        (
            "trafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: us-west/zone1/*, to: {us-west/zone1/*: 100, us-west/zone2/*: 0}}]}}}",
            "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to.us-west/zone2/*",
            "locality weight must be in range [1, 100]",
        ),
        (
            "trafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: us-west/zone1/*, to: {us-west/zone1/*: 80, us-west/zone2/*: 10}}]}}}",
            "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to",
            "total locality weight 90 != 100",
        ),
        (
            "trafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: us-west/zone1/*, to: {us-west/*: 50, us-west/zone2: 50}}]}}}",
            "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to",
            "overlap with previous specified ones",
        ),
        (
            "trafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: us-west/*, to: {a: 100}}, {from: us-west/zone1, to: {a: 100}}]}}}",
            "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute",
            "overlap with previous specified ones",
        ),
        (
            "trafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: \"us-*/zone1\", to: {a: 100}}]}}}",
            "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute",
            "wildcard '*' number can not exceed 1 and must be in the end",
        ),
        (
            "trafficPolicy: {loadBalancer: {localityLbSetting: {failover: [{from: us-east, to: us-east}]}}}",
            "spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]",
            "must specify different regions",
        ),
        (
            "trafficPolicy: {loadBalancer: {localityLbSetting: {failover: [{from: us-east/zone1, to: us-west}]}}}",
            "spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]",
            "locality lb failover only specify region",
        ),
        (
            "trafficPolicy: {loadBalancer: {localityLbSetting: {failover: [{from: us-east, to: \"*\"}]}}}",
            "spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]",
            "should not contain '*' wildcard",
        ),
        (
            "trafficPolicy: {loadBalancer: {localityLbSetting: {failover: [{from: a, to: b}], failoverPriority: [topology.kubernetes.io/zone]}}}",
            "spec.trafficPolicy.loadBalancer.localityLbSetting.failoverPriority[0]",
            "can not simultaneously set 'failover' and topology label",
        ),
        // Client TLS.
        (
            "trafficPolicy: {tls: {mode: MUTUAL, privateKey: /k.pem}}",
            "spec.trafficPolicy.tls.clientCertificate",
            "client certificate required for mutual tls",
        ),
        (
            "trafficPolicy: {tls: {mode: MUTUAL, clientCertificate: /c.pem}}",
            "spec.trafficPolicy.tls.privateKey",
            "private key required for mutual tls",
        ),
        (
            "trafficPolicy: {tls: {mode: MUTUAL, credentialName: cred, clientCertificate: /c.pem}}",
            "spec.trafficPolicy.tls.credentialName",
            "cannot specify client certificates or CA certificate or CA CRL If credentialName is set",
        ),
        (
            "trafficPolicy: {tls: {mode: SIMPLE, insecureSkipVerify: true, caCertificates: /ca.pem}}",
            "spec.trafficPolicy.tls.insecureSkipVerify",
            "cannot specify CaCertificates or CredentialName or SubjectAltNames",
        ),
        (
            "trafficPolicy: {tls: {mode: MUTUAL, credentialName: c, insecureSkipVerify: true, subjectAltNames: [a]}}",
            "spec.trafficPolicy.tls.insecureSkipVerify",
            "cannot specify CaCertificates or SubjectAltNames",
        ),
        (
            "trafficPolicy: {tls: {mode: SIMPLE, credentialName: \"configmap://other/ca\"}}",
            "spec.trafficPolicy.tls.credentialName",
            "namespace must match the configuration namespace",
        ),
        // exportTo and the workload selector.
        (
            "exportTo: [\"~\"]",
            "spec.exportTo[0]",
            "exportTo ~ (none) is not allowed",
        ),
        (
            "exportTo: [Bad_NS]",
            "spec.exportTo[0]",
            "invalid exportTo value",
        ),
        (
            "exportTo: [ns1, ns1]",
            "spec.exportTo[1]",
            "duplicate entries in exportTo",
        ),
        (
            "exportTo: [\".\", default]",
            "spec.exportTo",
            "duplicate entries in exportTo: . and current namespace default",
        ),
        (
            "exportTo: [\"*\", ns1]",
            "spec.exportTo",
            "cannot have both public (*) and non-public exportTo values",
        ),
        (
            "exportTo: [\"*\", \".\"]",
            "spec.exportTo",
            "cannot have both public (*) and private (.)",
        ),
        (
            "workloadSelector: {matchLabels: {app: ratings}}\nexportTo: [\"*\"]",
            "spec.exportTo",
            "destination rule with workload selector cannot have exportTo beyond current namespace",
        ),
        (
            "workloadSelector: {matchLabels: {app: ratings}}\nexportTo: [\".\", other]",
            "spec.exportTo",
            "destination rule with workload selector cannot have multiple entries in exportTo",
        ),
        (
            "workloadSelector: {matchLabels: {app: \"rat*\"}}",
            "spec.workloadSelector.matchLabels.app",
            "wildcard is not supported in selector",
        ),
        (
            "workloadSelector: {matchLabels: {\"\": x}}",
            "spec.workloadSelector.matchLabels.",
            "empty key is not supported in selector",
        ),
    ]);
}

#[test]
fn warnings() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "trafficPolicy: {outlierDetection: {consecutiveErrors: 5}}",
            "spec.trafficPolicy.outlierDetection.consecutiveErrors",
            "consecutive errors is deprecated",
        ),
        (
            "trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, minimumRingSize: 1024}}}",
            "spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize",
            "MinimumRingSize is deprecated",
        ),
        (
            "trafficPolicy: {loadBalancer: {localityLbSetting: {failover: [{from: us-east, to: eu-west}]}}}",
            LOC,
            "outlier detection policy must be provided for failover",
        ),
        (
            "workloadSelector: {}",
            "spec.workloadSelector",
            "workload selector specified without labels",
        ),
        (
            "trafficPolicy:\n  portLevelSettings:\n  - {port: {number: 80}, loadBalancer: {simple: RANDOM}}\n  - {port: {number: 80}, loadBalancer: {simple: LEAST_REQUEST}}",
            "spec.trafficPolicy.portLevelSettings[1].port.number",
            "port 80 already has settings in portLevelSettings[0]",
        ),
    ];
    for (body, field, message) in cases {
        let report = check(&dr(body));
        assert!(
            report.errors.is_empty(),
            "case {body}: unexpected errors {:?}",
            report.errors
        );
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.field == *field && w.message.contains(message)),
            "case {body}: expected warning at {field} containing {message:?}, got {:?}",
            report.warnings
        );
    }
}
