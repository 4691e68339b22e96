//! `mastctl x load`: a constant-rate (open-loop) load generator. Requests are due at fixed
//! times whatever the server does; latency counts from the moment a request is due, so time
//! spent waiting for a busy connection is part of it. Owns the flags, the schedule, the
//! workers (one per connection) and the progress display; the client is in
//! [`super::load_conn`], the numbers in [`super::stats`].

use std::future::Future;
use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinSet;

use super::load_conn::{Conn, Failure, Outcome, Protocol, Target};
use super::stats::{Sample, Stats};

/// `mastctl x load` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The URL to load (`http://host[:port]/path`).
    pub url: String,
    /// Requests per second, sent on schedule whatever the answers take.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// How long to send (`10s`, `1m`); the default when `--requests` is not given is 10s.
    #[arg(long, value_parser = super::parse_duration, conflicts_with = "requests")]
    pub duration: Option<Duration>,
    /// Send this many requests instead of running for a duration.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Connections to open (HTTP/1.1 sends one request at a time on each).
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1.
    #[arg(long)]
    pub http2: bool,
    /// gRPC calls of the echo service (`mastctl x echo`) over h2c.
    #[arg(long, conflicts_with = "http2")]
    pub grpc: bool,
    /// An extra request header, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_parser = parse_header)]
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// HTTP proxy to send through (absolute-form requests, as curl does); default
    /// `$HTTP_PROXY` or `$http_proxy` unless `$NO_PROXY` names the host; `""` for none.
    #[arg(long)]
    pub proxy: Option<String>,
    /// Longest time one request may take before it counts as a timeout.
    #[arg(long, value_parser = super::parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// No progress line, only the summary.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?}: expected Name: value"))?;
    let name = HeaderName::try_from(name.trim()).map_err(|e| format!("{text:?}: {e}"))?;
    let value = HeaderValue::try_from(value.trim()).map_err(|e| format!("{text:?}: {e}"))?;
    Ok((name, value))
}

/// When to stop sending.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// After this long.
    After(Duration),
    /// After this many requests.
    Count(u64),
}

/// The schedule of a run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Requests per second.
    pub rate: f64,
    /// When to stop.
    pub stop: Stop,
    /// Connections (workers).
    pub connections: usize,
}

/// How progress is shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Rewritten in place on a terminal.
    Terminal,
    /// One line per second (logs, pipes).
    Lines,
    /// Not shown.
    Off,
}

impl Args {
    /// The schedule and the target from the flags and the environment.
    pub fn plan_and_target(&self) -> anyhow::Result<(Plan, Target)> {
        if !(self.rate.is_finite() && self.rate > 0.0) {
            bail!("--rate must be a positive number of requests per second");
        }
        if self.connections == 0 {
            bail!("--connections must be at least 1");
        }
        let uri: Uri = self
            .url
            .parse()
            .with_context(|| format!("{:?} is not a URL", self.url))?;
        let host_port = host_port(&uri)?;
        let proxy = match &self.proxy {
            Some(p) => Some(p.clone()),
            None => env_proxy(uri.host().unwrap_or("")),
        }
        .filter(|p| !p.is_empty())
        .map(|p| proxy_address(&p))
        .transpose()?;
        let protocol = match (self.grpc, self.http2) {
            (true, _) => Protocol::Grpc,
            (false, true) => Protocol::Http2,
            (false, false) => Protocol::Http1,
        };
        let target = Target {
            connect: proxy.clone().unwrap_or(host_port),
            uri,
            proxy,
            protocol,
            headers: self.headers.iter().cloned().collect::<HeaderMap>(),
            timeout: self.timeout,
        };
        let stop = match (self.requests, self.duration) {
            (Some(n), _) => Stop::Count(n),
            (None, d) => Stop::After(d.unwrap_or(Duration::from_secs(10))),
        };
        let plan = Plan {
            rate: self.rate,
            stop,
            connections: self.connections,
        };
        Ok((plan, target))
    }
}

/// `host:port` of an `http://` URL (port 80 by default).
fn host_port(uri: &Uri) -> anyhow::Result<String> {
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => bail!("{uri}: https is not supported (the mesh's sidecars add mTLS)"),
        _ => bail!("{uri}: expected an http:// URL"),
    }
    let host = uri.host().context("the URL has no host")?;
    Ok(format!("{host}:{}", uri.port_u16().unwrap_or(80)))
}

/// The proxy `$HTTP_PROXY`/`$http_proxy` names for `host`, unless `$NO_PROXY`/`$no_proxy` lists it.
fn env_proxy(host: &str) -> Option<String> {
    let var = |names: [&str; 2]| names.iter().find_map(|n| std::env::var(n).ok());
    let proxy = var(["HTTP_PROXY", "http_proxy"])?;
    let no_proxy = var(["NO_PROXY", "no_proxy"]).unwrap_or_default();
    let excluded = no_proxy.split(',').map(str::trim).any(|entry| {
        let entry = entry.trim_start_matches('.');
        !entry.is_empty() && (entry == "*" || host == entry || host.ends_with(&format!(".{entry}")))
    });
    (!excluded).then_some(proxy)
}

/// `host:port` of a proxy given as `http://host:port[/]` or `host:port` (port 1080 by default,
/// as curl).
fn proxy_address(proxy: &str) -> anyhow::Result<String> {
    let with_scheme = if proxy.contains("://") {
        proxy.to_owned()
    } else {
        format!("http://{proxy}")
    };
    let uri: Uri = with_scheme
        .parse()
        .with_context(|| format!("proxy {proxy:?} is not a URL"))?;
    if uri.scheme_str() != Some("http") {
        bail!("proxy {proxy:?}: only http:// proxies are supported");
    }
    let host = uri
        .host()
        .with_context(|| format!("proxy {proxy:?} has no host"))?;
    Ok(format!("{host}:{}", uri.port_u16().unwrap_or(1080)))
}

/// Runs the load as the flags say, prints the summary; exit code 1 when any request failed.
pub async fn run(args: &Args) -> anyhow::Result<i32> {
    let (plan, target) = args.plan_and_target()?;
    let how_long = match plan.stop {
        Stop::After(d) => format!("for {}", super::fmt_duration(d)),
        Stop::Count(n) => format!("{n} requests"),
    };
    let via = target
        .proxy
        .as_ref()
        .map(|p| format!(" via proxy {p}"))
        .unwrap_or_default();
    eprintln!(
        "mastctl x load: {} at {}/s, {how_long}, {} over {} connection(s){via}",
        target.uri, plan.rate, target.protocol, plan.connections
    );
    let progress = if args.quiet {
        Progress::Off
    } else if std::io::stderr().is_terminal() {
        Progress::Terminal
    } else {
        Progress::Lines
    };
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let stats = execute(plan, Arc::new(target), progress, stop).await?;
    let _ = write!(std::io::stdout().lock(), "{}", stats.summary());
    Ok(if stats.failed() == 0 { 0 } else { 1 })
}

/// Runs the schedule against the target until it ends or `stop` resolves, and returns the
/// numbers (requests still running a timeout after the last one was due count as unfinished).
pub async fn execute(
    plan: Plan,
    target: Arc<Target>,
    progress: Progress,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<Stats> {
    let (job_tx, job_rx) = mpsc::unbounded_channel::<Instant>();
    let jobs = Arc::new(Mutex::new(job_rx));
    let (sample_tx, sample_rx) = mpsc::unbounded_channel::<Sample>();
    let started = Instant::now();
    let stats = Stats::new(started).context("latency histogram")?;
    let collector = tokio::spawn(collect(sample_rx, stats, progress));
    let mut workers = JoinSet::new();
    for _ in 0..plan.connections {
        let (target, jobs, samples) = (target.clone(), jobs.clone(), sample_tx.clone());
        if target.protocol == Protocol::Http1 {
            workers.spawn(h1_worker(target, jobs, samples));
        } else {
            workers.spawn(h2_worker(target, jobs, samples));
        }
    }
    drop(sample_tx);
    let mut due = 0;
    tokio::select! {
        () = dispatch(plan, started, job_tx, &mut due) => {}
        () = stop => {}
    }
    let dispatched = Instant::now();
    let drain = async { while workers.join_next().await.is_some() {} };
    if tokio::time::timeout(target.timeout + Duration::from_secs(1), drain)
        .await
        .is_err()
    {
        workers.shutdown().await;
    }
    let mut stats = collector.await.context("the collector task failed")?;
    stats.finished_at(dispatched);
    stats.add_unfinished(due.saturating_sub(stats.total()));
    Ok(stats)
}

/// Queues one job per due request, on schedule, counting them in `due`; with a duration,
/// returns when it has passed.
async fn dispatch(
    plan: Plan,
    started: Instant,
    jobs: mpsc::UnboundedSender<Instant>,
    due: &mut u64,
) {
    loop {
        let offset = Duration::from_secs_f64(*due as f64 / plan.rate);
        match plan.stop {
            Stop::Count(n) if *due >= n => return,
            Stop::After(d) if offset >= d => {
                tokio::time::sleep_until((started + d).into()).await;
                return;
            }
            _ => {}
        }
        tokio::time::sleep_until((started + offset).into()).await;
        // Due from now: timer slack is not the server's latency, a queue is.
        if jobs.send(Instant::now()).is_err() {
            return;
        }
        *due += 1;
    }
}

type Jobs = Arc<Mutex<mpsc::UnboundedReceiver<Instant>>>;

/// The moment the next request became due; `None` when the run is over.
async fn next_job(jobs: &Jobs) -> Option<Instant> {
    jobs.lock().await.recv().await
}

/// One HTTP/1.1 connection: takes due requests one at a time, reconnecting when needed.
async fn h1_worker(target: Arc<Target>, jobs: Jobs, samples: mpsc::UnboundedSender<Sample>) {
    let mut conn: Option<Conn> = None;
    while let Some(due) = next_job(&jobs).await {
        let sent = tokio::time::timeout(target.timeout, send_on(&target, &mut conn)).await;
        let outcome = sent.unwrap_or_else(|_| {
            conn = None;
            Outcome::Failed(Failure::Timeout)
        });
        let latency = due.elapsed();
        let _ = samples.send(Sample { latency, outcome });
    }
}

/// Sends on `conn`, opening it first if needed; forgets it when it broke. A kept-alive
/// connection the server closed before the request went out is replaced once.
async fn send_on(target: &Target, conn: &mut Option<Conn>) -> Outcome {
    for _ in 0..2 {
        let fresh = conn.as_ref().is_none_or(Conn::is_closed);
        if fresh {
            match Conn::open(target).await {
                Ok(c) => *conn = Some(c),
                Err(f) => return Outcome::Failed(f),
            }
        }
        let Some(c) = conn.as_mut() else {
            return Outcome::Failed(Failure::Connect);
        };
        match c.send(target).await {
            Some(outcome) => {
                if outcome == Outcome::Failed(Failure::Protocol) {
                    *conn = None;
                }
                return outcome;
            }
            None if fresh => break,
            None => *conn = None,
        }
    }
    *conn = None;
    Outcome::Failed(Failure::Protocol)
}

/// One HTTP/2 connection: each due request becomes a stream of its own, so answers do not
/// wait for each other.
async fn h2_worker(target: Arc<Target>, jobs: Jobs, samples: mpsc::UnboundedSender<Sample>) {
    let mut conn: Option<Conn> = None;
    let mut inflight = JoinSet::new();
    loop {
        tokio::select! {
            job = next_job(&jobs) => {
                let Some(due) = job else {
                    break;
                };
                if conn.as_ref().is_none_or(Conn::is_closed) {
                    let opened = tokio::time::timeout(target.timeout, Conn::open(&target)).await;
                    match opened.unwrap_or(Err(Failure::Timeout)) {
                        Ok(c) => conn = Some(c),
                        Err(f) => {
                            let latency = due.elapsed();
                            let _ = samples.send(Sample { latency, outcome: Outcome::Failed(f) });
                            continue;
                        }
                    }
                }
                let mut c = conn.as_ref().and_then(Conn::h2_clone);
                let (target, samples) = (target.clone(), samples.clone());
                inflight.spawn(async move {
                    let sent = match c.as_mut() {
                        Some(c) => {
                            let sent = tokio::time::timeout(target.timeout, c.send(&target)).await;
                            sent.map(|o| o.unwrap_or(Outcome::Failed(Failure::Protocol)))
                        }
                        None => Ok(Outcome::Failed(Failure::Connect)),
                    };
                    let outcome = sent.unwrap_or(Outcome::Failed(Failure::Timeout));
                    let _ = samples.send(Sample { latency: due.elapsed(), outcome });
                });
            }
            Some(_) = inflight.join_next(), if !inflight.is_empty() => {}
        }
    }
    while inflight.join_next().await.is_some() {}
}

/// Counts samples until every worker is done, showing progress once a second.
async fn collect(
    mut samples: mpsc::UnboundedReceiver<Sample>,
    mut stats: Stats,
    progress: Progress,
) -> Stats {
    let started = stats.started();
    let second = Duration::from_secs(1);
    let mut tick = tokio::time::interval_at((started + second).into(), second);
    loop {
        tokio::select! {
            sample = samples.recv() => match sample {
                Some(s) => stats.record(s),
                None => break,
            },
            _ = tick.tick(), if progress != Progress::Off => {
                let line = stats.progress_line(second);
                let mut err = std::io::stderr().lock();
                let _ = if progress == Progress::Terminal {
                    write!(err, "\r\x1b[K{line}")
                } else {
                    writeln!(err, "{line}")
                };
            }
        }
    }
    if progress == Progress::Terminal {
        eprintln!();
    }
    stats
}
