//! A CPU profile of mast-proxy under load: `perf record --call-graph dwarf -p <pid>` for a few
//! seconds while the open-loop generator sends HTTP/1.1 at 5,000 req/s through it, then
//! `perf report`: self time by shared object, by component (crate) and by symbol, and
//! user-space symbols with their callees. `perf.data` stays in the run's folder (`--keep`)
//! for `perf report -i … -g`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::load::{self, Proto};
use crate::mesh::Target;

/// The rate profiled at, req/s.
pub const RATE: u64 = 5_000;

/// Profiles `target` for `secs` seconds; returns the report text.
pub async fn run(
    target: Target,
    dir: &Path,
    secs: u64,
    connections: usize,
) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir)?;
    let data = dir.join("perf.data");
    let load = tokio::spawn(load::open_loop(
        target.h1,
        Proto::H1,
        RATE,
        connections,
        Duration::from_secs(secs + 2),
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let pid = target.pid.to_string();
    let record_data = data.clone();
    let recorded = tokio::task::spawn_blocking(move || {
        Command::new("perf")
            .args([
                "record",
                "-F",
                "499",
                "--call-graph",
                "dwarf,16384",
                "-p",
                &pid,
                "-o",
            ])
            .arg(&record_data)
            .args(["--", "sleep", &secs.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
    })
    .await?
    .context("running perf record")?;
    let outcome = load.await?;
    if !recorded.status.success() {
        bail!(
            "perf record failed: {}",
            String::from_utf8_lossy(&recorded.stderr).trim()
        );
    }
    let mut text = String::new();
    if let Ok(o) = &outcome {
        text.push_str(&format!(
            "load during the profile: {:.0} req/s, p50 {} µs, p99 {} µs, {} failed\n\n",
            o.rate(),
            o.at(0.5),
            o.at(0.99),
            o.failures()
        ));
    }
    text.push_str("by shared object (self):\n");
    text.push_str(&report(
        &data,
        &["--no-children", "--sort", "dso"],
        12,
        false,
    )?);
    let symbols = report(
        &data,
        &["--no-children", "--sort", "dso,symbol"],
        usize::MAX,
        false,
    )?;
    text.push_str("\nby component (self; symbols grouped by crate / library):\n");
    text.push_str(&components(&symbols, 20));
    text.push_str("\nby symbol (self):\n");
    text.push_str(&symbols.lines().take(45).collect::<Vec<_>>().join("\n"));
    text.push_str("\n\nuser-space symbols with their callees (children, DWARF call graphs):\n");
    text.push_str(&report(
        &data,
        &["--children", "--sort", "symbol"],
        45,
        true,
    )?);
    Ok(text)
}

/// Sums `perf report` lines (`pct dso [.] symbol`) by component: the kernel, a library, or
/// the crate a Rust symbol belongs to (mimalloc's `mi_`/`_mi_` functions as `mimalloc`).
fn components(symbols: &str, max: usize) -> String {
    let mut sums: Vec<(String, f64)> = Vec::new();
    for line in symbols.lines() {
        let mut parts = line.split_whitespace();
        let Some(pct) = parts
            .next()
            .and_then(|p| p.trim_end_matches('%').parse::<f64>().ok())
        else {
            continue;
        };
        let dso = parts.next().unwrap_or("");
        let kind = parts.next().unwrap_or("");
        let symbol: String = parts.collect::<Vec<_>>().join(" ");
        let name = component(dso, kind, &symbol);
        match sums.iter_mut().find(|(n, _)| *n == name) {
            Some((_, sum)) => *sum += pct,
            None => sums.push((name, pct)),
        }
    }
    sums.sort_by(|a, b| b.1.total_cmp(&a.1));
    sums.iter()
        .take(max)
        .map(|(n, p)| format!("{p:>7.2}%  {n}\n"))
        .collect()
}

fn component(dso: &str, kind: &str, symbol: &str) -> String {
    if kind == "[k]" || dso.contains("kernel") {
        return "kernel".into();
    }
    if dso != "mast-proxy" {
        return dso.to_owned();
    }
    let s = symbol.trim_start_matches('<').trim_start_matches('&');
    if s.starts_with("mi_") || s.starts_with("_mi_") {
        return "mimalloc".into();
    }
    let mut segments = s.split("::");
    let first = segments.next().unwrap_or(s);
    match first {
        "core" | "alloc" | "std" => format!("{first}::{}", segments.next().unwrap_or("")),
        "mast_proxy" => format!("mast_proxy::{}", segments.next().unwrap_or("")),
        _ if s.contains("::") => first.to_owned(),
        _ => format!("mast-proxy (other: {first})"),
    }
}

/// `perf report --stdio` with `options`: the first `lines` entries (without kernel symbols
/// when `user_only`), padding trimmed.
fn report(data: &Path, options: &[&str], lines: usize, user_only: bool) -> anyhow::Result<String> {
    let out = Command::new("perf")
        .args([
            "report",
            "--stdio",
            "-g",
            "none",
            "--percent-limit",
            "0.2",
            "-i",
        ])
        .arg(data)
        .args(options)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .context("running perf report")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kept: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter(|l| !user_only || !l.contains("[k]"))
        .map(|l| {
            l.trim_end_matches(|c: char| c == '-' || c.is_whitespace())
                .to_owned()
        })
        .take(lines)
        .collect();
    Ok(kept.join("\n") + "\n")
}
