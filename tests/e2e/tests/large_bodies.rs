//! Large bodies streamed through the sidecar both ways without buffering: an upload generated
//! on the fly to an upstream that counts the bytes and answers the count, then a download of
//! the same size counted as it arrives, while the proxy's resident memory is watched
//! (`VmHWM` from `/proc/<pid>/status`, the peak reset just before).
//!
//! The size is `MAST_E2E_BODY_MIB` MiB each way, 1024 (the 1 GiB) by default: about
//! 2.5 s each way on loopback with debug builds on two cores; set it lower on a slow machine. This file has a mesh of its own so
//! that no other scenario's traffic shows in the proxy's memory. Run with `--nocapture` to
//! see sizes, times and memory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use mast_e2e::{Checks, Proxy, SharedMesh, shared, yaml};
use mast_test_support::procfs::reset_peak_rss;
use mast_test_support::{
    BulkServer, Memory, Transfer, download_via_proxy, pid_listening_on, upload_via_proxy,
};

static MESH: SharedMesh = SharedMesh::const_new();

/// mast-proxy's peak RSS bound while streaming, in MiB.
const MAST_PEAK_MIB: u64 = 64;

/// Envoy's allowed growth over its RSS before the transfers, in MiB (generous: measured and
/// printed, not a target).
const ENVOY_GROWTH_MIB: u64 = 256;

/// The body size each way, in MiB (`MAST_E2E_BODY_MIB`, default 1024).
fn body_mib() -> u64 {
    std::env::var("MAST_E2E_BODY_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn rate(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / took.as_secs_f64().max(1e-9)
}

async fn large_bodies_stream_both_ways_with_flat_memory(proxy: Proxy) {
    let mesh = shared(&MESH, proxy).await;
    let bulk = BulkServer::start().unwrap();
    let files = yaml::docs(&[
        yaml::service("bulk-svc", &[("http", 80)]),
        yaml::workload("bulk-svc", "v1", &[("http", bulk.port())]),
    ]);
    mesh.apply("bulk.yaml", &files).await.unwrap();
    let size = body_mib() * 1024 * 1024;
    // Generous for debug builds on two shared cores (≥ 4 MiB/s).
    let timeout = Duration::from_secs(30 + body_mib() / 4);
    let pid = pid_listening_on(mesh.outbound().port()).expect("the sidecar's pid");
    // Warm the route and the upstream pool, then measure from the current RSS.
    let warm = upload_via_proxy(mesh.outbound(), "http://bulk-svc/count", 1024, timeout).await;
    assert!(
        matches!(
            warm,
            Ok(Transfer {
                status: 200,
                bytes: 1024
            })
        ),
        "{warm:?}{}",
        mesh.explain().await
    );
    let before = Memory::of(pid).unwrap();
    let reset = reset_peak_rss(pid).is_ok();

    let started = Instant::now();
    let up = upload_via_proxy(mesh.outbound(), "http://bulk-svc/count", size, timeout).await;
    let up_took = started.elapsed();
    let after_up = Memory::of(pid).unwrap();
    let started = Instant::now();
    let url = format!("http://bulk-svc/download?bytes={size}");
    let down = download_via_proxy(mesh.outbound(), &url, timeout).await;
    let down_took = started.elapsed();
    let after = Memory::of(pid).unwrap();

    println!(
        "{proxy} (pid {pid}): {} MiB up in {up_took:?} ({:.0} MiB/s), down in {down_took:?} \
         ({:.0} MiB/s); RSS before {:.1} MiB, peak during upload {:.1} MiB, peak overall \
         {:.1} MiB, after {:.1} MiB (peak reset: {reset})",
        body_mib(),
        rate(size, up_took),
        rate(size, down_took),
        mib(before.rss_kib),
        mib(after_up.peak_kib),
        mib(after.peak_kib),
        mib(after.rss_kib),
    );
    let expected = Transfer {
        status: 200,
        bytes: size,
    };
    let mut checks = Checks::new();
    checks
        .check(
            "the upstream counted every uploaded byte",
            matches!(up, Ok(t) if t == expected),
        )
        .check(
            "every downloaded byte arrived",
            matches!(down, Ok(t) if t == expected),
        );
    let peak_kib = if reset {
        after.peak_kib
    } else {
        after.peak_kib.max(before.rss_kib)
    };
    match proxy {
        Proxy::Mast => checks.check(
            format!("mast-proxy's peak RSS stays under {MAST_PEAK_MIB} MiB"),
            peak_kib < MAST_PEAK_MIB * 1024,
        ),
        Proxy::Envoy => checks.check(
            format!("Envoy's RSS grows by less than {ENVOY_GROWTH_MIB} MiB"),
            peak_kib.saturating_sub(before.rss_kib) < ENVOY_GROWTH_MIB * 1024,
        ),
    };
    assert!(
        checks.ok(),
        "failed: {:?}\nupload {up:?} in {up_took:?}, download {down:?} in {down_took:?}; \
         upstream counted {} up, {} down; memory before {before:?}, after {after:?}{}",
        checks.failed(),
        bulk.uploaded(),
        bulk.downloaded(),
        mesh.explain().await
    );
}

mast_e2e::both! {
    large_bodies_stream_both_ways_with_flat_memory(multi_thread),
}
