//! `gen-bench`: how long `mast_xds::generate` takes for one proxy in a large mesh.
//!
//! Builds in memory the control-plane benchmark's mesh (see `controlplane/config.rs`):
//! SERVICES Kubernetes Services over 20 namespaces, each with one HTTP port 80, a cluster IP,
//! ENDPOINTS WorkloadEntries (versions v1/v2 alternating), a VirtualService splitting 90/10
//! over subsets v1/v2 and setting a request header, and a DestinationRule with the two
//! subsets. The resources go through the registry's `ConfigStore` (validation, ordering) and
//! `MeshSnapshot::build`, as in mastd. Then, for a ports-capture sidecar and an iptables
//! sidecar in `ns00`, it times `generate` per type URL over RUNS runs and prints the median
//! (and the minimum) in milliseconds, with the size of the output.
//!
//! `--dump FILE` writes every generated resource as canonical JSON (object keys sorted, so
//! protobuf maps compare whatever order they were encoded in), one per line; `--check FILE`
//! compares the output with such a file and fails on the first difference: the equivalence
//! check for optimisations that must not change the output.
//!
//! Run: `cargo run --release -p mast-bench --bin gen-bench -- --services 1000 --runs 10`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
use mast_xds::{NamedResource, PUSH_ORDER};
use serde_json::{Value, json};

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(about = "Times xDS generation for one proxy in a large mesh")]
struct Args {
    /// Number of services.
    #[arg(long, default_value_t = 1000)]
    services: usize,
    /// WorkloadEntries per service.
    #[arg(long, default_value_t = 5)]
    endpoints_per_service: usize,
    /// Namespaces the services are spread over.
    #[arg(long, default_value_t = 20)]
    namespaces: usize,
    /// Timed runs per type (the median is reported).
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Write the generated resources as canonical JSON to this file.
    #[arg(long)]
    dump: Option<PathBuf>,
    /// Compare the generated resources with a file written by `--dump`.
    #[arg(long)]
    check: Option<PathBuf>,
    /// Only generate for this proxy (`ports` or `iptables`); both by default.
    #[arg(long)]
    only: Option<String>,
}

fn service_yaml(name: &str, ns: &str, i: usize) -> String {
    let vip = format!("10.96.{}.{}", (i >> 8) & 0xff, i & 0xff);
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{app: {name}}}\nspec:\n  clusterIP: {vip}\n  selector: {{app: {name}}}\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n---\n\
apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  hosts: [{name}]\n  http:\n  - headers:\n      request:\n        set: {{x-mast-bench-rev: bench-rev-0}}\n    route:\n    - destination: {{host: {name}, subset: v1}}\n      weight: 90\n    - destination: {{host: {name}, subset: v2}}\n      weight: 10\n---\n\
apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  host: {name}\n  subsets:\n  - name: v1\n    labels: {{version: v1}}\n  - name: v2\n    labels: {{version: v2}}\n---\n"
    )
}

fn workloads_yaml(name: &str, ns: &str, i: usize, endpoints: usize, out: &mut String) {
    for j in 0..endpoints {
        let n = i * endpoints + j + 1;
        let ip = format!("10.{}.{}.{}", (n >> 16) & 0x7f, (n >> 8) & 0xff, n & 0xff);
        let version = if j % 2 == 0 { "v1" } else { "v2" };
        let _ = write!(
            out,
            "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: {name}-{j}\n  namespace: {ns}\nspec:\n  address: {ip}\n  labels: {{app: {name}, version: {version}}}\n  serviceAccount: {name}\n---\n"
        );
    }
}

/// The whole mesh as one YAML text.
fn mesh_yaml(args: &Args) -> String {
    let namespaces = args.namespaces.max(1);
    let mut text = String::new();
    for n in 0..namespaces.min(args.services) {
        let _ = write!(
            text,
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns{n:02}\n---\n"
        );
    }
    for i in 0..args.services {
        let (name, ns) = (format!("svc{i:04}"), format!("ns{:02}", i % namespaces));
        text.push_str(&service_yaml(&name, &ns, i));
        workloads_yaml(&name, &ns, i, args.endpoints_per_service, &mut text);
    }
    text
}

/// The snapshot mastd would build from the mesh.
fn snapshot(args: &Args) -> anyhow::Result<MeshSnapshot> {
    let text = mesh_yaml(args);
    let loaded = mast_config::load_str(&text, "mesh.yaml", &mast_config::LoadOptions::default());
    if let Some(d) = loaded.diagnostics.first() {
        bail!("the generated mesh does not load: {d:?}");
    }
    let store = mast_registry::ConfigStore::new();
    let state = store.set_file("mesh.yaml", loaded);
    if state.rejected > 0 {
        bail!(
            "{} resources rejected: {:?}",
            state.rejected,
            state.diagnostics.first()
        );
    }
    Ok(MeshSnapshot::build(
        &state.resources,
        SnapshotOptions::default(),
        1,
    ))
}

/// The two sidecars timed: ports capture and iptables capture, both client-1 in ns00.
fn proxies() -> anyhow::Result<Vec<(&'static str, ProxyNode)>> {
    let id = "sidecar~127.0.0.1~client-1.ns00~ns00.svc.cluster.local";
    let ports = json!({
        "NAMESPACE": "ns00",
        "MAST_CAPTURE_MODE": "ports",
        "MAST_OUTBOUND_PORT": "15001",
    });
    let iptables_id = "sidecar~10.255.0.1~client-1.ns00~ns00.svc.cluster.local";
    let iptables = json!({"NAMESPACE": "ns00"});
    Ok(vec![
        ("ports", ProxyNode::parse(id, &ports)?),
        ("iptables", ProxyNode::parse(iptables_id, &iptables)?),
    ])
}

/// How long building the messages of `type_url` takes, without packing them.
fn build_only(snap: &MeshSnapshot, proxy: &ProxyNode, type_url: &str) -> Duration {
    let start = Instant::now();
    match type_url {
        mast_xds::CLUSTER_TYPE => drop(mast_xds::cluster::clusters(snap, proxy)),
        mast_xds::ENDPOINT_TYPE => drop(mast_xds::endpoint::endpoints(snap, proxy)),
        mast_xds::LISTENER_TYPE => drop(mast_xds::listener::listeners(snap, proxy)),
        _ => drop(mast_xds::route::routes(snap, proxy)),
    }
    start.elapsed()
}

/// The number of resources of `type_url`.
fn resource_count(snap: &MeshSnapshot, proxy: &ProxyNode, type_url: &str) -> usize {
    mast_xds::generate(snap, proxy, type_url).len()
}

fn short_type(type_url: &str) -> &str {
    type_url.rsplit('.').next().unwrap_or(type_url)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Times every type for one proxy and prints a table row per type.
fn time_proxy(snap: &MeshSnapshot, label: &str, proxy: &ProxyNode, runs: usize) {
    println!("{label} sidecar:");
    let (mut total_median, mut total_min) = (Duration::ZERO, Duration::ZERO);
    for type_url in PUSH_ORDER {
        let mut times = Vec::with_capacity(runs);
        let mut out: Vec<NamedResource> = Vec::new();
        for _ in 0..runs.max(1) {
            let start = Instant::now();
            out = mast_xds::generate(snap, proxy, type_url);
            times.push(start.elapsed());
        }
        let bytes: usize = out.iter().map(|r| r.resource.value.len()).sum();
        drop(out);
        let min = times.iter().min().copied().unwrap_or_default();
        let med = median(times);
        total_median += med;
        total_min += min;
        let build = median(
            (0..runs.max(1))
                .map(|_| build_only(snap, proxy, type_url))
                .collect(),
        );
        println!(
            "  {:<22} median {:>8.2} ms  min {:>8.2} ms  (unpacked {:>7.2} ms)  {:>6} resources {:>10} bytes",
            short_type(type_url),
            ms(med),
            ms(min),
            ms(build),
            resource_count(snap, proxy, type_url),
            bytes
        );
    }
    println!(
        "  {:<22} median {:>8.2} ms  min {:>8.2} ms",
        "total",
        ms(total_median),
        ms(total_min)
    );
}

/// A JSON value with every object's keys sorted (protobuf maps have no order).
fn canonical(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

/// Every resource of every type for `proxy`, one canonical JSON line each.
fn dump_lines(snap: &MeshSnapshot, label: &str, proxy: &ProxyNode) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    for type_url in PUSH_ORDER {
        for r in mast_xds::generate(snap, proxy, type_url) {
            let json = mast_xds_json::any_to_json(&r.resource)
                .with_context(|| format!("decoding {}", r.name))?;
            lines.push(format!(
                "{label}\t{}\t{}\t{}",
                short_type(type_url),
                r.name,
                canonical(json)
            ));
        }
    }
    Ok(lines)
}

fn check(lines: &[String], path: &PathBuf) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let expected: Vec<&str> = text.lines().collect();
    for (i, (got, want)) in lines.iter().zip(&expected).enumerate() {
        if got != want {
            let at = got
                .bytes()
                .zip(want.bytes())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            let from = at.saturating_sub(200);
            bail!(
                "resource {i} differs at byte {at}:\n  got  …{}\n  want …{}",
                got.get(from..(at + 200).min(got.len())).unwrap_or(got),
                want.get(from..(at + 200).min(want.len())).unwrap_or(want)
            );
        }
    }
    if lines.len() != expected.len() {
        bail!("{} resources, expected {}", lines.len(), expected.len());
    }
    println!(
        "check: {} resources identical to {}",
        lines.len(),
        path.display()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let start = Instant::now();
    let snap = snapshot(&args)?;
    println!(
        "mesh: {} services, {} endpoints each; snapshot built in {:.0} ms",
        snap.services().count(),
        args.endpoints_per_service,
        ms(start.elapsed())
    );
    let proxies: Vec<(&str, ProxyNode)> = proxies()?
        .into_iter()
        .filter(|(label, _)| args.only.as_deref().is_none_or(|o| o == *label))
        .collect();
    for (label, proxy) in &proxies {
        time_proxy(&snap, label, proxy, args.runs);
    }
    if args.dump.is_some() || args.check.is_some() {
        let mut lines = Vec::new();
        for (label, proxy) in &proxies {
            lines.extend(dump_lines(&snap, label, proxy)?);
        }
        if let Some(path) = &args.dump {
            std::fs::write(path, lines.join("\n") + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
            println!(
                "dump: {} resources written to {}",
                lines.len(),
                path.display()
            );
        }
        if let Some(path) = &args.check {
            check(&lines, path)?;
        }
    }
    Ok(())
}
