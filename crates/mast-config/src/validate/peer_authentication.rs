//! Validation of `PeerAuthentication`, following Istio's `ValidatePeerAuthentication`
//! (`pkg/config/validation`) and the CEL rules of its CRD: port-level mTLS needs a
//! workload selector and port-number keys.

use super::Report;
use super::authorization_policy::shared;
use super::common;
use crate::resource::Resource;
use crate::security::PeerAuthentication;
use crate::security::peer_authentication::MtlsMode;

/// Checks a `PeerAuthentication`; `res` gives its name, namespace and API version.
pub(crate) fn validate(spec: &PeerAuthentication, res: &Resource, r: &mut Report) {
    shared::dry_run_annotation(r, res, None);
    shared::workload_selector(r, spec.selector.as_ref());
    let Some(ports) = &spec.port_level_mtls else {
        return;
    };
    if ports.is_empty() {
        r.error(
            "spec.portLevelMtls",
            "port level mTLS, if defined, must have at least one element",
        );
        return;
    }
    if spec
        .selector
        .as_ref()
        .is_none_or(|s| s.match_labels.is_empty())
    {
        r.error(
            "spec.portLevelMtls",
            "portLevelMtls requires selector: mesh/namespace peer authentication cannot have port level mTLS",
        );
    }
    for (port, mtls) in ports {
        let f = format!("spec.portLevelMtls.{port}");
        match port.parse::<i64>() {
            Ok(n) if port.bytes().all(|b| b.is_ascii_digit()) => common::port(r, &f, n),
            _ => r.error(
                &f,
                format!("port {port:?} must be a port number in 1..65535"),
            ),
        }
        if mtls.mode() == MtlsMode::Unset {
            r.warn(
                format!("{f}.mode"),
                "mode is UNSET: the port inherits the workload's mode, so this entry has no effect",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::validate::{check, error_fields, load_error};

    fn pa(version: &str, spec: &str) -> String {
        let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
        format!(
            "apiVersion: security.istio.io/{version}\nkind: PeerAuthentication\nmetadata:\n  name: p\n  namespace: foo\nspec:\n{spec}"
        )
    }

    /// One invalid spec, the only error field it must give and a piece of its message.
    const CASES: &[(&str, &str, &str)] = &[
        (
            "mtls: {mode: STRICT}\nportLevelMtls:\n  8080: {mode: DISABLE}",
            "spec.portLevelMtls",
            "portLevelMtls requires selector",
        ),
        (
            "selector: {matchLabels: {}}\nportLevelMtls:\n  8080: {mode: DISABLE}",
            "spec.portLevelMtls",
            "portLevelMtls requires selector",
        ),
        (
            "selector: {matchLabels: {app: a}}\nportLevelMtls: {}",
            "spec.portLevelMtls",
            "at least one element",
        ),
        (
            "selector: {matchLabels: {app: a}}\nportLevelMtls:\n  0: {mode: DISABLE}",
            "spec.portLevelMtls.0",
            "1..65535",
        ),
        (
            "selector: {matchLabels: {app: a}}\nportLevelMtls:\n  70000: {mode: DISABLE}",
            "spec.portLevelMtls.70000",
            "1..65535",
        ),
        (
            "selector: {matchLabels: {app: a}}\nportLevelMtls:\n  http: {mode: DISABLE}",
            "spec.portLevelMtls.http",
            "must be a port number",
        ),
        (
            "selector: {matchLabels: {app: 'v*'}}",
            "spec.selector.matchLabels.app",
            "wildcard is not supported",
        ),
        (
            "selector: {matchLabels: {'bad key': a}}",
            "spec.selector.matchLabels.bad key",
            "invalid label key",
        ),
    ];

    #[test]
    fn invalid_table() {
        for (spec, field, msg) in CASES {
            let rep = check(&pa("v1", spec));
            assert_eq!(
                error_fields(&rep),
                [*field],
                "case {spec}: {:?}",
                rep.errors
            );
            assert!(
                rep.errors[0].message.contains(msg),
                "case {spec}: {}",
                rep.errors[0].message
            );
        }
    }

    #[test]
    fn dry_run_annotation_is_rejected() {
        let y = pa("v1", "mtls: {mode: STRICT}").replace(
            "  namespace: foo\n",
            "  namespace: foo\n  annotations: {istio.io/dry-run: 'true'}\n",
        );
        let rep = check(&y);
        assert_eq!(
            error_fields(&rep),
            ["metadata.annotations.istio.io/dry-run"]
        );
    }

    #[test]
    fn warnings() {
        let rep = check(&pa("v1", "selector: {}"));
        assert!(rep.is_valid());
        assert_eq!(rep.warnings[0].field, "spec.selector");
        let rep = check(&pa(
            "v1",
            "selector: {matchLabels: {app: a}}\nportLevelMtls:\n  8080: {}",
        ));
        assert!(rep.is_valid());
        assert_eq!(rep.warnings[0].field, "spec.portLevelMtls.8080.mode");
    }

    #[test]
    fn load_failures() {
        let d = load_error(&pa("v1", "mtls: {mdoe: STRICT}"));
        assert_eq!(d.field.as_deref(), Some("spec.mtls.mdoe"));
        assert!(d.message.contains("did you mean \"mode\""), "{}", d.message);
        let d = load_error(&pa("v1", "mtls: STRICT"));
        assert_eq!(d.field.as_deref(), Some("spec.mtls"));
        let d = load_error(&pa("v1beta1", "mtls: {mode: STRICTEST}"));
        assert_eq!(d.field.as_deref(), Some("spec.mtls.mode"));
        assert!(d.message.contains("PERMISSIVE"), "{}", d.message);
        let d = load_error(&pa(
            "v1",
            "selector: {matchLabels: {app: a}}\nportLevelMtls:\n  8080: {mode: OFF}",
        ));
        assert_eq!(d.field.as_deref(), Some("spec.portLevelMtls.8080.mode"));
    }

    fn round_trip(yaml: &str) {
        let rep = check(yaml);
        assert!(rep.is_valid(), "{:?}", rep.errors);
        assert!(rep.warnings.is_empty(), "{:?}", rep.warnings);
        let out = crate::load::load_str(yaml, "t.yaml", &crate::load::LoadOptions::default());
        let crate::resource::Body::PeerAuthentication(spec) = &out.resources[0].body else {
            panic!("not a PeerAuthentication")
        };
        let input = crate::yaml::parse_documents(yaml)[0]
            .as_ref()
            .unwrap()
            .value["spec"]
            .clone();
        assert_eq!(serde_json::to_value(spec).unwrap(), input);
    }

    #[test]
    fn round_trips() {
        for v in ["v1beta1", "v1"] {
            let mesh = format!(
                "apiVersion: security.istio.io/{v}\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: istio-system\nspec:\n  mtls:\n    mode: STRICT\n"
            );
            round_trip(&mesh);
            let workload = pa(
                v,
                "selector:\n  matchLabels:\n    app: finance\nmtls:\n  mode: STRICT\nportLevelMtls:\n  8080:\n    mode: DISABLE\n  9090:\n    mode: PERMISSIVE",
            );
            round_trip(&workload);
        }
    }
}
