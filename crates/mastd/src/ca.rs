//! mastd's certificate authority: loads (or creates on first start) the CA from `--ca-dir`
//! or a plug-in `--ca-cacerts` folder, serves `IstioCertificateService` next to ADS on the
//! xDS port, reloads the CA files when they change (root rotation), and writes a local token
//! for every LocalWorkload into `--local-tokens`. Callers authenticate with a local token or,
//! with `--kube-token-review` (on by default in a pod), a Kubernetes service-account token
//! reviewed by the API server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use mast_ca::authority::{CaOptions, CertificateAuthority};
use mast_ca::files::{ensure_dir, write_atomic};
use mast_ca::kube_auth::{KubeAuthConfig, KubeTokenReviewAuthenticator};
use mast_ca::server::{Authenticator, CaMetrics, CaService, LocalTokenAuthenticator, SharedCa};
use mast_ca::token::TokenIssuer;
use mast_config::Body;
use mast_registry::StoreState;
use tokio::sync::watch;

use crate::Args;

/// How often the CA directory is checked for changed files.
const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// The running CA: the gRPC service to mount and its metrics.
pub struct Ca {
    /// The service for the xDS server.
    pub service: CaService,
    /// The metrics for `/metrics`.
    pub metrics: CaMetrics,
    /// The token issuer (local tokens).
    pub tokens: TokenIssuer,
    /// The signing CA (mastd's own serving certificates).
    pub shared: SharedCa,
}

/// `$XDG_STATE_HOME/mast/ca`, else `~/.local/state/mast/ca`.
pub fn default_ca_dir() -> Option<PathBuf> {
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|s| !s.is_empty()) {
        return Some(PathBuf::from(state).join("mast/ca"));
    }
    let home = std::env::var_os("HOME").filter(|s| !s.is_empty())?;
    Some(PathBuf::from(home).join(".local/state/mast/ca"))
}

/// The CA directory in use: `--ca-dir`, else the default.
pub fn ca_dir(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    match explicit {
        Some(d) => Ok(d.to_path_buf()),
        None => {
            default_ca_dir().context("no --ca-dir given and neither XDG_STATE_HOME nor HOME is set")
        }
    }
}

/// The CA options from the flags.
pub fn options(args: &Args) -> CaOptions {
    CaOptions {
        trust_domain: args.trust_domain.clone(),
        default_ttl: args.cert_default_ttl,
        max_ttl: args.cert_max_ttl,
    }
}

/// Loads the CA (generating a root on first start) and starts reloading it on change.
/// The token key always lives in the `--ca-dir` (also with a plug-in CA).
pub async fn start(args: &Args) -> anyhow::Result<Ca> {
    let dir = ca_dir(args.ca_dir.as_deref())?;
    let opts = options(args);
    let (signing_dir, plugin) = match &args.ca_cacerts {
        Some(p) => (p.clone(), true),
        None => (dir.clone(), false),
    };
    let (d, sd, o) = (dir.clone(), signing_dir.clone(), opts.clone());
    let (ca, tokens) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let ca = if plugin {
            CertificateAuthority::load_dir(&sd, o)
        } else {
            CertificateAuthority::load_or_create(&sd, o)
        }
        .with_context(|| format!("loading the CA from {}", sd.display()))?;
        let tokens = TokenIssuer::load_or_create(&d).context("loading the token key")?;
        Ok((ca, tokens))
    })
    .await??;
    tracing::info!(
        dir = %signing_dir.display(),
        plugin,
        trust_domain = %opts.trust_domain,
        "certificate authority ready"
    );
    let shared = SharedCa::new(ca);
    mast_ca::reload::spawn_reloader(shared.clone(), signing_dir, opts, RELOAD_INTERVAL);
    let mut auth: Vec<Arc<dyn Authenticator>> =
        vec![Arc::new(LocalTokenAuthenticator(tokens.clone()))];
    if let Some(kube) = kube_authenticator(
        args.kube_token_review,
        KubeAuthConfig::in_cluster_available(),
        KubeAuthConfig::in_cluster,
    )? {
        auth.push(kube);
    }
    Ok(Ca {
        service: CaService::new(shared.clone(), auth),
        metrics: shared.metrics().clone(),
        tokens,
        shared,
    })
}

/// `--kube-token-review`: whether the CA also accepts Kubernetes service-account tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum KubeTokenReview {
    /// On when running in a pod (`KUBERNETES_SERVICE_HOST` set and the service-account token
    /// and CA files present).
    #[default]
    Auto,
    /// Always on; mastd fails to start outside a pod.
    On,
    /// Off: local tokens only.
    Off,
}

/// The TokenReview authenticator `mode` asks for (`in_pod`: whether the in-cluster
/// configuration is there; `config` reads it).
fn kube_authenticator(
    mode: KubeTokenReview,
    in_pod: bool,
    config: impl FnOnce() -> Result<KubeAuthConfig, mast_ca::kube_auth::KubeConfigError>,
) -> anyhow::Result<Option<Arc<dyn Authenticator>>> {
    if mode == KubeTokenReview::Off || (mode == KubeTokenReview::Auto && !in_pod) {
        return Ok(None);
    }
    let built = config()
        .and_then(KubeTokenReviewAuthenticator::new)
        .context("--kube-token-review: the in-cluster API server configuration");
    match built {
        Ok(a) => {
            tracing::info!(
                api_server = a.api_server(),
                "CA callers may authenticate with Kubernetes service-account tokens (TokenReview)"
            );
            Ok(Some(Arc::new(a)))
        }
        Err(e) if mode == KubeTokenReview::Auto => {
            tracing::warn!("Kubernetes TokenReview is off: {e:#}");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Writes `DIR/<namespace>/<name>.token` (0600) for every LocalWorkload, now and whenever
/// the configuration changes. A token already there for the same identity is kept.
pub async fn write_local_tokens(
    dir: PathBuf,
    tokens: TokenIssuer,
    mut states: watch::Receiver<Arc<StoreState>>,
) {
    let mut written: BTreeMap<PathBuf, (String, String)> = BTreeMap::new();
    loop {
        let state = states.borrow_and_update().clone();
        for (path, identity) in wanted(&dir, &state) {
            if written.get(&path) == Some(&identity) {
                continue;
            }
            if let Err(e) = write_token(&path, &tokens, &identity) {
                tracing::warn!("cannot write the local token {}: {e}", path.display());
                continue;
            }
            tracing::info!(path = %path.display(), ns = %identity.0, sa = %identity.1, "wrote a local CA token");
            written.insert(path, identity);
        }
        if states.changed().await.is_err() {
            return;
        }
    }
}

/// Token file → (namespace, service account) for every LocalWorkload.
fn wanted(dir: &Path, state: &StoreState) -> Vec<(PathBuf, (String, String))> {
    state
        .resources
        .iter()
        .filter_map(|r| match &r.body {
            Body::LocalWorkload(w) => Some((
                dir.join(r.namespace()).join(format!("{}.token", r.name())),
                (r.namespace().to_owned(), w.service_account().to_owned()),
            )),
            _ => None,
        })
        .collect()
}

fn write_token(
    path: &Path,
    tokens: &TokenIssuer,
    (ns, sa): &(String, String),
) -> anyhow::Result<()> {
    if let Ok(existing) = std::fs::read_to_string(path)
        && tokens.verify(&existing).ok().as_ref() == Some(&(ns.clone(), sa.clone()))
    {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        ensure_dir(parent)?;
    }
    write_atomic(
        path,
        format!("{}\n", tokens.issue(ns, sa)).as_bytes(),
        0o600,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use mast_ca::kube_auth::{ClientToken, KubeConfigError};

    use super::*;

    fn not_in_pod() -> Result<KubeAuthConfig, KubeConfigError> {
        Err(KubeConfigError::NotInCluster("KUBERNETES_SERVICE_HOST"))
    }

    fn pod() -> Result<KubeAuthConfig, KubeConfigError> {
        let cert = rcgen::generate_simple_self_signed(vec!["10.96.0.1".to_owned()])
            .map_err(|e| KubeConfigError::Tls(e.to_string()))?;
        Ok(KubeAuthConfig::new(
            "https://10.96.0.1:443",
            cert.cert.pem(),
            ClientToken::Static("t".into()),
        ))
    }

    #[test]
    fn kube_token_review_modes() -> anyhow::Result<()> {
        use KubeTokenReview::{Auto, Off, On};
        assert!(kube_authenticator(Off, true, pod)?.is_none());
        assert!(kube_authenticator(Auto, false, pod)?.is_none());
        let a = kube_authenticator(Auto, true, pod)?;
        assert_eq!(a.map(|a| a.name()), Some("kube-token-review"));
        assert!(kube_authenticator(On, false, pod)?.is_some());
        // Auto with a broken in-cluster configuration: off with a warning; On: an error.
        assert!(kube_authenticator(Auto, true, not_in_pod)?.is_none());
        let err = kube_authenticator(On, false, not_in_pod).err();
        let err = err.map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(err.contains("KUBERNETES_SERVICE_HOST is not set"), "{err}");
        Ok(())
    }
}
