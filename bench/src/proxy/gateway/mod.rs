//! `proxy-bench --gateway`: HTTPS termination at an ingress gateway, **Envoy** (via
//! `mast-agent --type router`) vs **mast-proxy** (`--type router`), beside **direct** (the
//! client straight to the upstream over plaintext, for reference), interleaved per rep.
//!
//! One release mastd serves the config of [`setup`]: an Istio Gateway (selector
//! `istio: ingressgateway`, port 443 HTTPS SIMPLE, file certificate for `bench.example` made
//! with rcgen) and a VirtualService routing `bench.example` to `bench-svc` (the proxy
//! benchmark's upstream: 1 KiB per answer). Both gateway processes ([`process`]) run at the
//! same time: each carries `istio=ingressgateway` plus `bench=<kind>`, and its own Service
//! (selecting both labels) maps port 443 to a free port, so each gets the same Gateway on its
//! own listener (Istio's `resolvePorts`). Each gateway is checked once ([`client::check`]).
//!
//! Measured per rep, each path in turn:
//! 1. HTTPS HTTP/1.1 keep-alive and HTTPS HTTP/2 (ALPN h2), closed loop over `--connections`
//!    connections (one request at a time each) for `--duration` s (default 10), with
//!    [`crate::load::closed_loop_tls`]; direct: plaintext HTTP/1.1 and h2c;
//! 2. new TLS connections against each gateway: connect, full handshake (resumption off),
//!    one HTTP/1.1 request with `Connection: close`, read to the close, closed loop
//!    (`--handshake-*` options, client on its own runtime; [`crate::mtls::handshake`] with
//!    [`After::Request`]);
//! 3. CPU (utime + stime) and largest RSS of the gateway process during every run (Envoy:
//!    the Envoy process, not mast-agent; direct: the upstream), idle RSS after the check,
//!    VmHWM at the end ([`crate::procs`]).
//!
//! ```text
//! cargo build --release -p mastd -p mast-agent -p mast-proxy -p mast-bench
//! target/release/proxy-bench --gateway --reps 3
//! ```

#[path = "client.rs"]
pub mod client;
#[path = "process.rs"]
pub mod process;
#[path = "report.rs"]
pub mod report;
#[path = "setup.rs"]
pub mod setup;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use mast_test_support::{MastdProcess, free_port};

use crate::Args;
use crate::load::{self, Endpoint, Proto, Tls};
use crate::mesh::{self, Kind, Tools};
use crate::mtls::handshake::{self, After};
use crate::procs::{self, loadavg, measured};
use crate::upstream::Upstream;
use process::Gateway;
use report::{Phase, Report, Run};
use setup::Certs;

/// The request of a new-connection run.
const CLOSE_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: bench.example\r\nConnection: close\r\n\r\n";

/// Seconds of each keep-alive run (default 10; 2 with --quick).
pub fn keepalive_secs(args: &Args) -> u64 {
    args.duration
        .unwrap_or(if args.quick { 2 } else { 10 })
        .max(1)
}

/// One measured path.
struct Target {
    kind: Kind,
    h1: Endpoint,
    h2: Endpoint,
    /// HTTPS (a gateway) or plaintext (direct).
    tls: bool,
    /// The process whose CPU and memory count.
    pid: u32,
}

/// Runs the gateway benchmark and prints (and optionally writes) the report.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let tools = Tools::find(args.wants("envoy"), args.wants("mast"))?;
    let (root, _temp) = mesh::run_folder(args.keep.as_deref(), "mast-gateway-bench")?;
    let mut report = Report::new(&args, loadavg());
    let upstream = Upstream::spawn().await?;
    let certs = setup::make_certs(&root.join("certs"))?;
    let listen = listener_ports(&args);
    let yaml = setup::mesh_yaml(upstream.h1.port(), &certs, &listen);
    let mastd = mesh::start_mastd_with(&tools, &root, &yaml).await?;
    eprintln!(
        "upstream {} (pid {}), mastd xDS {}, folder {}",
        upstream.h1,
        upstream.pid(),
        mastd.xds_addr(),
        root.display()
    );
    let tls = client::tls(&certs)?;
    let gateways = start_all(&tools, &args, &mastd, &root, &listen, &tls, &mut report).await;
    let targets = targets(&args, &upstream, &gateways);
    warm_up(&args, &targets, &tls, &mut report).await;
    for rep in 0..args.reps {
        let load = loadavg();
        eprintln!("rep {} (load average {load})", rep + 1);
        report.notes.push(format!(
            "load average at the start of rep {}: {load}",
            rep + 1
        ));
        keepalive_rep(&args, &targets, &tls, &mut report).await;
        connections_rep(&args, &gateways, &certs, &mut report).await?;
    }
    for g in &gateways {
        report.memory.push((g.kind, g.idle, procs::read(g.pid)));
    }
    report.load_after = loadavg();
    let text = report.render();
    println!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    }
    drop(gateways);
    drop(mastd);
    drop(upstream);
    Ok(())
}

/// A distinct free listener port per selected gateway kind.
fn listener_ports(args: &Args) -> Vec<(Kind, u16)> {
    let mut out: Vec<(Kind, u16)> = Vec::new();
    for kind in [Kind::Envoy, Kind::Mast] {
        if !args.wants(kind.name()) {
            continue;
        }
        let mut port = free_port();
        for _ in 0..20 {
            if out.iter().all(|&(_, p)| p != port) {
                break;
            }
            port = free_port();
        }
        out.push((kind, port));
    }
    out
}

/// Starts and checks every gateway of `listen`; one that does not start or does not pass its
/// check is reported and left out, and the others are still measured.
async fn start_all(
    tools: &Tools,
    args: &Args,
    mastd: &MastdProcess,
    root: &std::path::Path,
    listen: &[(Kind, u16)],
    tls: &Tls,
    report: &mut Report,
) -> Vec<Gateway> {
    let mut gateways = Vec::new();
    for &(kind, port) in listen {
        match start_and_check(tools, args, mastd, root, (kind, port), tls).await {
            Ok((gateway, line)) => {
                eprintln!("check {line}");
                report.checks.push(line);
                gateways.push(gateway);
            }
            Err(e) => {
                let line = format!("{}: NOT MEASURED: {e:#}", kind.name());
                eprintln!("check {line}");
                report.checks.push(line);
            }
        }
    }
    gateways
}

/// Starts the gateway of `kind` listening on `port` and checks it; with its check line.
async fn start_and_check(
    tools: &Tools,
    args: &Args,
    mastd: &MastdProcess,
    root: &std::path::Path,
    (kind, port): (Kind, u16),
    tls: &Tls,
) -> anyhow::Result<(Gateway, String)> {
    let (tools, root) = (tools.clone(), root.to_path_buf());
    let (workers, xds) = (args.workers, mastd.xds_addr());
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut gateway = tokio::task::spawn_blocking(move || {
        Gateway::start(&tools, kind, workers, xds, (&root, addr))
    })
    .await??;
    let line = client::check(&mut gateway, tls).await?;
    Ok((gateway, line))
}

fn targets(args: &Args, upstream: &Upstream, gateways: &[Gateway]) -> Vec<Target> {
    let mut out = Vec::new();
    if args.wants("direct") {
        let ep = |addr| Endpoint {
            addr,
            absolute: false,
            url: load::URL,
        };
        out.push(Target {
            kind: Kind::Direct,
            h1: ep(upstream.h1),
            h2: ep(upstream.h2),
            tls: false,
            pid: upstream.pid(),
        });
    }
    out.extend(gateways.iter().map(|g| Target {
        kind: g.kind,
        h1: client::endpoint(g),
        h2: client::endpoint(g),
        tls: true,
        pid: g.pid,
    }));
    out
}

/// One closed-loop keep-alive run of `t` over `proto`.
async fn keepalive(
    t: &Target,
    proto: Proto,
    tls: &Tls,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<load::Outcome> {
    match (t.tls, proto) {
        (true, _) => {
            let ep = if proto == Proto::H1 { t.h1 } else { t.h2 };
            load::closed_loop_tls(ep, proto, tls, connections, duration).await
        }
        (false, Proto::H1) => load::closed_loop(t.h1, proto, connections, duration).await,
        (false, Proto::H2) => load::closed_loop(t.h2, proto, connections, duration).await,
    }
}

async fn warm_up(args: &Args, targets: &[Target], tls: &Tls, report: &mut Report) {
    let secs = Duration::from_secs(if args.quick { 1 } else { 2 });
    for t in targets {
        for proto in [Proto::H1, Proto::H2] {
            match keepalive(t, proto, tls, args.connections, secs).await {
                Ok(o) if o.failures() == 0 => {}
                Ok(o) => report.notes.push(format!(
                    "warm-up {} {}: {} failures ({})",
                    t.kind.name(),
                    proto.label(),
                    o.failures(),
                    o.first_error.unwrap_or_default()
                )),
                Err(e) => report.notes.push(format!(
                    "warm-up {} {}: {e:#}",
                    t.kind.name(),
                    proto.label()
                )),
            }
        }
    }
}

/// Every path over HTTP/1.1, then every path over HTTP/2. A run that cannot start (no
/// connection) is noted, and the others go on.
async fn keepalive_rep(args: &Args, targets: &[Target], tls: &Tls, report: &mut Report) {
    let duration = Duration::from_secs(keepalive_secs(args));
    for (proto, phase) in [(Proto::H1, Phase::H1), (Proto::H2, Phase::H2)] {
        for t in targets {
            let load = keepalive(t, proto, tls, args.connections, duration);
            let (out, cpu, rss) = measured(&[t.pid], load).await;
            match out {
                Ok(out) => {
                    let run = Run::requests(t.kind, phase, &out, cpu[0], rss[0]);
                    eprintln!("{}", run.line());
                    report.runs.push(run);
                }
                Err(e) => {
                    let note = format!("{} {}: {e:#}", t.kind.name(), proto.label());
                    eprintln!("{note}");
                    report.notes.push(note);
                }
            }
        }
    }
}

/// New connections against each gateway.
async fn connections_rep(
    args: &Args,
    gateways: &[Gateway],
    certs: &Certs,
    report: &mut Report,
) -> anyhow::Result<()> {
    let limits = handshake::Limits {
        concurrency: args.handshake_concurrency,
        duration: Duration::from_secs(args.handshake_secs.max(1)),
        max_count: args.handshake_max,
    };
    for g in gateways {
        let config = client::config(certs, &[b"http/1.1"])?;
        let after = After::Request(CLOSE_REQUEST);
        let load = handshake::closed_loop(g.addr, config, client::server_name()?, after, limits);
        let on_own_runtime = handshake::on_own_runtime(args.handshake_threads, load);
        let (out, cpu, rss) = measured(&[g.pid], on_own_runtime).await;
        let run = Run::connections(g.kind, &out?, cpu[0], rss[0]);
        eprintln!("{}", run.line());
        report.runs.push(run);
    }
    Ok(())
}
