//! `mastctl up --prometheus`: a real Prometheus (Debian's package, or `--prometheus-bin`) as a
//! child of the mesh, in its own process group, output prefixed `[prometheus] `, stopped with
//! the mesh. It listens on 127.0.0.1 (a free port, or N+3 with `--port-base N`), keeps its
//! data in the run folder (`prometheus/`), evaluates Istio's recording rules
//! (`deploy/prometheus/istio-rules.yaml`, embedded) and scrapes every 5 s:
//!
//! - job `mastd`: mastd's monitoring `/metrics`;
//! - job `kubernetes-pods` (Istio's job name for sidecars): every running sidecar's
//!   `/stats/prometheus`, found through `file_sd_configs` in `prometheus-targets.json`,
//!   rewritten atomically (renamed over) whenever a workload starts, stops or restarts, with
//!   the labels `namespace`, `pod` (the workload's name), `app`, `version` (from its labels)
//!   and `mast_proxy` (`mast-proxy` or `envoy`).
//!
//! Which port of a sidecar: the `prometheus` port its ports file reports when there is one —
//! mast-proxy's Istio metrics port (`--prometheus-port`, the same text as its admin
//! `/stats/prometheus`, without the admin's other endpoints), mast-agent's merged port
//! (`--metrics-port`: Envoy's stats plus the agent's own) — else its admin port's
//! `/stats/prometheus` (for mast-proxy the same text; for Envoy, Envoy's stats only).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::process::Command;

use super::Args;
use super::mesh::Mesh;
use super::proc::{self, Proc, Sink};
use crate::local::spec::{Key, LocalSpec};
use crate::local::state::State;

/// Istio's recording rules, as in the repository's `deploy/prometheus/`.
pub const ISTIO_RULES: &str = include_str!("../../../../../deploy/prometheus/istio-rules.yaml");
/// The scrape (and rule evaluation) interval.
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(5);
/// The job of the sidecars (Istio's name for it).
pub const SIDECAR_JOB: &str = "kubernetes-pods";
/// How long Prometheus may take to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// The targets file, in the run folder.
const TARGETS_FILE: &str = "prometheus-targets.json";

/// A running Prometheus.
pub struct Prometheus {
    proc: Proc,
    /// `http://127.0.0.1:N`.
    pub url: String,
    targets: PathBuf,
    run_dir: PathBuf,
    /// The last targets written.
    last: Option<Value>,
}

/// Fails with a clear message when `bin` is neither a file nor found on PATH.
pub fn check_binary(bin: &Path) -> anyhow::Result<()> {
    let on_path = || {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(bin).is_file()))
    };
    if bin.is_file() || (bin.components().count() == 1 && on_path()) {
        return Ok(());
    }
    bail!(
        "--prometheus: {} not found: install Prometheus (Debian: apt-get install prometheus) or give --prometheus-bin PATH",
        bin.display()
    )
}

/// With `--prometheus`: starts Prometheus for `mesh` (before mastd, which gets its URL from
/// the state for the dashboard), records its URL in the state and says where it is.
pub async fn start_for(args: &Args, mesh: &Mesh) -> anyhow::Result<Option<Prometheus>> {
    if !args.prometheus {
        return Ok(None);
    }
    let port = port(args.port_base)?;
    let monitoring = mesh.snapshot().mastd.monitoring;
    let p = Prometheus::start(&args.prometheus_bin, &mesh.run_dir, port, &monitoring).await?;
    mesh.with_state(|s| s.prometheus = Some(p.url.clone()));
    proc::say(format!(
        "prometheus on {} (scraping every {}s)",
        p.url,
        SCRAPE_INTERVAL.as_secs()
    ));
    Ok(Some(p))
}

/// Waits until the Prometheus in `prom` exits (forever when there is none).
pub async fn exited(prom: &mut Option<Prometheus>) -> Option<std::process::ExitStatus> {
    match prom {
        Some(p) => p.wait().await,
        None => std::future::pending().await,
    }
}

/// The port Prometheus listens on: N+3 with `--port-base N` (N+2 is the dashboard's), else
/// a free one.
pub fn port(port_base: Option<u16>) -> anyhow::Result<u16> {
    match port_base {
        Some(n) => n.checked_add(3).context("--port-base is too high"),
        None => {
            let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
            Ok(l.local_addr()?.port())
        }
    }
}

/// The configuration for a mesh whose mastd monitors on `monitoring` (host:port).
pub fn config_yaml(monitoring: &str, rules: &Path, targets: &Path) -> String {
    let secs = SCRAPE_INTERVAL.as_secs();
    format!(
        "# Written by mastctl up --prometheus; rewritten at every start.\n\
         global:\n  scrape_interval: {secs}s\n  scrape_timeout: {timeout}s\n  evaluation_interval: {secs}s\n\
         rule_files:\n  - {rules:?}\n\
         scrape_configs:\n\
         \x20 - job_name: mastd\n    static_configs:\n      - targets: [{monitoring:?}]\n        labels: {{app: mastd}}\n\
         \x20 - job_name: {SIDECAR_JOB}\n    honor_labels: true\n    metrics_path: /stats/prometheus\n    \
         file_sd_configs:\n      - files: [{targets:?}]\n        refresh_interval: 30s\n",
        timeout = secs.saturating_sub(1).max(1),
        rules = rules.display().to_string(),
        targets = targets.display().to_string(),
    )
}

/// Writes the configuration, the rules and an empty targets file into `run_dir`; returns
/// the configuration's path.
fn write_files(run_dir: &Path, monitoring: &str) -> anyhow::Result<PathBuf> {
    let config = run_dir.join("prometheus.yml");
    let rules = run_dir.join("istio-rules.yaml");
    let targets = run_dir.join(TARGETS_FILE);
    std::fs::write(&rules, ISTIO_RULES).with_context(|| format!("writing {}", rules.display()))?;
    write_atomically(&targets, "[]\n")?;
    let text = config_yaml(monitoring, &rules, &targets);
    std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
    Ok(config)
}

fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

impl Prometheus {
    /// Starts `bin` on `port` for the mesh in `run_dir` whose mastd monitors on
    /// `monitoring`, and waits until it is ready.
    pub async fn start(
        bin: &Path,
        run_dir: &Path,
        port: u16,
        monitoring: &str,
    ) -> anyhow::Result<Self> {
        let config = write_files(run_dir, monitoring)?;
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                run_dir.join("prometheus").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .arg("--log.level=warn");
        let prefix = "[prometheus] ".to_owned();
        let proc = proc::spawn(
            cmd,
            &format!(
                "{} (install Debian's prometheus package or give --prometheus-bin)",
                bin.display()
            ),
            Sink::Stderr(prefix.clone()),
            Sink::Stderr(prefix),
        )?;
        let mut me = Self {
            proc,
            url: format!("http://{listen}"),
            targets: run_dir.join(TARGETS_FILE),
            run_dir: run_dir.to_path_buf(),
            last: None,
        };
        if let Err(e) = me.wait_ready(&listen).await {
            me.stop().await;
            return Err(e);
        }
        Ok(me)
    }

    async fn wait_ready(&mut self, listen: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let addr = listen.to_owned();
            let ready = tokio::task::spawn_blocking(move || crate::http::get(&addr, "/-/ready"))
                .await
                .is_ok_and(|r| r.is_ok());
            if ready {
                return Ok(());
            }
            tokio::select! {
                status = self.proc.wait() => bail!(
                    "prometheus {} before it was ready (its messages are above)",
                    status.map(|s| proc::describe(&s)).unwrap_or_default()
                ),
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            if Instant::now() > deadline {
                bail!("prometheus was not ready on {listen} within {READY_TIMEOUT:?}");
            }
        }
    }

    /// Rewrites the targets file when the running sidecars changed.
    pub fn refresh<'a>(&mut self, state: &State, specs: impl IntoIterator<Item = &'a LocalSpec>) {
        let specs: BTreeMap<&Key, &LocalSpec> = specs.into_iter().map(|s| (&s.key, s)).collect();
        let targets = targets(state, &specs, &self.run_dir);
        if self.last.as_ref() == Some(&targets) {
            return;
        }
        let text = format!("{targets:#}\n");
        match write_atomically(&self.targets, &text) {
            Ok(()) => self.last = Some(targets),
            Err(e) => proc::say(format!("prometheus targets: {e:#}")),
        }
    }

    /// Waits until Prometheus exits on its own.
    pub async fn wait(&mut self) -> Option<std::process::ExitStatus> {
        self.proc.wait().await.ok()
    }

    /// Stops Prometheus (SIGTERM, SIGKILL after 5 s).
    pub async fn stop(self) {
        self.proc.stop(Duration::from_secs(5), false).await;
    }
}

/// The `file_sd_configs` targets: one group per running sidecar.
pub fn targets(state: &State, specs: &BTreeMap<&Key, &LocalSpec>, run_dir: &Path) -> Value {
    let mut groups = Vec::new();
    for w in &state.workloads {
        let (Some(admin), Some(_)) = (w.admin, w.sidecar_pid) else {
            continue;
        };
        let ports = read_ports_file(&ports_file(run_dir, &w.namespace, &w.name));
        let port = ports
            .as_ref()
            .and_then(|p| p.get("prometheus")?.as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(admin);
        let mut labels = json!({
            "namespace": w.namespace,
            "pod": w.name,
            "mast_proxy": if w.proxy == "envoy" { "envoy" } else { "mast-proxy" },
        });
        let key = specs
            .keys()
            .find(|k| k.namespace == w.namespace && k.name == w.name);
        if let Some(spec) = key.and_then(|k| specs.get(*k)) {
            for name in ["app", "version"] {
                if let Some(v) = spec.labels.get(name) {
                    labels[name] = json!(v);
                }
            }
        }
        groups.push(json!({"targets": [format!("127.0.0.1:{port}")], "labels": labels}));
    }
    Value::Array(groups)
}

/// A workload's sidecar ports file (as `sidecar::SidecarFiles` names it).
fn ports_file(run_dir: &Path, namespace: &str, name: &str) -> PathBuf {
    run_dir.join(format!("{namespace}.{name}.ports.json"))
}

fn read_ports_file(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::state::{MastdState, WorkloadState};

    fn spec(name: &str, labels: &[(&str, &str)]) -> LocalSpec {
        LocalSpec {
            key: Key {
                namespace: "default".into(),
                name: name.into(),
            },
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            proxy: None,
            command: vec!["true".into()],
            port: None,
            service_account: "default".into(),
            env: BTreeMap::new(),
            job: false,
            readiness: None,
            gateway: false,
            file: "w.yaml".into(),
        }
    }

    fn workload(name: &str, proxy: &str, admin: Option<u16>) -> WorkloadState {
        WorkloadState {
            name: name.into(),
            namespace: "default".into(),
            proxy: proxy.into(),
            sidecar_pid: Some(1),
            admin,
            ..WorkloadState::default()
        }
    }

    #[test]
    fn targets_label_running_sidecars_and_prefer_their_metrics_port() {
        let dir = std::env::temp_dir().join(format!("mastctl-prom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            ports_file(&dir, "default", "web"),
            r#"{"admin":1,"prometheus":7}"#,
        )
        .unwrap();
        let state = State {
            dir: "/d".into(),
            pid: 1,
            mastd: MastdState::default(),
            dashboard: String::new(),
            prometheus: None,
            generated: "/g".into(),
            workloads: vec![
                workload("client", "mast", Some(2)),
                workload("starting", "mast", None),
                workload("web", "envoy", Some(1)),
            ],
        };
        let (client, web) = (
            spec("client", &[("app", "client")]),
            spec("web", &[("app", "web"), ("version", "v1")]),
        );
        let specs = BTreeMap::from([(&client.key, &client), (&web.key, &web)]);
        let t = targets(&state, &specs, &dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            t,
            json!([
                {"targets": ["127.0.0.1:2"], "labels": {"namespace": "default", "pod": "client", "app": "client", "mast_proxy": "mast-proxy"}},
                {"targets": ["127.0.0.1:7"], "labels": {"namespace": "default", "pod": "web", "app": "web", "version": "v1", "mast_proxy": "envoy"}},
            ])
        );
    }

    #[test]
    fn port_base_puts_prometheus_at_n_plus_3() {
        assert_eq!(port(Some(20000)).unwrap(), 20003);
        assert!(port(Some(u16::MAX)).is_err());
        assert_ne!(port(None).unwrap(), 0);
    }
}
