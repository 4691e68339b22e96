//! IST0107 MisplacedAnnotation and IST0108 UnknownAnnotation, as Istio's
//! `annotations.K8sAnalyzer`: every Istio annotation (its key's prefix ends in `istio.io`, or
//! it is `kubernetes.io/ingress.class`) on a Namespace, Service, Pod or workload must be in
//! Istio's table ([`table`]) and be allowed on that resource type.
//!
//! Istio checks the own metadata of Namespaces, Services, Pods and Deployments. Mast also
//! checks the other workload kinds (ReplicaSet, DaemonSet, StatefulSet, Job, CronJob), and
//! checks each pod template's annotations as a Pod's, since they end up on the pods.

use std::collections::BTreeMap;

use mast_config::{Body, Kind, Resource};

use crate::messages::{MISPLACED_ANNOTATION, UNKNOWN_ANNOTATION};
use crate::{Analyzer, Context, Message};

#[path = "annotations_table.rs"]
mod table;

/// Checks Istio annotations against Istio's annotation table.
pub struct AnnotationAnalyzer;

impl Analyzer for AnnotationAnalyzer {
    fn name(&self) -> &'static str {
        "annotations.K8sAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        for r in ctx.resources {
            if let Some(kind) = r.known_kind().filter(|k| checks_own_metadata(*k)) {
                check(r, kind.name(), "metadata.annotations", r.annotations(), out);
            }
        }
        for w in ctx.workloads() {
            if let Some(prefix) = template_annotations_path(w.resource) {
                check(w.resource, "Pod", prefix, w.annotations, out);
            }
        }
    }
}

/// Whether the own annotations of resources of `kind` are checked.
fn checks_own_metadata(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Namespace
            | Kind::Service
            | Kind::Pod
            | Kind::Deployment
            | Kind::ReplicaSet
            | Kind::DaemonSet
            | Kind::StatefulSet
            | Kind::Job
            | Kind::CronJob
    )
}

/// The path of a workload's pod template annotations (`None` for Pods, checked as
/// themselves).
fn template_annotations_path(r: &Resource) -> Option<&'static str> {
    match &r.body {
        Body::Deployment(_)
        | Body::ReplicaSet(_)
        | Body::DaemonSet(_)
        | Body::StatefulSet(_)
        | Body::Job(_) => Some("spec.template.metadata.annotations"),
        Body::CronJob(_) => Some("spec.jobTemplate.spec.template.metadata.annotations"),
        _ => None,
    }
}

/// Whether an annotation key is Istio's: the part before the first `/` ends in
/// `istio.io`, or the key is the Kubernetes ingress class Istio documents.
fn is_istio(key: &str) -> bool {
    key == "kubernetes.io/ingress.class"
        || key
            .split('/')
            .next()
            .is_some_and(|prefix| prefix.ends_with("istio.io"))
}

/// Reports the Istio annotations of `annotations` (at `prefix`) that are unknown, or not
/// allowed on resource type `kind`.
fn check(
    r: &Resource,
    kind: &str,
    prefix: &str,
    annotations: &BTreeMap<String, String>,
    out: &mut Vec<Message>,
) {
    for key in annotations.keys().filter(|k| is_istio(k)) {
        let field = format!("{prefix}.{key}");
        match table::lookup(key) {
            None => out.push(Message::new(
                UNKNOWN_ANNOTATION,
                r,
                &field,
                format!("Unknown annotation: {key}"),
            )),
            Some(a) if !a.applies_to(kind) => {
                let text = format!(
                    "Misplaced annotation: {key} can only be applied to {}",
                    a.resources.join(", ")
                );
                out.push(Message::new(MISPLACED_ANNOTATION, r, &field, text));
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{only, run};

    fn deployment(annotations: &str) -> String {
        format!(
            "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
      annotations:
{annotations}
    spec:
      containers:
      - name: web
        image: nginx
"
        )
    }

    fn service(annotations: &str) -> String {
        format!(
            "apiVersion: v1
kind: Service
metadata:
  name: web
  annotations:
{annotations}
spec:
  ports:
  - port: 80
    name: http
"
        )
    }

    /// The IST0107 and IST0108 messages, as (code, text, line).
    fn found(yaml: &str) -> Vec<(&'static str, String, u32)> {
        let msgs = run(yaml);
        let mut v: Vec<_> = only(&msgs, "IST0107")
            .into_iter()
            .chain(only(&msgs, "IST0108"))
            .map(|m| {
                (
                    m.kind.code,
                    m.text.clone(),
                    m.reference.as_ref().map_or(0, |o| o.line),
                )
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn unknown_on_pod_template() {
        let got = found(&deployment("        sidecar.istio.io/injectt: \"false\""));
        assert_eq!(
            got,
            vec![(
                "IST0108",
                "Unknown annotation: sidecar.istio.io/injectt".to_owned(),
                14
            )]
        );
        let msgs = run(&deployment("        sidecar.istio.io/injectt: \"false\""));
        let m = only(&msgs, "IST0108")[0];
        assert_eq!(
            m.to_string(),
            "Warning [IST0108] (Deployment default/web t.yaml:14) Unknown annotation: sidecar.istio.io/injectt"
        );
    }

    #[test]
    fn misplaced_on_service() {
        let got = found(&service("    sidecar.istio.io/inject: \"false\""));
        assert_eq!(
            got,
            vec![(
                "IST0107",
                "Misplaced annotation: sidecar.istio.io/inject can only be applied to Pod"
                    .to_owned(),
                6
            )]
        );
    }

    #[test]
    fn misplaced_lists_every_allowed_type() {
        let got = found(&service(
            "    istio.io/dry-run: \"true\"\n    ambient.istio.io/waypoint-inbound-binding: HBONE",
        ));
        assert_eq!(
            got,
            vec![
                ("IST0107", "Misplaced annotation: ambient.istio.io/waypoint-inbound-binding can only be applied to GatewayClass, Gateway".to_owned(), 7),
                ("IST0107", "Misplaced annotation: istio.io/dry-run can only be applied to AuthorizationPolicy".to_owned(), 6),
            ]
        );
    }

    #[test]
    fn misplaced_on_workload_metadata() {
        let yaml = "apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  annotations:
    sidecar.istio.io/inject: \"false\"
spec:
  serviceName: db
  selector:
    matchLabels:
      app: db
  template:
    metadata:
      labels:
        app: db
    spec:
      containers:
      - name: db
        image: postgres
";
        let got = found(yaml);
        assert_eq!(
            got,
            vec![(
                "IST0107",
                "Misplaced annotation: sidecar.istio.io/inject can only be applied to Pod"
                    .to_owned(),
                6
            )]
        );
    }

    #[test]
    fn cron_job_template_and_namespace() {
        let yaml = "apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
spec:
  schedule: \"0 0 * * *\"
  jobTemplate:
    spec:
      template:
        metadata:
          annotations:
            proxy.istio.io/config: \"{}\"
            networking.istio.io/exportTo: \".\"
        spec:
          restartPolicy: Never
          containers:
          - name: job
            image: busybox
---
apiVersion: v1
kind: Namespace
metadata:
  name: apps
  annotations:
    topology.istio.io/controlPlaneClusters: \"*\"
    istio.io/rev: canary
";
        let got = found(yaml);
        assert_eq!(
            got,
            vec![
                ("IST0107", "Misplaced annotation: istio.io/rev can only be applied to Pod".to_owned(), 26),
                ("IST0107", "Misplaced annotation: networking.istio.io/exportTo can only be applied to Service".to_owned(), 13),
            ]
        );
    }

    #[test]
    fn allowed_annotations_give_nothing() {
        assert_eq!(
            found(&service(
                "    networking.istio.io/exportTo: \".\"\n    networking.istio.io/traffic-distribution: PreferClose"
            )),
            vec![]
        );
        assert_eq!(
            found(&deployment(
                "        sidecar.istio.io/inject: \"false\"\n        proxy.istio.io/config: \"{}\""
            )),
            vec![]
        );
        assert_eq!(
            found(&service("    galley.istio.io/analyze-suppress: IST0118")),
            vec![]
        );
    }

    #[test]
    fn non_istio_annotations_are_ignored() {
        let annotations = "    kubectl.kubernetes.io/last-applied-configuration: \"{}\"\n    example.com/istio.io: x\n    prometheus.io/scrape: \"true\"";
        assert_eq!(found(&service(annotations)), vec![]);
    }

    #[test]
    fn pod_own_annotations() {
        let yaml = "apiVersion: v1
kind: Pod
metadata:
  name: p
  annotations:
    sidecar.istio.io/inject: \"true\"
    sidecar.istio.io/proxyCPUs: 100m
spec:
  containers:
  - name: app
    image: nginx
";
        assert_eq!(
            found(yaml),
            vec![(
                "IST0108",
                "Unknown annotation: sidecar.istio.io/proxyCPUs".to_owned(),
                7
            )]
        );
    }

    #[test]
    fn istio_keys() {
        assert!(is_istio("sidecar.istio.io/inject"));
        assert!(is_istio("istio.io/rev"));
        assert!(is_istio("kubernetes.io/ingress.class"));
        assert!(is_istio("custom.istio.io"));
        assert!(!is_istio("kubernetes.io/ingress-class"));
        assert!(!is_istio("example.com/sidecar.istio.io"));
        assert!(!is_istio("istio.io.example.com/x"));
    }

    #[test]
    fn ingress_class_belongs_on_ingress() {
        let got = found(&service("    kubernetes.io/ingress.class: istio"));
        assert_eq!(
            got,
            vec![(
                "IST0107",
                "Misplaced annotation: kubernetes.io/ingress.class can only be applied to Ingress"
                    .to_owned(),
                6
            )]
        );
    }

    #[test]
    fn table_has_unique_names() {
        let mut names: Vec<_> = table::ANNOTATIONS.iter().map(|a| a.name).collect();
        let len = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), len);
        assert!(
            table::lookup("sidecar.istio.io/inject")
                .is_some_and(|a| a.applies_to("Pod") && !a.applies_to("Service"))
        );
        assert!(
            table::lookup("galley.istio.io/analyze-suppress")
                .is_some_and(|a| a.applies_to("Namespace"))
        );
    }
}
