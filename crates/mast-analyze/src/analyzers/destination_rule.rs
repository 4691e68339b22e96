//! DestinationRule checks: IST0128/IST0129 NoServerCertificateVerification (Istio's
//! `destinationrule/ca-certificates.go`), IST0174 UnknownDestinationRuleHost and IST0173
//! DestinationRuleSubsetNotSelectPods (Istio's `destinationrule/subset.go`).
//!
//! Departures from Istio, all towards fewer wrong answers: a wildcard host is known when it
//! covers some service (Istio looks only for a ServiceEntry wildcard covering it); a
//! subset's labels are merged with the Kubernetes Service's selector and matched in the
//! Service's namespace (Istio merges only a ServiceEntry's workload selector and matches
//! pods anywhere); a ServiceEntry's subsets are matched against its inline endpoints, or
//! the workloads and WorkloadEntries its selector picks; a Service without a selector is
//! not judged; and the topology labels Istio takes from the node (`topology.*`,
//! `kubernetes.io/hostname`) are not required, since a folder of YAML has no nodes.

use std::collections::BTreeMap;

use mast_config::Resource;
use mast_config::networking::destination_rule::{ClientTlsSettings, DestinationRule, TlsMode};

use crate::context::{ServiceInfo, resolve, selects};
use crate::messages::{
    DESTINATION_RULE_SUBSET_NOT_SELECT_PODS, NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
    NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL, UNKNOWN_DESTINATION_RULE_HOST,
};
use crate::{Analyzer, Context, Message};

/// The analyzers of this module, in the order they run.
pub(crate) fn analyzers() -> Vec<Box<dyn Analyzer>> {
    vec![
        Box::new(CaCertificateAnalyzer),
        Box::new(PodNotSelectedAnalyzer),
    ]
}

fn destination_rules<'a>(
    ctx: &Context<'a>,
) -> impl Iterator<Item = (&'a Resource, &'a DestinationRule)> + 'a {
    ctx.of_kind("DestinationRule")
        .filter_map(|r| r.as_destination_rule().map(|d| (r, d)))
}

/// Warns about SIMPLE or MUTUAL client TLS that does not verify the server certificate.
pub struct CaCertificateAnalyzer;

/// The TLS mode when `tls` originates TLS without a CA to check the server against: no
/// `caCertificates`, and no `credentialName` on a rule with a workload selector (the
/// only case where Istio loads the CA from the credential).
fn unverified(tls: Option<&ClientTlsSettings>, dr: &DestinationRule) -> Option<TlsMode> {
    let tls = tls?;
    let mode = tls.mode();
    if !matches!(mode, TlsMode::Simple | TlsMode::Mutual) {
        return None;
    }
    let has_ca = tls
        .ca_certificates
        .as_deref()
        .is_some_and(|c| !c.is_empty());
    let has_credential = tls
        .credential_name
        .as_deref()
        .is_some_and(|c| !c.is_empty())
        && dr.workload_selector.is_some();
    (!has_ca && !has_credential).then_some(mode)
}

impl Analyzer for CaCertificateAnalyzer {
    fn name(&self) -> &'static str {
        "destinationrule.CaCertificateAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        for (r, dr) in destination_rules(ctx) {
            let Some(policy) = &dr.traffic_policy else {
                continue;
            };
            let name = format!("{}/{}", r.namespace(), r.name());
            let head = |mode: TlsMode| {
                format!(
                    "DestinationRule {name} in namespace {} has TLS mode set to {}",
                    r.namespace(),
                    mode.as_str()
                )
            };
            if let Some(mode) = unverified(policy.tls.as_ref(), dr) {
                let text = format!(
                    "{} but no caCertificates are set to validate server identity for host: {}",
                    head(mode),
                    dr.host
                );
                out.push(Message::new(
                    NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
                    r,
                    "spec.trafficPolicy.tls.mode",
                    text,
                ));
            }
            for (i, p) in policy.port_level_settings.iter().enumerate() {
                let Some(mode) = unverified(p.tls.as_ref(), dr) else {
                    continue;
                };
                // Istio prints the PortSelector message in protobuf text form.
                let port = p
                    .port
                    .as_ref()
                    .and_then(|s| s.number)
                    .map(|n| format!("number:{n}"))
                    .unwrap_or_default();
                let text = format!(
                    "{} but no caCertificates are set to validate server identity for host: {} at port {port}",
                    head(mode),
                    dr.host
                );
                let field = format!("spec.trafficPolicy.portLevelSettings[{i}].tls.mode");
                out.push(Message::new(
                    NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL,
                    r,
                    &field,
                    text,
                ));
            }
        }
    }
}

/// Reports DestinationRules whose host is no known service, and subsets that select no
/// workload of the host.
pub struct PodNotSelectedAnalyzer;

impl Analyzer for PodNotSelectedAnalyzer {
    fn name(&self) -> &'static str {
        "destinationrule.SubsetSelectPodAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        for (r, dr) in destination_rules(ctx) {
            let host = resolve(&dr.host, r.namespace());
            let services: Vec<&ServiceInfo<'_>> =
                ctx.services_matching(&host, r.namespace()).collect();
            if services.is_empty() {
                let text = format!(
                    "The host {} defined in the DestinationRule does not match any services in the mesh.",
                    dr.host
                );
                out.push(Message::new(
                    UNKNOWN_DESTINATION_RULE_HOST,
                    r,
                    "spec.host",
                    text,
                ));
                continue;
            }
            for (i, subset) in dr.subsets.iter().enumerate() {
                if services
                    .iter()
                    .any(|s| subset_selects(ctx, s, &subset.labels))
                {
                    continue;
                }
                let text = format!(
                    "The Subset {} defined in the DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream).",
                    subset.name
                );
                out.push(Message::new(
                    DESTINATION_RULE_SUBSET_NOT_SELECT_PODS,
                    r,
                    &format!("spec.subsets[{i}]"),
                    text,
                ));
            }
        }
    }
}

/// Labels the registry adds to endpoints from their node or cluster; a folder of YAML
/// cannot show them, so subsets may require them without being reported.
const TOPOLOGY_LABELS: &[&str] = &[
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
    "topology.istio.io/network",
    "topology.istio.io/cluster",
    "kubernetes.io/hostname",
];

/// `base` with `extra` laid over it (Kubernetes' `labels.Merge`), without topology labels.
fn merged(
    base: &BTreeMap<String, String>,
    extra: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = base.clone();
    out.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    out.retain(|k, _| !TOPOLOGY_LABELS.contains(&k.as_str()));
    out
}

/// Whether a subset with `labels` selects some endpoint of `svc` (true when that cannot
/// be known: a Service without selector).
fn subset_selects(
    ctx: &Context<'_>,
    svc: &ServiceInfo<'_>,
    labels: &BTreeMap<String, String>,
) -> bool {
    let ns = svc.namespace;
    if let Some(spec) = svc.resource.as_service().and_then(|s| s.spec.as_ref()) {
        let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else {
            return true;
        };
        let want = merged(selector, labels);
        return ctx.workloads_selected(ns, &want).next().is_some();
    }
    let Some(se) = svc.resource.as_service_entry() else {
        return true;
    };
    if let Some(ws) = &se.workload_selector {
        let want = merged(&ws.labels, labels);
        let entries = ctx.of_kind("WorkloadEntry").filter(|r| r.namespace() == ns);
        return ctx.workloads_selected(ns, &want).next().is_some()
            || entries
                .filter_map(Resource::as_workload_entry)
                .any(|we| selects(&want, &we.labels));
    }
    let want = merged(&BTreeMap::new(), labels);
    want.is_empty() || se.endpoints.iter().any(|e| selects(&want, &e.labels))
}

#[cfg(test)]
mod tests {
    use crate::testing::{only, run};

    fn dr(host: &str, spec: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: db\n  namespace: shop\nspec:\n  host: {host}\n{spec}---\n"
        )
    }

    const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: db\n  namespace: shop\nspec:\n  selector: {app: db}\n  ports: [{name: tcp, port: 5432}]\n---\n";
    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: db-1\n  namespace: shop\n  labels: {app: db, version: v1}\nspec:\n  containers: [{name: db, image: x}]\n---\n";

    #[test]
    fn simple_tls_without_ca() {
        let yaml = format!(
            "{SVC}{POD}{}",
            dr("db", "  trafficPolicy:\n    tls:\n      mode: SIMPLE\n")
        );
        let msgs = run(&yaml);
        let found = only(&msgs, "IST0128");
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].to_string(),
            "Warning [IST0128] (DestinationRule shop/db t.yaml:28) DestinationRule shop/db in namespace shop has TLS mode set to SIMPLE but no caCertificates are set to validate server identity for host: db"
        );
    }

    #[test]
    fn verified_tls_is_clean() {
        let specs = [
            "  trafficPolicy:\n    tls: {mode: SIMPLE, caCertificates: /etc/ca.pem}\n",
            "  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL}\n",
            "  workloadSelector:\n    matchLabels: {app: client}\n  trafficPolicy:\n    tls: {mode: MUTUAL, credentialName: db-cert}\n",
        ];
        for spec in specs {
            let msgs = run(&format!("{SVC}{POD}{}", dr("db", spec)));
            assert!(only(&msgs, "IST0128").is_empty(), "{spec}: {msgs:?}");
        }
        // A credential is only used for the CA on a rule with a workload selector.
        let msgs = run(&format!(
            "{SVC}{POD}{}",
            dr(
                "db",
                "  trafficPolicy:\n    tls: {mode: SIMPLE, credentialName: c}\n"
            )
        ));
        assert_eq!(only(&msgs, "IST0128").len(), 1);
    }

    #[test]
    fn port_level_tls_without_ca() {
        let spec = "  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 443}\n      tls: {mode: SIMPLE, caCertificates: /ca.pem}\n    - port: {number: 8443}\n      tls:\n        mode: MUTUAL\n";
        let msgs = run(&format!("{SVC}{POD}{}", dr("db", spec)));
        let found = only(&msgs, "IST0129");
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].text,
            "DestinationRule shop/db in namespace shop has TLS mode set to MUTUAL but no caCertificates are set to validate server identity for host: db at port number:8443"
        );
        assert_eq!(found[0].reference.as_ref().map(|o| o.line), Some(32));
        assert!(only(&msgs, "IST0128").is_empty());
    }

    #[test]
    fn unknown_host() {
        let msgs = run(&format!("{SVC}{}", dr("fake.shop.svc.cluster.local", "")));
        let found = only(&msgs, "IST0174");
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].text,
            "The host fake.shop.svc.cluster.local defined in the DestinationRule does not match any services in the mesh."
        );
        assert_eq!(found[0].reference.as_ref().map(|o| o.line), Some(16));
        // A Service in another namespace is a different host.
        assert_eq!(
            only(
                &run(&format!(
                    "{}{}",
                    SVC.replace("namespace: shop", "namespace: x"),
                    dr("db", "")
                )),
                "IST0174"
            )
            .len(),
            1
        );
    }

    #[test]
    fn known_hosts_are_clean() {
        let se = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: ext\n  namespace: other\nspec:\n  hosts: [\"*.example.com\"]\n  ports: [{number: 443, name: https, protocol: HTTPS}]\n  resolution: NONE\n---\n";
        for (extra, host) in [
            (SVC, "db"),
            (SVC, "db.shop.svc.cluster.local"),
            (SVC, "\"*.shop.svc.cluster.local\""),
            (se, "api.example.com"),
        ] {
            let msgs = run(&format!("{extra}{}", dr(host, "")));
            assert!(only(&msgs, "IST0174").is_empty(), "{host}: {msgs:?}");
        }
    }

    #[test]
    fn subset_without_pods() {
        let subsets = "  subsets:\n  - name: v1\n    labels: {version: v1}\n  - name: v3\n    labels: {version: v3}\n";
        let msgs = run(&format!("{SVC}{POD}{}", dr("db", subsets)));
        let found = only(&msgs, "IST0173");
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].text,
            "The Subset v3 defined in the DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream)."
        );
        assert_eq!(found[0].reference.as_ref().map(|o| o.line), Some(29));
    }

    #[test]
    fn subset_labels_merge_with_the_service_selector() {
        // A pod labelled version: v1 that the Service does not select is no endpoint.
        let stray = POD.replace("app: db", "app: cache");
        let subsets = "  subsets:\n  - name: v1\n    labels: {version: v1}\n";
        assert_eq!(
            only(
                &run(&format!("{SVC}{stray}{}", dr("db", subsets))),
                "IST0173"
            )
            .len(),
            1
        );
        let topology = "  subsets:\n  - name: west\n    labels: {version: v1, topology.kubernetes.io/region: us-west}\n";
        assert!(
            only(
                &run(&format!("{SVC}{POD}{}", dr("db", topology))),
                "IST0173"
            )
            .is_empty()
        );
    }

    #[test]
    fn service_entry_subsets_use_endpoints() {
        let se = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: ext\n  namespace: shop\nspec:\n  hosts: [db.example.com]\n  addresses: [10.0.0.9]\n  ports: [{number: 5432, name: tcp, protocol: TCP}]\n  resolution: STATIC\n  endpoints:\n  - {address: 10.0.0.1, labels: {version: v1}}\n---\n";
        let subsets = "  subsets:\n  - name: v1\n    labels: {version: v1}\n  - name: v2\n    labels: {version: v2}\n";
        let msgs = run(&format!("{se}{}", dr("db.example.com", subsets)));
        let found = only(&msgs, "IST0173");
        assert_eq!(found.len(), 1);
        assert!(
            found[0].text.starts_with("The Subset v2 "),
            "{}",
            found[0].text
        );
    }
}
