//! `mastctl kube-inject -f FILE|- [-o FILE]`: rewrites Kubernetes YAML offline so workloads
//! run with the sidecar, as `istioctl kube-inject` does. Deployments, ReplicaSets,
//! DaemonSets, StatefulSets, Jobs, CronJobs and Pods gain `istio-init` and `istio-proxy`;
//! every other document passes through unchanged; document order is kept. A document that
//! cannot be read or injected is reported as `file:line: message` (exit 1, as `validate`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use mast_inject::inject::{InjectConfig, ProxyKind, inject};

/// Flags of `mastctl kube-inject`.
#[derive(clap::Args)]
pub struct Args {
    /// The YAML to inject (`-` for standard input).
    #[arg(short = 'f', long = "filename")]
    file: PathBuf,
    /// Write the result here instead of standard output.
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// The sidecar: mast-proxy (`mast`) or Envoy run by mast-agent (`envoy`).
    #[arg(long, value_enum, default_value_t = Proxy::Mast)]
    proxy: Proxy,
    /// The sidecar image [default: the Mast release image of the chosen proxy].
    #[arg(long)]
    image: Option<String>,
    /// Istio's mesh config (YAML, as the `mesh` key of the `istio` ConfigMap): trustDomain,
    /// defaultConfig.discoveryAddress, defaultConfig.concurrency.
    #[arg(long = "mesh-config", alias = "meshConfigFile")]
    mesh_config: Option<PathBuf>,
    /// Run istio-proxy as a native sidecar (init container with `restartPolicy: Always`).
    #[arg(long)]
    native_sidecars: bool,
    /// Traffic capture is done by the CNI plugin: no istio-init container.
    #[arg(long)]
    cni: bool,
}

/// `--proxy`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Proxy {
    /// mast-proxy.
    Mast,
    /// Envoy via mast-agent.
    Envoy,
}

/// Injects and writes the result; prints one line per bad document.
pub fn run(args: &Args) -> anyhow::Result<i32> {
    let cfg = match config(args) {
        Ok(cfg) => cfg,
        Err(message) => {
            eprintln!("Error: {message}");
            return Ok(crate::exit::UNKNOWN);
        }
    };
    let name = args.file.display().to_string();
    let text = match read(&args.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("Error: {name}: {e}");
            return Ok(crate::exit::UNKNOWN);
        }
    };
    let (out, errors) = inject_text(&text, &name, &cfg);
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{e}");
        }
        let n = errors.len();
        eprintln!("Error: {n} error{} occurred", if n == 1 { "" } else { "s" });
        return Ok(crate::exit::UNKNOWN);
    }
    match &args.output {
        Some(path) => {
            std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))?
        }
        None => std::io::stdout().write_all(out.as_bytes())?,
    }
    Ok(crate::exit::OK)
}

fn read(path: &Path) -> std::io::Result<String> {
    if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
}

fn config(args: &Args) -> Result<InjectConfig, String> {
    let kind = match args.proxy {
        Proxy::Mast => ProxyKind::Mast,
        Proxy::Envoy => ProxyKind::Envoy,
    };
    let mut cfg = InjectConfig::for_proxy(kind);
    if let Some(path) = &args.mesh_config {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
        let doc = mast_config::yaml::parse_documents(&text).into_iter().next();
        match doc {
            None => {}
            Some(Err(e)) => {
                return Err(format!(
                    "{name}:{}: YAML syntax error: {}",
                    e.line, e.message
                ));
            }
            Some(Ok(d)) => cfg.apply_mesh_config(&d.value).map_err(|(field, m)| {
                let line = d.lines.line_of(&field).unwrap_or(d.line);
                format!("{name}:{line}: {field}: {m}")
            })?,
        }
    }
    if let Some(image) = &args.image {
        cfg.image.clone_from(image);
    }
    cfg.native_sidecars = args.native_sidecars;
    cfg.cni = args.cni;
    Ok(cfg)
}

/// Injects every document of `text`: (the output YAML, one `file:line: message` per failure).
fn inject_text(text: &str, name: &str, cfg: &InjectConfig) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut errors = Vec::new();
    for doc in mast_config::yaml::parse_documents(text) {
        let doc = match doc {
            Ok(d) => d,
            Err(e) => {
                errors.push(format!(
                    "{name}:{}: YAML syntax error: {}",
                    e.line, e.message
                ));
                continue;
            }
        };
        let injected = inject(doc.value, cfg).map_err(|e| e.to_string());
        let yaml = injected.and_then(|r| {
            for note in &r.notes {
                tracing::info!("{name}:{}: {note}", doc.line);
            }
            serde_saphyr::to_string(&r.object).map_err(|e| format!("cannot write YAML: {e}"))
        });
        match yaml {
            Ok(y) => {
                out.push_str(&y);
                if !y.ends_with('\n') {
                    out.push('\n');
                }
                out.push_str("---\n");
            }
            Err(e) => errors.push(format!("{name}:{}: {e}", doc.line)),
        }
    }
    (out, errors)
}
