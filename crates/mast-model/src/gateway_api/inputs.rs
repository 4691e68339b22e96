//! The resources the conversion reads, indexed: served classes, Gateways, routes in
//! Istio's order (creation time, then namespace/name), namespaces' labels, Services,
//! Secrets and ReferenceGrants.

use std::collections::{BTreeMap, HashMap, HashSet};

use mast_config::Resource;
use mast_config::gateway_api::{
    GROUP, GatewaySpec, GrpcRouteSpec, HttpRouteSpec, ReferenceGrantSpec, TcpRouteSpec,
    TlsRouteSpec,
};

use super::{BUILTIN_CLASSES, CONTROLLERS};

/// A resource with its typed spec.
pub(super) type Typed<'a, T> = (&'a Resource, &'a T);

/// The indexed inputs.
#[derive(Default)]
pub(super) struct Inputs<'a> {
    pub domain: String,
    /// Served class names → controller.
    pub classes: HashMap<&'a str, &'a str>,
    /// Every GatewayClass resource (served or not), for status.
    pub class_resources: Vec<&'a Resource>,
    pub gateways: Vec<Typed<'a, GatewaySpec>>,
    pub http_routes: Vec<Typed<'a, HttpRouteSpec>>,
    pub grpc_routes: Vec<Typed<'a, GrpcRouteSpec>>,
    pub tcp_routes: Vec<Typed<'a, TcpRouteSpec>>,
    pub tls_routes: Vec<Typed<'a, TlsRouteSpec>>,
    pub namespaces: HashMap<&'a str, &'a BTreeMap<String, String>>,
    pub services: HashSet<(&'a str, &'a str)>,
    pub secrets: HashSet<(&'a str, &'a str)>,
    pub grants: Vec<Typed<'a, ReferenceGrantSpec>>,
}

impl<'a> Inputs<'a> {
    /// Indexes `resources`.
    pub fn collect(resources: &'a [Resource], domain: &str) -> Self {
        let mut sorted: Vec<&Resource> = resources.iter().collect();
        sorted.sort_by(|a, b| {
            let created = |r: &Resource| r.meta.creation_timestamp.as_ref().map(|t| t.0);
            (created(a), a.namespace(), a.name()).cmp(&(created(b), b.namespace(), b.name()))
        });
        let mut i = Inputs {
            domain: domain.to_owned(),
            ..Inputs::default()
        };
        for name in BUILTIN_CLASSES {
            i.classes.insert(name, CONTROLLERS[0]);
        }
        for r in sorted {
            i.add(r);
        }
        i
    }

    fn add(&mut self, r: &'a Resource) {
        let key = (r.namespace(), r.name());
        if let Some(c) = r.as_gateway_class() {
            self.class_resources.push(r);
            if CONTROLLERS.contains(&c.controller_name.as_str()) {
                self.classes.insert(r.name(), c.controller_name.as_str());
            } else {
                self.classes.remove(r.name());
            }
        } else if let Some(g) = r.as_kube_gateway() {
            self.gateways.push((r, g));
        } else if let Some(s) = r.as_http_route() {
            self.http_routes.push((r, s));
        } else if let Some(s) = r.as_grpc_route() {
            self.grpc_routes.push((r, s));
        } else if let Some(s) = r.as_tcp_route() {
            self.tcp_routes.push((r, s));
        } else if let Some(s) = r.as_tls_route() {
            self.tls_routes.push((r, s));
        } else if let Some(s) = r.as_reference_grant() {
            self.grants.push((r, s));
        } else if r.as_namespace().is_some() {
            self.namespaces.insert(r.name(), r.labels());
        } else if r.as_service().is_some() {
            self.services.insert(key);
        } else if r.as_secret().is_some() {
            self.secrets.insert(key);
        }
    }

    /// The controller serving `class`, if Mast serves it.
    pub fn controller(&self, class: &str) -> Option<&'a str> {
        self.classes.get(class).copied()
    }

    /// The labels of namespace `ns` (empty when unknown; `kubernetes.io/metadata.name` is
    /// always there, as the API server sets it).
    pub fn namespace_labels(&self, ns: &str) -> BTreeMap<String, String> {
        let mut labels = self
            .namespaces
            .get(ns)
            .map(|l| (*l).clone())
            .unwrap_or_default();
        labels.insert("kubernetes.io/metadata.name".into(), ns.to_owned());
        labels
    }

    /// Whether an object of `from_kind` (Gateway API group) in `from_ns` may refer to the
    /// core `to_kind` object `to_ns/to_name`: always within a namespace, else when a
    /// ReferenceGrant in `to_ns` allows it.
    pub fn allowed(
        &self,
        from_kind: &str,
        from_ns: &str,
        to_kind: &str,
        to_ns: &str,
        to_name: &str,
    ) -> bool {
        if from_ns == to_ns {
            return true;
        }
        self.grants
            .iter()
            .filter(|(r, _)| r.namespace() == to_ns)
            .any(|(_, g)| {
                let from = g
                    .from
                    .iter()
                    .any(|f| f.group == GROUP && f.kind == from_kind && f.namespace == from_ns);
                let to = g.to.iter().any(|t| {
                    t.group.is_empty()
                        && t.kind == to_kind
                        && t.name.as_deref().is_none_or(|n| n == to_name)
                });
                from && to
            })
    }

    /// The cluster host of Service `ns/name`.
    pub fn service_host(&self, ns: &str, name: &str) -> String {
        format!("{name}.{ns}.svc.{}", self.domain)
    }
}
