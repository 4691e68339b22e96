//! More sidecars in a [`Mesh`]: a server workload's sidecar (its inbound listener fronts a
//! local upstream, and a `WorkloadEntry` at that listener makes it the service's endpoint,
//! labelled `security.istio.io/tlsMode: istio` as an injected pod is) and other clients'
//! sidecars, each with its own identity (a token from mastd's CA for its namespace and
//! service account). Security scenarios use them: mutual TLS happens between two sidecars.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use mast_test_support::{HttpRequest, HttpResponse, ProxyOptions, ProxyProcess};
use parking_lot::Mutex;

use crate::mesh::{Mesh, NodeTracking, START_TIMEOUT};
use crate::reaper::Reaper;
use crate::sides::Proxy;
use crate::yaml::NAMESPACE;

/// What to start.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    /// The workload name (node metadata WORKLOAD_NAME, label `app`).
    pub name: String,
    /// Its service account (identity `spiffe://cluster.local/ns/default/sa/<sa>`).
    pub service_account: String,
    /// The application port its inbound listener fronts (a server), if any.
    pub app_port: Option<u16>,
    /// More labels.
    pub labels: Vec<(String, String)>,
    /// More sidecar flags (e.g. `--cert-ttl 4s`).
    pub args: Vec<String>,
}

impl WorkloadSpec {
    /// A client workload `name` running as service account `sa`.
    pub fn client(name: &str, sa: &str) -> Self {
        Self {
            name: name.into(),
            service_account: sa.into(),
            app_port: None,
            labels: Vec::new(),
            args: Vec::new(),
        }
    }

    /// A server workload `name` (service account `sa`) whose application listens on
    /// `app_port`.
    pub fn server(name: &str, sa: &str, app_port: u16) -> Self {
        Self {
            app_port: Some(app_port),
            ..Self::client(name, sa)
        }
    }
}

/// A running sidecar of a workload, killed when dropped.
#[derive(Debug)]
pub struct Workload {
    /// First, so that it is dropped (the node untracked) before the sidecar is stopped.
    _tracking: NodeTracking,
    spec: WorkloadSpec,
    process: Mutex<ProxyProcess>,
    _reaper: Reaper,
    outbound: SocketAddr,
    inbound: Option<SocketAddr>,
    node_id: String,
    token: PathBuf,
}

impl Workload {
    /// Starts the sidecar for `spec` in `mesh` (same kind as the mesh's client) with a CA
    /// token for its identity, and waits until it runs mastd's configuration.
    pub async fn start(mesh: &Mesh, spec: WorkloadSpec) -> anyhow::Result<Self> {
        let token = mesh.token_file(NAMESPACE, &spec.service_account)?;
        let mut options = ProxyOptions::new(mesh.proxy(), mesh.xds_addr())
            .workload(&spec.name, NAMESPACE)
            .label("app", &spec.name)
            .args(["--service-account", spec.service_account.as_str()])
            .timeout(START_TIMEOUT);
        options.ca_token_file = Some(token.clone());
        for (k, v) in &spec.labels {
            options = options.label(k, v);
        }
        options = options.args(&spec.args);
        if let Some(port) = spec.app_port {
            options = options.inbound(port, 0);
        }
        if mesh.proxy() == Proxy::Envoy {
            options = options.args(["--drain-duration", "0s"]);
        }
        let name = spec.name.clone();
        let mut process = tokio::task::spawn_blocking(move || ProxyProcess::start(options))
            .await?
            .with_context(|| format!("starting {name}'s sidecar"))?;
        let reaper =
            Reaper::watch_and_remove(process.guard_mut().pid(), &[process.dir().to_path_buf()])?;
        let outbound = process.outbound_addr();
        let inbound = spec.app_port.and_then(|p| process.inbound_addr(p));
        let node_id = process.ports().node_id.clone();
        let tracking = mesh.track_node(&node_id);
        let workload = Self {
            _tracking: tracking,
            spec,
            process: Mutex::new(process),
            _reaper: reaper,
            outbound,
            inbound,
            node_id,
            token,
        };
        mesh.wait_node_current(&workload.node_id, START_TIMEOUT)
            .await
            .with_context(|| workload.log())?;
        Ok(workload)
    }

    /// The workload's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Its SPIFFE identity.
    pub fn identity(&self) -> String {
        format!(
            "spiffe://cluster.local/ns/{NAMESPACE}/sa/{}",
            self.spec.service_account
        )
    }

    /// Its outbound listener (an HTTP proxy).
    pub fn outbound(&self) -> SocketAddr {
        self.outbound
    }

    /// Its inbound listener (servers only).
    pub fn inbound(&self) -> Option<SocketAddr> {
        self.inbound
    }

    /// Its sidecar's admin address.
    pub fn admin(&self) -> SocketAddr {
        self.process.lock().admin_addr()
    }

    /// Its token file.
    pub fn token(&self) -> &PathBuf {
        &self.token
    }

    /// GETs `url` through this workload's sidecar.
    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> anyhow::Result<HttpResponse> {
        Ok(HttpRequest::get(url)
            .headers(headers)
            .timeout(Duration::from_secs(10))
            .via_proxy(self.outbound)
            .await?)
    }

    /// The `WorkloadEntry` making this server the endpoint of `service` (port name `http`
    /// → its inbound listener), as an injected pod: label `security.istio.io/tlsMode: istio`
    /// and its service account.
    pub fn entry(&self, service: &str, port_name: &str) -> String {
        let port = self.inbound.map(|a| a.port()).unwrap_or_default();
        let extra: String = self
            .spec
            .labels
            .iter()
            .map(|(k, v)| format!("    {k}: {v}\n"))
            .collect();
        format!(
            "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: {name}\n  \
             namespace: {NAMESPACE}\nspec:\n  address: 127.0.0.1\n  serviceAccount: {sa}\n  labels:\n    \
             app: {service}\n    workload: {name}\n    security.istio.io/tlsMode: istio\n{extra}  ports:\n    {port_name}: {port}\n",
            name = self.spec.name,
            sa = self.spec.service_account,
        )
    }

    /// The proxy's current workload certificate chain as its `/config_dump` shows it (the
    /// `default` secret's inline chain), when it has one.
    pub async fn certificate(&self) -> Option<String> {
        let admin = self.admin();
        let r = mast_test_support::http_get_direct(admin, "/config_dump", &[])
            .await
            .ok()?;
        let dump: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        let configs = dump.get("configs")?.as_array()?;
        configs
            .iter()
            .filter_map(|c| c.get("dynamic_active_secrets")?.as_array())
            .flatten()
            .find(|s| s.get("name").and_then(|n| n.as_str()) == Some("default"))
            .and_then(|s| {
                s.pointer("/secret/tls_certificate/certificate_chain/inline_bytes")
                    .or_else(|| {
                        s.pointer("/secret/tls_certificate/certificate_chain/inline_string")
                    })
            })
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    }

    /// The sidecar's last log lines and problems.
    pub fn log(&self) -> String {
        let p = self.process.lock();
        format!(
            "--- {} sidecar\n{}\n{}",
            self.spec.name,
            p.log_tail(),
            p.problems(40)
        )
    }
}

/// A server `name`: an echo app answering `name`, its sidecar (service account `name`) and
/// Service `name` (port 80, `http`) with the sidecar as its endpoint, plus `extra` YAML
/// (policies) in the same file `<name>.yaml`; applied and synced.
pub async fn echo_server(
    mesh: &Mesh,
    name: &str,
    extra: &[String],
) -> anyhow::Result<(mast_test_support::EchoServer, Workload)> {
    let app = mast_test_support::EchoServer::start(name)?;
    let sidecar = Workload::start(mesh, WorkloadSpec::server(name, name, app.port())).await?;
    let mut parts = vec![
        crate::yaml::service(name, &[("http", 80)]),
        sidecar.entry(name, "http"),
    ];
    parts.extend(extra.iter().cloned());
    mesh.apply(&format!("{name}.yaml"), &crate::yaml::docs(&parts))
        .await?;
    Ok((app, sidecar))
}

/// A workload-level PeerAuthentication `app` selecting `app: <app>` with mTLS `mode` and
/// `port_level` YAML (`  portLevelMtls: …` lines, or empty).
pub fn peer_authentication(app: &str, mode: &str, port_level: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: {app}\n  \
         namespace: {NAMESPACE}\nspec:\n  selector:\n    matchLabels:\n      app: {app}\n  mtls:\n    mode: {mode}\n{port_level}"
    )
}

/// An AuthorizationPolicy `name` selecting `app: <app>` with `body` (YAML under `spec:`).
pub fn authorization_policy(name: &str, app: &str, body: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: {name}\n  \
         namespace: {NAMESPACE}\nspec:\n  selector:\n    matchLabels:\n      app: {app}\n{body}"
    )
}
