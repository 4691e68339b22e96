//! What injection needs to know about the mesh: which proxy and image, where mastd is, the
//! capture mode (init container or CNI), native sidecars, the default policy and the proxy's
//! resources. Also reads the few fields of Istio's mesh config (`--mesh-config`) that apply.

use serde_json::Value;

/// Which data plane the `istio-proxy` container runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyKind {
    /// `mast-proxy`, Mast's Rust sidecar.
    #[default]
    Mast,
    /// Envoy, run and fed by `mast-agent`.
    Envoy,
}

impl ProxyKind {
    /// The program the sidecar container runs.
    pub fn program(self) -> &'static str {
        match self {
            ProxyKind::Mast => "mast-proxy",
            ProxyKind::Envoy => "mast-agent",
        }
    }

    /// The init container's command: `mast-proxy init` or `mast-agent iptables`.
    pub fn init_command(self) -> [&'static str; 2] {
        match self {
            ProxyKind::Mast => ["mast-proxy", "init"],
            ProxyKind::Envoy => ["mast-agent", "iptables"],
        }
    }

    /// The default image for this proxy at this Mast version.
    pub fn default_image(self) -> String {
        match self {
            ProxyKind::Mast => format!("ghcr.io/mast-mesh/mast-proxy:{}", mast_core::VERSION),
            ProxyKind::Envoy => format!("ghcr.io/mast-mesh/mast-agent:{}", mast_core::VERSION),
        }
    }
}

/// Istio's `values.sidecarInjectorWebhook.defaultPolicy`: inject unless a pod opts out
/// (`enabled`), or only pods that opt in (`disabled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InjectPolicy {
    /// Inject unless the pod says `sidecar.istio.io/inject: "false"`.
    #[default]
    Enabled,
    /// Inject only when the pod says `sidecar.istio.io/inject: "true"`.
    Disabled,
}

/// Everything injection needs besides the object itself.
#[derive(Debug, Clone, PartialEq)]
pub struct InjectConfig {
    /// The sidecar's data plane.
    pub proxy: ProxyKind,
    /// The sidecar (and init container) image.
    pub image: String,
    /// mastd's xDS and CA address (TLS), `mastd.mast-system.svc:15012`.
    pub discovery_address: String,
    /// Traffic capture is set up by a CNI plugin: no `istio-init` container.
    pub cni: bool,
    /// Run `istio-proxy` as a native sidecar (an init container with
    /// `restartPolicy: Always`), so Jobs complete.
    pub native_sidecars: bool,
    /// The default policy for pods that say nothing.
    pub policy: InjectPolicy,
    /// Rewrite application HTTP/TCP probes through the agent's port 15020.
    pub rewrite_app_probers: bool,
    /// The mesh's trust domain.
    pub trust_domain: String,
    /// `CLUSTER_ID` in node metadata.
    pub cluster_id: String,
    /// `MESH_ID` in node metadata.
    pub mesh_id: String,
    /// The control plane revision this injector belongs to (`istio.io/rev`).
    pub revision: String,
    /// The proxy's worker threads.
    pub concurrency: u32,
    /// The proxy's CPU request.
    pub cpu_request: String,
    /// The proxy's memory request.
    pub memory_request: String,
    /// The proxy's CPU limit.
    pub cpu_limit: String,
    /// The proxy's memory limit.
    pub memory_limit: String,
}

impl Default for InjectConfig {
    fn default() -> Self {
        Self::for_proxy(ProxyKind::Mast)
    }
}

impl InjectConfig {
    /// The defaults for `proxy`: its default image, mastd in `mast-system`, init container
    /// capture, Istio's resources (100m/128Mi requests, 2/1Gi limits).
    pub fn for_proxy(proxy: ProxyKind) -> Self {
        Self {
            proxy,
            image: proxy.default_image(),
            discovery_address: "mastd.mast-system.svc:15012".into(),
            cni: false,
            native_sidecars: false,
            policy: InjectPolicy::Enabled,
            rewrite_app_probers: true,
            trust_domain: mast_core::DEFAULT_TRUST_DOMAIN.into(),
            cluster_id: "Kubernetes".into(),
            mesh_id: mast_core::DEFAULT_TRUST_DOMAIN.into(),
            revision: "default".into(),
            concurrency: 2,
            cpu_request: "100m".into(),
            memory_request: "128Mi".into(),
            cpu_limit: "2".into(),
            memory_limit: "1Gi".into(),
        }
    }

    /// Applies the fields of Istio's MeshConfig (as in the `istio` ConfigMap's `mesh` key)
    /// that injection uses: `trustDomain`, `defaultConfig.discoveryAddress`,
    /// `defaultConfig.concurrency`, `defaultConfig.meshId`. Returns the field and message of
    /// the first bad value.
    pub fn apply_mesh_config(&mut self, mesh: &Value) -> Result<(), (String, String)> {
        let Some(mesh) = mesh.as_object() else {
            if mesh.is_null() {
                return Ok(());
            }
            return Err((String::new(), "expected a mapping".into()));
        };
        if let Some(td) = string_field(mesh.get("trustDomain"), "trustDomain")? {
            self.trust_domain = td;
        }
        let Some(pc) = mesh.get("defaultConfig") else {
            return Ok(());
        };
        self.apply_proxy_config(pc, "defaultConfig.")
    }

    /// Applies a ProxyConfig (mesh `defaultConfig` or a pod's `proxy.istio.io/config`):
    /// `discoveryAddress`, `concurrency`, `meshId`. Other fields are ignored.
    pub fn apply_proxy_config(&mut self, pc: &Value, prefix: &str) -> Result<(), (String, String)> {
        let Some(pc) = pc.as_object() else {
            if pc.is_null() {
                return Ok(());
            }
            return Err((
                prefix.trim_end_matches('.').into(),
                "expected a mapping".into(),
            ));
        };
        let field = |name: &str| format!("{prefix}{name}");
        if let Some(a) = string_field(pc.get("discoveryAddress"), &field("discoveryAddress"))? {
            self.discovery_address = a;
        }
        if let Some(m) = string_field(pc.get("meshId"), &field("meshId"))? {
            self.mesh_id = m;
        }
        match pc.get("concurrency") {
            None | Some(Value::Null) => {}
            Some(v) => {
                let n = v
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        (field("concurrency"), format!("expected a count, found {v}"))
                    })?;
                self.concurrency = n;
            }
        }
        Ok(())
    }
}

fn string_field(v: Option<&Value>, field: &str) -> Result<Option<String>, (String, String)> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err((
            field.to_owned(),
            format!("expected a string, found {}", super::type_name(other)),
        )),
    }
}
