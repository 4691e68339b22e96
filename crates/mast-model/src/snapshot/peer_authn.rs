//! Mutual TLS facts translation needs: the effective `PeerAuthentication` mode of a workload's
//! port (Istio's `pilot/pkg/model/authentication.go`: `GetPeerAuthenticationsForWorkload` and
//! `ComposePeerAuthentication`), the identities (SPIFFE URIs) behind a service, and whether an
//! endpoint runs a sidecar (label `security.istio.io/tlsMode: istio`).
//!
//! Precedence: mesh level (a policy without selector in the root namespace), then namespace
//! level (without selector, in the workload's namespace), then workload level (a selector
//! matching the workload's labels, in its namespace). A level whose mode is `UNSET` (or absent)
//! inherits the level above; with no policy at all the mode is `PERMISSIVE`. `portLevelMtls`
//! is read only on a workload-level policy, keyed by the port the workload listens on; an
//! `UNSET` port entry inherits the workload's mode. When several policies compete at one level,
//! Istio keeps the oldest; a snapshot has no creation times, so the first by namespace then name
//! wins. An empty selector (`matchLabels: {}`) counts as no selector, as in Istio.

use std::collections::BTreeMap;

use mast_config::security::PeerAuthentication;
use mast_config::security::peer_authentication::{MtlsMode, MutualTls};
use mast_core::{DEFAULT_TRUST_DOMAIN, SpiffeId};

use super::{Config, MeshSnapshot, selector_matches};
use crate::service::{Endpoint, Service};

/// The label Istio's injector puts on workloads that run a sidecar.
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";

/// The value of [`TLS_MODE_LABEL`] on workloads with a sidecar.
pub const TLS_MODE_ISTIO: &str = "istio";

/// The service account of a workload that declares none.
const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// The match labels of a policy's selector; `None` when it has none (or an empty one).
fn selector(spec: &PeerAuthentication) -> Option<&BTreeMap<String, String>> {
    spec.selector
        .as_ref()
        .map(|s| &s.match_labels)
        .filter(|m| !m.is_empty())
}

/// The mode a `MutualTls` sets, `None` when it inherits.
fn set_mode(mtls: Option<&MutualTls>) -> Option<MtlsMode> {
    mtls.map(MutualTls::mode).filter(|m| *m != MtlsMode::Unset)
}

/// The first selector-less policy of `namespace`.
fn namespace_level<'a>(
    policies: &'a [Config<PeerAuthentication>],
    namespace: &str,
) -> Option<&'a Config<PeerAuthentication>> {
    policies
        .iter()
        .find(|c| c.namespace == namespace && selector(&c.spec).is_none())
}

/// See [`MeshSnapshot::mtls_mode`].
pub(super) fn mtls_mode(
    snap: &MeshSnapshot,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    port: u16,
) -> MtlsMode {
    let policies = &snap.peer_authentications;
    let mut mode = MtlsMode::Permissive;
    let mesh = namespace_level(policies, &snap.options.root_namespace);
    let ns = namespace_level(policies, namespace);
    for level in [mesh, ns].into_iter().flatten() {
        if let Some(m) = set_mode(level.spec.mtls.as_ref()) {
            mode = m;
        }
    }
    let workload = policies.iter().find(|c| {
        c.namespace == namespace && selector(&c.spec).is_some_and(|s| selector_matches(s, labels))
    });
    let Some(workload) = workload else {
        return mode;
    };
    if let Some(m) = set_mode(workload.spec.mtls.as_ref()) {
        mode = m;
    }
    let port_level = workload
        .spec
        .port_level_mtls
        .iter()
        .flatten()
        .find(|(k, _)| k.trim().parse::<u16>() == Ok(port));
    match port_level {
        Some((_, mtls)) => set_mode(Some(mtls)).unwrap_or(mode),
        None => mode,
    }
}

/// See [`MeshSnapshot::service_accounts`].
pub(super) fn service_accounts(service: &Service) -> Vec<String> {
    let mut out: Vec<String> = service
        .endpoints
        .values()
        .flatten()
        .filter_map(endpoint_identity)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The SPIFFE URI of an endpoint's workload, from its namespace and service account
/// (`default` when empty, as Kubernetes assigns it); `None` when its namespace is unknown.
fn endpoint_identity(e: &Endpoint) -> Option<String> {
    if e.namespace.is_empty() {
        return None;
    }
    let sa = if e.service_account.is_empty() {
        DEFAULT_SERVICE_ACCOUNT
    } else {
        e.service_account.as_str()
    };
    SpiffeId::new(DEFAULT_TRUST_DOMAIN, &e.namespace, sa)
        .ok()
        .map(|id| id.to_string())
}

/// See [`MeshSnapshot::endpoint_has_sidecar`].
pub(super) fn has_sidecar(endpoint: &Endpoint) -> bool {
    endpoint.labels.get(TLS_MODE_LABEL).map(String::as_str) == Some(TLS_MODE_ISTIO)
}

#[cfg(test)]
mod tests {
    use super::super::tests_build::build;
    use super::*;
    use crate::proxy::ProxyNode;
    use serde_json::json;

    fn pa(ns: &str, name: &str, spec: &str) -> String {
        format!(
            "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
             metadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n"
        )
    }

    fn proxy(ns: &str, app: &str) -> ProxyNode {
        ProxyNode::parse(
            &format!("sidecar~10.0.0.1~w.{ns}~{ns}.svc.cluster.local"),
            &json!({"NAMESPACE": ns, "LABELS": {"app": app}}),
        )
        .unwrap()
    }

    const MESH_STRICT: &str = "{mtls: {mode: STRICT}}";

    #[test]
    fn precedence_table() {
        let root = "istio-system";
        // (policies, namespace, app, port, expected)
        let cases: Vec<(Vec<String>, &str, &str, u16, MtlsMode)> = vec![
            (vec![], "default", "web", 80, MtlsMode::Permissive),
            (
                vec![pa(root, "m", MESH_STRICT)],
                "default",
                "web",
                80,
                MtlsMode::Strict,
            ),
            (
                vec![
                    pa(root, "m", MESH_STRICT),
                    pa("default", "n", "{mtls: {mode: DISABLE}}"),
                ],
                "default",
                "web",
                80,
                MtlsMode::Disable,
            ),
            // UNSET at the namespace inherits the mesh's.
            (
                vec![
                    pa(root, "m", MESH_STRICT),
                    pa("default", "n", "{mtls: {mode: UNSET}}"),
                ],
                "default",
                "web",
                80,
                MtlsMode::Strict,
            ),
            // A namespace policy elsewhere does not apply.
            (
                vec![pa("other", "n", MESH_STRICT)],
                "default",
                "web",
                80,
                MtlsMode::Permissive,
            ),
            // Workload level beats namespace level; a non-matching selector does not apply.
            (
                vec![
                    pa("default", "n", MESH_STRICT),
                    pa(
                        "default",
                        "w",
                        "{selector: {matchLabels: {app: web}}, mtls: {mode: PERMISSIVE}}",
                    ),
                ],
                "default",
                "web",
                80,
                MtlsMode::Permissive,
            ),
            (
                vec![
                    pa("default", "n", MESH_STRICT),
                    pa(
                        "default",
                        "w",
                        "{selector: {matchLabels: {app: api}}, mtls: {mode: DISABLE}}",
                    ),
                ],
                "default",
                "web",
                80,
                MtlsMode::Strict,
            ),
            // Workload UNSET inherits; portLevelMtls overrides for its port only.
            (
                vec![
                    pa(root, "m", MESH_STRICT),
                    pa(
                        "default",
                        "w",
                        "{selector: {matchLabels: {app: web}}, portLevelMtls: {\"8080\": {mode: DISABLE}}}",
                    ),
                ],
                "default",
                "web",
                8080,
                MtlsMode::Disable,
            ),
            (
                vec![
                    pa(root, "m", MESH_STRICT),
                    pa(
                        "default",
                        "w",
                        "{selector: {matchLabels: {app: web}}, portLevelMtls: {\"8080\": {mode: DISABLE}}}",
                    ),
                ],
                "default",
                "web",
                9090,
                MtlsMode::Strict,
            ),
            // An UNSET port entry inherits the workload's mode.
            (
                vec![pa(
                    "default",
                    "w",
                    "{selector: {matchLabels: {app: web}}, mtls: {mode: STRICT}, portLevelMtls: {\"8080\": {mode: UNSET}}}",
                )],
                "default",
                "web",
                8080,
                MtlsMode::Strict,
            ),
            // Two workload policies: the first by name wins.
            (
                vec![
                    pa(
                        "default",
                        "b",
                        "{selector: {matchLabels: {app: web}}, mtls: {mode: DISABLE}}",
                    ),
                    pa(
                        "default",
                        "a",
                        "{selector: {matchLabels: {app: web}}, mtls: {mode: STRICT}}",
                    ),
                ],
                "default",
                "web",
                80,
                MtlsMode::Strict,
            ),
            // A root-namespace policy with a selector is not mesh-wide.
            (
                vec![pa(
                    root,
                    "w",
                    "{selector: {matchLabels: {app: web}}, mtls: {mode: STRICT}}",
                )],
                "default",
                "web",
                80,
                MtlsMode::Permissive,
            ),
        ];
        for (i, (policies, ns, app, port, want)) in cases.into_iter().enumerate() {
            let snap = build(&policies.concat());
            let got = snap.mtls_mode(&proxy(ns, app), port);
            assert_eq!(got, want, "case {i}: {policies:?} port {port}");
        }
    }

    #[test]
    fn service_accounts_and_sidecars() {
        let snap = build(
            "
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}, {name: tcp, port: 90}]
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: default, labels: {app: web, security.istio.io/tlsMode: istio}}
spec: {serviceAccountName: web-sa, containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: default, labels: {app: web}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: c, namespace: default, labels: {app: web}}
spec: {serviceAccountName: web-sa, containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.3}
",
        );
        let web = snap.services().next().unwrap();
        assert_eq!(
            MeshSnapshot::service_accounts(web),
            [
                "spiffe://cluster.local/ns/default/sa/default",
                "spiffe://cluster.local/ns/default/sa/web-sa"
            ]
        );
        let eps = web.endpoints_for(80);
        let with: Vec<bool> = eps.iter().map(MeshSnapshot::endpoint_has_sidecar).collect();
        assert_eq!(with, [true, false, false]);
    }

    #[test]
    fn disabled_endpoints_do_not_get_mtls() {
        let yaml = |policy: &str| {
            format!(
                "
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: a, namespace: default, labels: {{app: web, security.istio.io/tlsMode: istio}}}}
spec: {{containers: [{{name: c, image: i}}]}}
status: {{podIP: 10.0.0.1}}
{policy}"
            )
        };
        let accepts = |text: &str| {
            let snap = build(text);
            let web = snap.services().next().unwrap();
            let ep = &web.endpoints_for(80)[0];
            snap.endpoint_accepts_mtls(ep)
        };
        assert!(
            accepts(&yaml("")),
            "a sidecar endpoint gets mTLS by default"
        );
        let ns_disable = pa("default", "d", "{mtls: {mode: DISABLE}}");
        assert!(!accepts(&yaml(&ns_disable)), "namespace DISABLE: plaintext");
        let port_disable = pa(
            "default",
            "p",
            "{selector: {matchLabels: {app: web}}, mtls: {mode: STRICT}, portLevelMtls: {8080: {mode: DISABLE}}}",
        );
        assert!(
            !accepts(&yaml(&port_disable)),
            "port-level DISABLE on the target port"
        );
        let strict = pa("default", "s", "{mtls: {mode: STRICT}}");
        assert!(accepts(&yaml(&strict)));
    }
}
