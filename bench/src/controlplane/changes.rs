//! The change phases: an endpoint change (one WorkloadEntry file rewritten) and a
//! VirtualService change, each timed from the file's rename to every client's ACK of the
//! response carrying it (and to each real Envoy's accepted update), with mastd's CPU per
//! change. Each round starts from an idle mastd so rounds do not overlap.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::config;
use crate::envoys::{self, Sidecar};
use crate::fleet::ProbeKind;
use crate::phases::{Bench, IDLE_TIMEOUT};
use crate::report::{self, Distribution, Row};

/// mastd counts as idle when it used less than this share of one CPU over [`IDLE_WINDOW`].
const IDLE_SHARE: f64 = 0.05;
/// The window over which idleness is judged.
const IDLE_WINDOW: Duration = Duration::from_millis(300);

/// One measured change.
struct Measured {
    dist: Distribution,
    envoys: Vec<Option<Duration>>,
    cpu: Duration,
}

impl Bench {
    /// Waits until mastd is idle (bounded by `max`); returns whether it was reached.
    pub(crate) async fn wait_idle(&self, max: Duration) -> bool {
        let deadline = Instant::now() + max;
        while Instant::now() < deadline {
            let before = self.stats().cpu;
            tokio::time::sleep(IDLE_WINDOW).await;
            let used = self.stats().cpu.saturating_sub(before);
            if used.as_secs_f64() < IDLE_WINDOW.as_secs_f64() * IDLE_SHARE {
                return true;
            }
        }
        false
    }

    fn admins(&self) -> Vec<SocketAddr> {
        self.sidecars.iter().map(Sidecar::admin).collect()
    }

    /// Rewrites one service's WorkloadEntry file per round and times the EDS ACKs.
    pub(crate) async fn endpoint_changes(&mut self) -> anyhow::Result<()> {
        let traffic = self.fleet.traffic();
        let mut rounds = Vec::new();
        for r in 0..self.args.rounds {
            let i = pick_service(r, self.shape.services);
            let ip = config::changed_ip(r + 1);
            let kind = ProbeKind::Endpoints {
                cluster: self.shape.cluster(i),
                marker: ip.clone().into_bytes(),
            };
            let stat = format!(
                "{}\\.update_success$",
                envoys::regex_escape(&self.shape.host(i))
            );
            let (shape, dir) = (self.shape, self.config_dir.clone());
            let m = self
                .measure_change(kind, &stat, true, move || {
                    config::change_endpoint(&dir, &shape, i, &ip)
                })
                .await?;
            eprintln!("endpoint change {r}: {}", m.dist.summary());
            rounds.push(m);
        }
        self.judge_rounds(
            "endpoint change → EDS ACKed by every client",
            &rounds,
            (Duration::from_millis(250), "p99 < 250 ms"),
        );
        self.change_notes("endpoint change", &rounds, traffic);
        Ok(())
    }

    /// Rewrites one VirtualService per round and times the RDS ACKs.
    pub(crate) async fn route_changes(&mut self) -> anyhow::Result<()> {
        let traffic = self.fleet.traffic();
        let mut rounds = Vec::new();
        for r in 0..self.args.route_rounds {
            let settle = r + 1 < self.args.route_rounds;
            let i = pick_service(r + self.args.rounds, self.shape.services);
            let kind = ProbeKind::Route {
                domain: self.shape.host(i),
                marker: config::revision_marker(r + 1).into_bytes(),
            };
            let (shape, dir) = (self.shape, self.config_dir.clone());
            let m = self
                .measure_change(kind, "\\.rds\\..*\\.update_success$", settle, move || {
                    config::change_virtual_service(&dir, &shape, i, r + 1)
                })
                .await?;
            eprintln!("VirtualService change {r}: {}", m.dist.summary());
            rounds.push(m);
        }
        self.judge_rounds(
            "VirtualService change → RDS ACKed by every client",
            &rounds,
            (
                Duration::from_secs(1),
                "p99 < 1 s (as the full-push target)",
            ),
        );
        self.change_notes("VirtualService change", &rounds, traffic);
        Ok(())
    }

    /// Arms the probe, applies `edit`, waits for every client and Envoy to take it, then
    /// (with `settle`) for mastd to go idle, whose CPU is counted as the change's cost.
    async fn measure_change(
        &mut self,
        kind: ProbeKind,
        envoy_stat: &str,
        settle: bool,
        edit: impl FnOnce() -> anyhow::Result<()>,
    ) -> anyhow::Result<Measured> {
        let admins = self.admins();
        let baseline = envoys::stat_sums(&admins, envoy_stat).await;
        let id = self.fleet.set_probe(kind);
        let cpu_before = self.stats().cpu;
        edit()?;
        let written = Instant::now();
        let timeout = Duration::from_secs(self.args.change_timeout);
        let (hits, envoy_hits) = tokio::join!(
            self.fleet.wait_probe(id, timeout),
            envoys::wait_stat_increase(&admins, envoy_stat, &baseline, timeout)
        );
        self.fleet.clear_probe();
        if settle && !self.wait_idle(IDLE_TIMEOUT).await {
            self.notes.push(format!(
                "mastd was still busy {IDLE_TIMEOUT:?} after a change"
            ));
        }
        Ok(Measured {
            dist: Distribution::from_arrivals(written, &hits),
            envoys: envoy_hits
                .iter()
                .map(|h| h.map(|at| at - written))
                .collect(),
            cpu: self.stats().cpu.saturating_sub(cpu_before),
        })
    }

    /// Pools the rounds' ACK times into one table row, judged by p99 against `target`.
    fn judge_rounds(&mut self, what: &str, rounds: &[Measured], target: (Duration, &str)) {
        let pooled =
            Distribution::pooled(&rounds.iter().map(|m| m.dist.clone()).collect::<Vec<_>>());
        let met = pooled.complete() && pooled.quantile(0.99).is_some_and(|d| d < target.0);
        self.rows.push(Row::judged(
            &format!("{what} ({} rounds pooled)", rounds.len()),
            pooled.summary(),
            target.1,
            Some(met),
        ));
    }

    fn change_notes(&mut self, what: &str, rounds: &[Measured], traffic: [(u64, u64); 4]) {
        let per_round: Vec<String> = rounds
            .iter()
            .map(|m| {
                let envoys: Vec<String> = m.envoys.iter().map(|d| report::ms(*d)).collect();
                format!(
                    "{}, real Envoys [{}] ms, mastd CPU {:.2} s",
                    m.dist.summary(),
                    envoys.join(", "),
                    m.cpu.as_secs_f64()
                )
            })
            .collect();
        self.notes.push(format!(
            "{what}: per round [{}]; over the rounds {}",
            per_round.join("; "),
            self.traffic_note(&traffic)
        ));
    }

    /// What the clients received since `since` (from [`crate::fleet::Fleet::traffic`]).
    pub(crate) fn traffic_note(&self, since: &[(u64, u64); 4]) -> String {
        let now = self.fleet.traffic();
        let parts: Vec<String> = ["CDS", "EDS", "LDS", "RDS"]
            .iter()
            .enumerate()
            .map(|(t, name)| {
                format!(
                    "{name} {} responses / {}",
                    now[t].0 - since[t].0,
                    report::bytes(now[t].1 - since[t].1)
                )
            })
            .collect();
        format!("clients received {}", parts.join(", "))
    }
}

/// Which service round `r` edits: spread over the mesh.
fn pick_service(r: usize, services: usize) -> usize {
    (r * 7919 + 13) % services.max(1)
}
