//! `analyze-bench [APPS]`: how long loading and analyzing a large folder takes.
//!
//! Writes a folder of APPS applications (default 250), each a Deployment, a Service, a
//! VirtualService with a header match and a weighted split, and a DestinationRule with two
//! subsets — 4 resources per app, so 1,000 resources by default, plus 25 Namespaces — then
//! times `load_paths` + `analyze` (what `mastctl analyze DIR -A` does) over several runs and
//! prints the median and the spread. Run with `cargo run --release -p mast-bench --bin analyze-bench`.
//! With `MAST_BENCH_KEEP=DIR` the folder is written to DIR and kept, so the whole command
//! can be timed too: `time mastctl analyze -A DIR`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;

const RUNS: usize = 7;

fn app(i: usize) -> String {
    let ns = format!("ns{}", i % 25);
    let mut s = String::new();
    if i < 25 {
        let _ = write!(
            s,
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels:\n    istio-injection: enabled\n---\n"
        );
    }
    let _ = write!(
        s,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app{i}-v1\n  namespace: {ns}\nspec:\n  selector:\n    matchLabels: {{app: app{i}, version: v1}}\n  template:\n    metadata:\n      labels: {{app: app{i}, version: v1}}\n    spec:\n      containers:\n      - name: app\n        image: example/app:1\n        ports: [{{containerPort: 8080, name: http}}]\n---\n\
apiVersion: v1\nkind: Service\nmetadata:\n  name: app{i}\n  namespace: {ns}\nspec:\n  selector: {{app: app{i}}}\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n---\n\
apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: app{i}\n  namespace: {ns}\nspec:\n  hosts: [app{i}]\n  http:\n  - match:\n    - headers:\n        end-user: {{exact: jason}}\n    route:\n    - destination: {{host: app{i}, subset: v1}}\n  - route:\n    - destination: {{host: app{i}, subset: v1}}\n      weight: 80\n    - destination: {{host: app{i}, subset: v1}}\n      weight: 20\n    timeout: 3s\n    retries: {{attempts: 3, perTryTimeout: 1s}}\n---\n\
apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: app{i}\n  namespace: {ns}\nspec:\n  host: app{i}\n  trafficPolicy:\n    connectionPool:\n      tcp: {{maxConnections: 100}}\n  subsets:\n  - name: v1\n    labels: {{version: v1}}\n"
    );
    s
}

fn main() -> anyhow::Result<()> {
    let apps: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()
        .context("APPS must be a number")?
        .unwrap_or(250);
    // MAST_BENCH_KEEP=DIR writes the folder there and keeps it, to time `mastctl analyze DIR`.
    let keep = std::env::var_os("MAST_BENCH_KEEP").map(std::path::PathBuf::from);
    let dir = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("mast-analyze-bench-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir)?;
    for i in 0..apps {
        std::fs::write(dir.join(format!("app{i:04}.yaml")), app(i))?;
    }
    let opts = mast_config::LoadOptions::default();
    let mut times: Vec<(Duration, Duration)> = Vec::new();
    let (mut resources, mut messages) = (0, 0);
    for _ in 0..RUNS {
        let start = Instant::now();
        let loaded = mast_config::load_paths(&[&dir], &opts);
        let loaded_at = start.elapsed();
        let msgs = mast_analyze::analyze(
            &loaded.resources,
            &loaded.diagnostics,
            &mast_analyze::Options::default(),
        );
        times.push((loaded_at, start.elapsed()));
        resources = loaded.resources.len();
        messages = msgs.len();
    }
    if keep.is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    times.sort_by_key(|t| t.1);
    let (load, total) = times[RUNS / 2];
    println!("analyze-bench: {apps} apps, {resources} resources {messages} messages");
    println!(
        "  load + analyze, median of {RUNS}: {:.1} ms (load {:.1} ms, analyze {:.1} ms)",
        ms(total),
        ms(load),
        ms(total - load)
    );
    println!(
        "  fastest {:.1} ms, slowest {:.1} ms",
        ms(times[0].1),
        ms(times[RUNS - 1].1)
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
