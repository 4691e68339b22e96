//! Stable-Rust replays of the fuzz targets in `/work/main/fuzz` (`xds_convert`,
//! `http1_head`) so CI exercises them: seeds from real resources and requests, mutated
//! with a fixed-seed RNG for a bounded number of iterations. Nothing may panic.

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use mast_proxy::cluster::{Assignment, ClusterConfig};
use mast_proxy::listener::ListenerConfig;
use mast_proxy::route::RouteTable;
use prost::Message;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn mutate(rng: &mut fastrand::Rng, seed: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..rng.usize(1..8) {
        match rng.u8(0..4) {
            0 if !out.is_empty() => {
                let i = rng.usize(..out.len());
                out[i] = rng.u8(..);
            }
            1 if !out.is_empty() => out.truncate(rng.usize(..out.len())),
            2 => {
                let i = rng.usize(..=out.len());
                out.insert(i, rng.u8(..));
            }
            _ if !out.is_empty() => {
                let i = rng.usize(..out.len());
                let j = rng.usize(i..out.len());
                let chunk = out[i..=j.min(out.len() - 1)].to_vec();
                out.splice(i..i, chunk);
            }
            _ => out.push(rng.u8(..)),
        }
    }
    out
}

fn encoded<M: Message + prost::Name + Default>(v: serde_json::Value) -> Vec<u8> {
    mast_xds_json::json_to_message::<M>(&v)
        .expect("seed")
        .encode_to_vec()
}

/// Runs one input through the four decoders and conversions (the `xds_convert` target).
pub fn xds_convert(data: &[u8]) {
    if let Ok(l) = Listener::decode(data) {
        let _ = ListenerConfig::from_proto(&l);
    }
    if let Ok(r) = RouteConfiguration::decode(data) {
        let _ = RouteTable::from_proto(&r);
    }
    if let Ok(c) = Cluster::decode(data) {
        let _ = ClusterConfig::from_proto(&c);
    }
    if let Ok(a) = ClusterLoadAssignment::decode(data) {
        let _ = Assignment::from_proto(&a);
    }
}

fn xds_seeds() -> Vec<Vec<u8>> {
    let hcm = json!({"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "s", "rds": {"route_config_name": "80", "config_source": {"ads": {}}},
        "http_filters": [{"name": "envoy.filters.http.router"}]});
    vec![
        encoded::<Listener>(
            json!({"name": "l", "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15001}},
            "filter_chains": [{"filter_chain_match": {"destination_port": 80},
                "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}]}),
        ),
        encoded::<RouteConfiguration>(
            json!({"name": "80", "virtual_hosts": [{"name": "v", "domains": ["a", "a:80"],
            "routes": [{"match": {"prefix": "/", "headers": [{"name": "x", "string_match": {"exact": "y"}}]},
                "route": {"weighted_clusters": {"clusters": [{"name": "a", "weight": 90}, {"name": "b", "weight": 10}]},
                    "timeout": "3s", "retry_policy": {"retry_on": "5xx", "num_retries": 2}}},
                {"match": {"safe_regex": {"regex": "/r[0-9]+"}}, "direct_response": {"status": 418}}]}]}),
        ),
        encoded::<Cluster>(
            json!({"name": "c", "type": "EDS", "eds_cluster_config": {"eds_config": {"ads": {}}},
            "connect_timeout": "1s", "lb_policy": "LEAST_REQUEST",
            "circuit_breakers": {"thresholds": [{"max_connections": 10}]},
            "outlier_detection": {"consecutive_5xx": 3}}),
        ),
        encoded::<ClusterLoadAssignment>(
            json!({"cluster_name": "c", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 80}}}, "load_balancing_weight": 2}]}]}),
        ),
    ]
}

#[test]
fn xds_decoding_and_conversion_never_panic() {
    let seeds = xds_seeds();
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    for seed in &seeds {
        xds_convert(seed);
    }
    for _ in 0..20_000 {
        let seed = &seeds[rng.usize(..seeds.len())];
        xds_convert(&mutate(&mut rng, seed));
    }
}

const HEADS: [&[u8]; 5] = [
    b"GET /x?q=1 HTTP/1.1\r\nhost: a\r\nx-a: b\r\n\r\n",
    b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\n\r\nabc",
    b"POST /x HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"GET http://a/x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nhost: a\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
];

/// Serves `data` as one client connection over an in-memory pipe (the `http1_head` target).
pub async fn http1_head(
    env: Arc<mast_proxy::hcm::Env>,
    hcm: Arc<mast_proxy::hcm::HcmConfig>,
    data: &[u8],
) {
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let conn = mast_proxy::hcm::stream::ConnInfo {
        local: "127.0.0.1:80".parse().expect("addr"),
        peer: "127.0.0.1:1".parse().expect("addr"),
        tls: None,
    };
    let (_drain, draining) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(mast_proxy::hcm::server::serve(
        server, env, hcm, conn, draining,
    ));
    let _ = client.write_all(data).await;
    let _ = client.shutdown().await;
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), client.read_to_end(&mut sink)).await;
    drop(client);
    let joined = tokio::time::timeout(Duration::from_secs(2), task).await;
    if let Ok(Err(e)) = joined {
        assert!(
            !e.is_panic(),
            "serve panicked on {:?}",
            String::from_utf8_lossy(data)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_heads_never_panic() {
    let p = super::support::start(json!({})).await;
    let (env, hcm) = super::support::parts(&p);
    let mut rng = fastrand::Rng::with_seed(0xbeef);
    for i in 0..400 {
        let seed = HEADS[i % HEADS.len()];
        let data = if i < HEADS.len() {
            seed.to_vec()
        } else {
            mutate(&mut rng, seed)
        };
        http1_head(Arc::clone(&env), Arc::clone(&hcm), &data).await;
    }
}
