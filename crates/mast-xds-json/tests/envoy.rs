//! Compares this crate's JSON with what real Envoy 1.40 prints: a bootstrap written with
//! `message_to_json` holds a static cluster and a static listener; Envoy runs briefly
//! (`--disable-hot-restart`, admin on a free 127.0.0.1 port reported through
//! `--admin-address-path`), and its `/config_dump` must print both exactly as
//! `any_to_json` does and read back into the messages written.
//!
//! Envoy is `$MAST_ENVOY`, else `<workspace>/.venv/bin/envoy`, else `envoy` on `PATH`; without
//! one the test says so and passes.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::bootstrap::v3::{Admin, Bootstrap, bootstrap};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{
    Address, Node, SocketAddress, address, socket_address,
};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::util::pack_any;
use mast_xds_json::{any_to_json, json_to_any, message_to_json, parse_config_dump};
use prost::{Message, Name};
use serde_json::Value;

const CLUSTER: &str = "outbound|9080|v1|reviews.default.svc.cluster.local";
const LISTENER: &str = "0.0.0.0_9080";

fn find_envoy() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("MAST_ENVOY") {
        return Some(PathBuf::from(path));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/envoy");
    if venv.is_file() {
        return Some(venv);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("envoy"))
        .find(|p| p.is_file())
}

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("mast-xds-json-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The Envoy child, killed (by its own pid) when dropped.
struct EnvoyGuard(Child);

impl Drop for EnvoyGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bootstrap() -> Bootstrap {
    Bootstrap {
        node: Some(Node {
            id: "sidecar~127.0.0.1~json-test.default~default.svc.cluster.local".into(),
            cluster: "json-test.default".into(),
            ..Default::default()
        }),
        admin: Some(Admin {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: "127.0.0.1".into(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(0)),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        }),
        static_resources: Some(bootstrap::StaticResources {
            clusters: vec![common::static_cluster(CLUSTER)],
            listeners: vec![common::listener(LISTENER, 0)],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Starts Envoy on `config` and returns it with its admin address, waiting at most 20 s.
fn start_envoy(envoy: &Path, scratch: &Path, config: &Path) -> (EnvoyGuard, String) {
    let address_file = scratch.join("admin-address");
    let log = std::fs::File::create(scratch.join("envoy.log")).expect("log file");
    let child = Command::new(envoy)
        .arg("-c")
        .arg(config)
        .args([
            "--disable-hot-restart",
            "--concurrency",
            "1",
            "-l",
            "warning",
        ])
        .arg("--admin-address-path")
        .arg(&address_file)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start envoy");
    let mut guard = EnvoyGuard(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(addr) = std::fs::read_to_string(&address_file)
            && !addr.trim().is_empty()
        {
            return (guard, addr.trim().to_owned());
        }
        if let Ok(Some(status)) = guard.0.try_wait() {
            let log = std::fs::read_to_string(scratch.join("envoy.log")).unwrap_or_default();
            panic!("envoy exited with {status}:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("envoy wrote no admin address within 20 s");
}

/// `GET path` over HTTP/1.1 with `Connection: close` (Envoy's admin refuses HTTP/1.0),
/// returning the body of a 200, de-chunked when the server chunked it.
fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to admin");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let (head, body) = response.split_once("\r\n\r\n").expect("http response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

/// The `key` resource of the static entries in `section` of Envoy's dump, named `name`.
fn static_resource<'a>(
    dump: &'a Value,
    section: &str,
    list: &str,
    key: &str,
    name: &str,
) -> &'a Value {
    let url = format!("type.googleapis.com/envoy.admin.v3.{section}");
    let configs = dump["configs"].as_array().expect("configs");
    let config = configs
        .iter()
        .find(|c| c["@type"] == url.as_str())
        .expect("section");
    let entries = config[list].as_array().expect("static list");
    let entry = entries
        .iter()
        .find(|e| e[key]["name"] == name)
        .expect("resource");
    &entry[key]
}

#[test]
fn envoy_config_dump_matches_our_json() {
    let Some(envoy) = find_envoy() else {
        eprintln!(
            "SKIP envoy_config_dump_matches_our_json: no Envoy binary ($MAST_ENVOY, .venv/bin/envoy, PATH)"
        );
        return;
    };
    let scratch = Scratch::new();
    let config = scratch.0.join("bootstrap.json");
    let bootstrap = bootstrap();
    let json = message_to_json(&bootstrap).expect("bootstrap to json");
    std::fs::write(&config, serde_json::to_vec_pretty(&json).expect("encode"))
        .expect("write bootstrap");

    let (_envoy, admin) = start_envoy(&envoy, &scratch.0, &config);
    let dump: Value =
        serde_json::from_str(&http_get(&admin, "/config_dump")).expect("dump is JSON");

    let static_resources = bootstrap.static_resources.expect("static");
    let cluster = static_resources.clusters[0].clone();
    let envoy_cluster = static_resource(
        &dump,
        "ClustersConfigDump",
        "static_clusters",
        "cluster",
        CLUSTER,
    );
    assert_eq!(
        envoy_cluster,
        &any_to_json(&pack_any(cluster.clone())).expect("cluster json")
    );
    assert_cluster_reads_back(envoy_cluster, cluster);

    let listener = static_resources.listeners[0].clone();
    let envoy_listener = static_resource(
        &dump,
        "ListenersConfigDump",
        "static_listeners",
        "listener",
        LISTENER,
    );
    assert_eq!(
        envoy_listener,
        &any_to_json(&pack_any(listener.clone())).expect("listener json")
    );
    let back =
        json_to_any(&Listener::type_url(), envoy_listener).expect("listener from envoy json");
    assert_eq!(any_to_json(&back).expect("json"), *envoy_listener);

    assert_whole_dump_reads_back(&dump);
}

/// `parse_config_dump` reads Envoy's whole dump, bootstrap (node, extensions list) included.
fn assert_whole_dump_reads_back(dump: &Value) {
    let sections = parse_config_dump(dump).expect("envoy's whole dump reads back");
    let clusters = sections
        .iter()
        .find(|s| s.type_url == Cluster::type_url())
        .expect("clusters");
    assert!(
        clusters
            .resources
            .iter()
            .any(|c| Cluster::decode(c.value.as_slice()).is_ok_and(|c| c.name == CLUSTER))
    );
    let bootstraps = sections
        .iter()
        .find(|s| s.type_url == Bootstrap::type_url())
        .expect("bootstrap");
    let envoy_bootstrap =
        Bootstrap::decode(bootstraps.resources[0].value.as_slice()).expect("bootstrap");
    assert_eq!(
        envoy_bootstrap.node.expect("node").cluster,
        "json-test.default"
    );
}

/// Envoy's JSON for the cluster reads back into the cluster written (nested `Any`s compared
/// decoded: their bytes depend on the encoder's field order).
fn assert_cluster_reads_back(envoy_json: &Value, mut expected: Cluster) {
    let any = json_to_any(&Cluster::type_url(), envoy_json).expect("cluster from envoy json");
    let mut back = Cluster::decode(any.value.as_slice()).expect("decodes");
    let options = |c: &mut Cluster| {
        let any = c
            .typed_extension_protocol_options
            .remove(common::HTTP_OPTIONS_KEY)
            .expect("options");
        HttpProtocolOptions::decode(any.value.as_slice()).expect("options decode")
    };
    assert_eq!(options(&mut back), options(&mut expected));
    assert_eq!(back, expected);
}
