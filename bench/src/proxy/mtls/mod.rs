//! `proxy-bench --mtls`: the path a meshed request takes — client → **client sidecar**
//! (outbound listener, ports capture) → **mutual TLS** → **server sidecar** (inbound listener,
//! namespace-wide STRICT PeerAuthentication) → upstream — for Envoy (via mast-agent) and
//! mast-proxy pairs, beside **direct** (client → upstream), interleaved per rep.
//!
//! Both sidecars of a pair get workload certificates from the release mastd's CA (tokens
//! made by `mastd token`, given as `--ca-token-file`, with `--service-account`). Each pair is
//! checked once ([`pair::Pair::check`]), then measured: HTTP/1.1 keep-alive latency at fixed
//! rates (open loop, [`crate::load`]), closed-loop maximum throughput, CPU seconds of the two
//! sidecars together per 10,000 requests, RSS of each sidecar, and new TLS handshakes per
//! second against the server sidecar's inbound port ([`handshake`]).
//!
//! ```text
//! target/release/proxy-bench --mtls --reps 2 --duration 10 --throughput-duration 5
//! ```

#[path = "handshake.rs"]
pub mod handshake;
#[path = "pair.rs"]
pub mod pair;
#[path = "report.rs"]
pub mod report;

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use mast_test_support::free_port;

use crate::Args;
use crate::load::{self, Endpoint, Proto};
use crate::mesh::{Kind, Tools};
use crate::procs::{loadavg, measured};
use crate::upstream::Upstream;
use pair::Pair;
use report::{HandshakeRun, Report, Run};

/// One measured data path.
#[derive(Debug, Clone)]
struct Target {
    kind: Kind,
    ep: Endpoint,
    /// The processes whose CPU counts (direct: the upstream; a pair: client, server).
    pids: Vec<u32>,
}

/// Runs the mTLS benchmark and prints (and optionally writes) the report.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let tools = Tools::find(args.wants("envoy"), args.wants("mast"))?;
    let (root, _temp) = crate::mesh::run_folder(args.keep.as_deref(), "mast-mtls-bench")?;
    let mut report = Report::new(&args, loadavg());
    let upstream = Upstream::spawn().await?;
    let kinds: Vec<Kind> = [Kind::Envoy, Kind::Mast, Kind::MastNoMetrics]
        .into_iter()
        .filter(|k| args.wants(k.name()))
        .collect();
    let listen: Vec<(Kind, u16)> = kinds.iter().map(|&k| (k, free_port())).collect();
    let mastd = crate::mesh::start_mastd_with(&tools, &root, &pair::mesh_yaml(&listen)).await?;
    eprintln!(
        "upstream {} (pid {}), mastd xDS {}, folder {}",
        upstream.h1,
        upstream.pid(),
        mastd.xds_addr(),
        root.display()
    );
    let mut pairs = Vec::new();
    for &(kind, port) in &listen {
        let mut pair = Pair::start(
            &tools,
            &mastd,
            kind,
            args.workers,
            (upstream.h1.port(), port),
        )
        .await?;
        let line = pair.check().await?;
        eprintln!("check {line}");
        report.checks.push(line);
        pairs.push(pair);
    }
    let targets = targets(&args, &upstream, &pairs);
    let bundle = client_bundle(&mastd.options().ca_dir())?;
    let config = handshake::client_config(&bundle)?;
    for pair in &pairs {
        let name = handshake::server_name(pair::host(pair.kind))?;
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::clone(&config));
        handshake::one(
            pair.inbound,
            &connector,
            &name,
            handshake::After::CloseNotify,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{}: one handshake: {e}", pair.kind.name()))?;
    }
    warm_up(&args, &targets, &mut report).await;
    for rep in 0..args.reps {
        report.notes.push(format!(
            "load average at the start of rep {}: {}",
            rep + 1,
            loadavg()
        ));
        latency_rep(&args, &targets, &mut report).await?;
        throughput_rep(&args, &targets, &mut report).await?;
        handshake_rep(&args, &pairs, &config, &mut report).await?;
    }
    for pair in &pairs {
        report.memory(pair);
    }
    report.load_after = loadavg();
    let text = report.render();
    println!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    }
    drop(pairs);
    drop(mastd);
    drop(upstream);
    Ok(())
}

/// A mesh certificate for the client's service account from mastd's CA folder.
fn client_bundle(ca_dir: &Path) -> anyhow::Result<mast_ca::CertBundle> {
    let ca = mast_ca::CertificateAuthority::load_or_create(ca_dir, mast_ca::CaOptions::default())
        .with_context(|| format!("loading mastd's CA from {}", ca_dir.display()))?;
    let id = mast_core::SpiffeId::new("cluster.local", "default", pair::CLIENT_SA)?;
    Ok(ca.issue_bundle(&id, Duration::from_secs(3600))?)
}

fn targets(args: &Args, upstream: &Upstream, pairs: &[Pair]) -> Vec<Target> {
    let mut out = Vec::new();
    if args.wants("direct") {
        out.push(Target {
            kind: Kind::Direct,
            ep: Endpoint {
                addr: upstream.h1,
                absolute: false,
                url: load::URL,
            },
            pids: vec![upstream.pid()],
        });
    }
    out.extend(pairs.iter().map(|p| Target {
        kind: p.kind,
        ep: p.endpoint(),
        pids: p.pids().to_vec(),
    }));
    out
}

async fn warm_up(args: &Args, targets: &[Target], report: &mut Report) {
    let secs = Duration::from_secs(if args.quick { 1 } else { 2 });
    for t in targets {
        match load::open_loop(t.ep, Proto::H1, 1000, args.connections, secs).await {
            Ok(o) if o.failures() == 0 => {}
            Ok(o) => report.notes.push(format!(
                "warm-up {}: {} failures ({})",
                t.kind.name(),
                o.failures(),
                o.first_error.unwrap_or_default()
            )),
            Err(e) => report
                .notes
                .push(format!("warm-up {}: {e:#}", t.kind.name())),
        }
    }
}

async fn latency_rep(args: &Args, targets: &[Target], report: &mut Report) -> anyhow::Result<()> {
    let duration = Duration::from_secs(args.latency_secs().max(1));
    for &rate in &args.rates {
        for t in targets {
            let load = load::open_loop(t.ep, Proto::H1, rate, args.connections, duration);
            let (out, cpu, rss) = measured(&t.pids, load).await;
            let out = out.with_context(|| format!("{} {rate}/s", t.kind.name()))?;
            let run = Run::new(t.kind, rate, &out, cpu, rss);
            eprintln!("{}", run.line());
            report.runs.push(run);
        }
    }
    Ok(())
}

async fn throughput_rep(
    args: &Args,
    targets: &[Target],
    report: &mut Report,
) -> anyhow::Result<()> {
    let duration = Duration::from_secs(args.throughput_secs().max(1));
    for t in targets {
        let load = load::closed_loop(t.ep, Proto::H1, args.throughput_connections, duration);
        let (out, cpu, rss) = measured(&t.pids, load).await;
        let out = out.with_context(|| format!("{} throughput", t.kind.name()))?;
        let run = Run::new(t.kind, 0, &out, cpu, rss);
        eprintln!("{}", run.line());
        report.runs.push(run);
    }
    Ok(())
}

async fn handshake_rep(
    args: &Args,
    pairs: &[Pair],
    config: &std::sync::Arc<rustls::ClientConfig>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let duration = Duration::from_secs(args.handshake_secs.max(1));
    for pair in pairs {
        let name = handshake::server_name(pair::host(pair.kind))?;
        let limits = handshake::Limits {
            concurrency: args.handshake_concurrency,
            duration,
            max_count: args.handshake_max,
        };
        let load = handshake::closed_loop(
            pair.inbound,
            std::sync::Arc::clone(config),
            name,
            handshake::After::CloseNotify,
            limits,
        );
        let on_own_runtime = handshake::on_own_runtime(args.handshake_threads, load);
        let server = pair.server.pid();
        let (out, cpu, rss) = measured(&[server], on_own_runtime).await;
        let run = HandshakeRun::new(pair.kind, &out?, cpu[0], rss[0]);
        eprintln!("{}", run.line());
        report.handshakes.push(run);
    }
    Ok(())
}
