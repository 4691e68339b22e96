//! `mastctl`, Mast's command line: istioctl's verbs and flags where they exist. This file
//! only parses arguments and maps outcomes to istioctl's exit codes; each verb lives in
//! its own module under [`cmd`].

mod cmd;
mod exit;
mod http;
mod local;

use clap::{Parser, Subcommand};

/// Mast's command line: validate and analyze Istio configuration, and (in later releases)
/// run and inspect a mesh.
#[derive(Parser)]
#[command(name = "mastctl", version = mast_core::VERSION, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate Istio and Kubernetes resources in files, folders or standard input.
    Validate(cmd::validate::Args),
    /// Analyze configuration for problems, with Istio's message codes (IST0101 …).
    Analyze(cmd::analyze::Args),
    /// Print the version of mastctl.
    Version(cmd::version::Args),
    /// Show whether each proxy runs the latest configuration from mastd.
    #[command(name = "proxy-status", alias = "ps")]
    ProxyStatus(cmd::proxy_status::Args),
    /// Show the configuration a proxy runs (clusters, listeners, routes, endpoints, bootstrap).
    #[command(name = "proxy-config", alias = "pc")]
    ProxyConfig(cmd::proxy_config::Args),
    /// Run a whole mesh on this machine from a folder of YAML (mastd, sidecars, programs).
    Up(cmd::up::Args),
    /// Run a command as if inside a local workload (its sidecar as HTTP proxy).
    Exec(cmd::exec::Args),
    /// Print and open a dashboard: Mast's (service graph), Prometheus, a proxy's admin.
    #[command(alias = "d")]
    Dashboard(cmd::dashboard::Args),
    /// Demo programs: `echo` (an echo server), `load` (a constant-rate load generator).
    X(cmd::x::Args),
    /// Inject the sidecar (istio-init, istio-proxy) into Kubernetes workload YAML.
    #[command(name = "kube-inject")]
    KubeInject(cmd::kube_inject::Args),
    /// Applies a Mast manifest, installing or reconfiguring Mast on a cluster.
    #[command(alias = "apply")]
    Install(cmd::install::apply::Args),
    /// Installs a new Mast control plane revision beside the current one.
    Upgrade(cmd::install::apply::Args),
    /// Uninstalls Mast from a cluster.
    Uninstall(cmd::install::uninstall::Args),
    /// Verifies the Mast installation in a cluster.
    #[command(name = "verify-install")]
    VerifyInstall(cmd::install::verify::Args),
    /// Commands related to Mast manifests.
    Manifest(cmd::install::manifest::Args),
    /// Commands related to Mast configuration profiles.
    Profile(cmd::install::profile::Args),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MAST_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let result = match cli.command {
        Command::Validate(args) => cmd::validate::run(&args),
        Command::Analyze(args) => cmd::analyze::run(&args),
        Command::Version(args) => cmd::version::run(&args),
        Command::ProxyStatus(args) => cmd::proxy_status::run(&args),
        Command::ProxyConfig(args) => cmd::proxy_config::run(&args),
        Command::Up(args) => cmd::up::run(&args),
        Command::Exec(args) => cmd::exec::run(&args),
        Command::Dashboard(args) => cmd::dashboard::run(&args),
        Command::X(args) => cmd::x::run(&args),
        Command::KubeInject(args) => cmd::kube_inject::run(&args),
        Command::Install(args) => cmd::install::apply::run(&args),
        Command::Upgrade(args) => cmd::install::apply::run_upgrade(&args),
        Command::Uninstall(args) => cmd::install::uninstall::run(&args),
        Command::VerifyInstall(args) => cmd::install::verify::run(&args),
        Command::Manifest(args) => cmd::install::manifest::run(&args),
        Command::Profile(args) => cmd::install::profile::run(&args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::exit(exit::UNKNOWN);
        }
    }
}
