//! `mastctl dashboard [mast|prometheus|envoy WORKLOAD|controlz]`: istioctl's `dashboard`
//! verb. Finds the URL (the running local mesh's state file, else mastd's monitoring API
//! `/debug/endpointz`), prints it and opens it in a browser when one can be started
//! (`xdg-open` with a display; `--browser=false` only prints).

use std::path::PathBuf;

use anyhow::{Context as _, bail};

use crate::http;
use crate::local::state;

/// What to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Component {
    /// The Mast dashboard (service graph, services, workloads, config, traces).
    #[value(alias = "kiali")]
    Mast,
    /// The Prometheus started by `mastctl up --prometheus`.
    Prometheus,
    /// A workload's proxy admin interface (give the workload).
    Envoy,
    /// mastd's monitoring and debug server.
    Controlz,
}

/// Flags of `mastctl dashboard`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which dashboard.
    #[arg(value_enum, default_value = "mast")]
    pub component: Component,
    /// The workload, for `envoy` (`name` or `name.namespace`).
    pub workload: Option<String>,
    /// Open a browser (`--browser=false`: only print the URL).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true")]
    pub browser: bool,
    /// mastd's monitoring address (default: the running local mesh's).
    #[arg(long, env = "MAST_MONITORING_ADDR")]
    pub address: Option<String>,
    /// The state file of the local mesh (default: the most recent running one).
    #[arg(long, value_name = "F")]
    pub state_file: Option<PathBuf>,
}

/// Prints (and opens) the URL.
pub fn run(args: &Args) -> anyhow::Result<i32> {
    let url = url(args)?;
    println!("{url}");
    if args.browser {
        open(&url);
    }
    Ok(0)
}

fn url(args: &Args) -> anyhow::Result<String> {
    let local = if args.address.is_none() {
        state::find(args.state_file.as_deref()).ok().map(|(_, s)| s)
    } else {
        None
    };
    match args.component {
        Component::Mast => {
            if let Some(s) = local.as_ref().filter(|s| !s.dashboard.is_empty()) {
                return Ok(s.dashboard.clone());
            }
            let addr = state::mastd_address(args.address.as_deref());
            let v = http::get_json(&addr, "/debug/endpointz")
                .with_context(|| format!("asking mastd at {addr} where its dashboard is"))?;
            v["dashboard"]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("mastd at {addr} runs no dashboard (--dashboard-addr off, or its port was taken)"))
        }
        Component::Prometheus => local
            .and_then(|s| s.prometheus)
            .context("no Prometheus runs: start the mesh with `mastctl up DIR --prometheus`"),
        Component::Controlz => Ok(format!(
            "http://{}/debug/syncz",
            state::mastd_address(args.address.as_deref())
        )),
        Component::Envoy => {
            let Some(name) = &args.workload else {
                bail!("give the workload: mastctl dashboard envoy <workload>");
            };
            let s = local.context("no local mesh is running: start one with `mastctl up DIR`")?;
            let w = s.workload(name)?;
            let port = w
                .admin
                .with_context(|| format!("{name}'s sidecar has not reported its admin port yet"))?;
            Ok(format!("http://127.0.0.1:{port}/"))
        }
    }
}

/// Starts a browser when the machine has one and a display; says so otherwise.
fn open(url: &str) {
    let display =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    if !display {
        eprintln!("(no display: open the URL above in a browser)");
        return;
    }
    match std::process::Command::new("xdg-open")
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(_) => {}
        Err(e) => eprintln!("(cannot start a browser: {e}; open the URL above)"),
    }
}
