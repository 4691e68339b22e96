//! `mastctl install` and `mastctl upgrade`: render, then server-side apply component by
//! component (core, mastd, gateways, addons), waiting for each component's Deployments to be
//! available and printing istioctl's progress lines (`✔ Mast core installed`, …,
//! `✔ Installation complete`). `upgrade` is an install of a new `--revision` beside the old
//! one: revisioned objects are suffixed, and its injection webhook selects
//! `istio.io/rev=<revision>`, so namespaces move one at a time.

use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::kube::{self as k, KubeArgs};
use super::render::{Component, Object, components, render};
use super::settings::Settings;
use super::{InputArgs, ca, confirm, runtime};

/// Flags of `mastctl install` (and `upgrade`).
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    kube: KubeArgs,
    /// Target control plane revision (objects suffixed `-<revision>`, namespaces select it with
    /// the label `istio.io/rev=<revision>`).
    #[arg(short = 'r', long)]
    revision: Option<String>,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long = "skip-confirmation")]
    yes: bool,
    /// How long to wait for each component's Deployments to become available.
    #[arg(long, default_value = "300s", value_parser = mast_ca::duration::parse_duration)]
    readiness_timeout: Duration,
}

/// Runs `mastctl install`.
pub fn run(args: &Args) -> Result<i32> {
    runtime()?.block_on(install(args, false))
}

/// Runs `mastctl upgrade` (requires `--revision`).
pub fn run_upgrade(args: &Args) -> Result<i32> {
    if args.revision.is_none() {
        bail!(
            "upgrade installs a new control plane revision beside the current one: give --revision NAME"
        );
    }
    runtime()?.block_on(install(args, true))
}

async fn install(args: &Args, upgrade: bool) -> Result<i32> {
    let mut settings = Settings::from_tree(&args.input.tree(args.revision.as_deref())?)?;
    let plain = render(&settings, None);
    let titles: Vec<&str> = components(&plain).iter().map(|c| c.title()).collect();
    let question = format!(
        "This will install the Mast {} {:?} profile{} with [{}] components into the cluster. Proceed?",
        mast_core::VERSION,
        settings.profile,
        settings
            .revision
            .as_deref()
            .map(|r| format!(" (revision {r:?})"))
            .unwrap_or_default(),
        titles.join(" "),
    );
    if !args.yes && !confirm(&question) {
        println!("Cancelled.");
        return Ok(crate::exit::OK);
    }
    let client = k::client(&args.kube).await?;
    if !settings.native_sidecars {
        settings.native_sidecars = supports_native_sidecars(&client).await;
    }
    k::apply(&client, &namespace(&settings)).await?;
    let objects = if settings.pilot {
        let (ca, created) =
            ca::ensure(&client, &settings.namespace, &settings.trust_domain).await?;
        if created {
            tracing::info!(
                "created the mesh CA in Secret {}/cacerts",
                settings.namespace
            );
        }
        render(&settings, Some(&ca))
    } else {
        plain
    };
    for c in components(&objects) {
        apply_component(&client, &objects, c, args.readiness_timeout)
            .await
            .with_context(|| format!("{} failed", c.title()))?;
        println!("✔ {}", c.installed());
    }
    println!("✔ Installation complete");
    if upgrade && let Some(r) = &settings.revision {
        println!(
            "Revision {r:?} is running beside the current one. Move a namespace to it with\n  \
             kubectl label namespace NS istio-injection- istio.io/rev={r} --overwrite\n\
             and restart its workloads; when all have moved, remove the old revision with\n  \
             mastctl uninstall --revision OLD"
        );
    }
    Ok(crate::exit::OK)
}

fn namespace(s: &Settings) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": s.namespace, "labels": super::render::base_labels()},
    })
}

async fn apply_component(
    client: &kube::Client,
    objects: &[Object],
    c: Component,
    timeout: Duration,
) -> Result<()> {
    let mine: Vec<&Object> = objects.iter().filter(|o| o.component == c).collect();
    for o in &mine {
        k::apply(client, &o.value).await?;
    }
    let deployments: Vec<(String, String)> = mine
        .iter()
        .filter(|o| o.kind() == "Deployment")
        .map(|o| {
            (
                o.namespace().unwrap_or_default().to_string(),
                o.name().to_string(),
            )
        })
        .collect();
    k::wait_deployments(client, &deployments, timeout).await
}

/// Whether the cluster runs native sidecars (init containers with `restartPolicy: Always`:
/// Kubernetes 1.29 and later); unknown versions say no.
async fn supports_native_sidecars(client: &kube::Client) -> bool {
    match client.apiserver_version().await {
        Ok(v) => {
            let minor: u32 = v
                .minor
                .trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .unwrap_or(0);
            v.major == "1" && minor >= 29
        }
        Err(e) => {
            tracing::debug!("cannot read the API server's version: {e}");
            false
        }
    }
}
