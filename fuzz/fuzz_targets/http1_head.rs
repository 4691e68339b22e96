//! Fuzz target: arbitrary bytes as one HTTP/1 client connection, served by the proxy's real
//! connection manager (`hcm::server::serve`: hyper, the limits, the request-head scanner,
//! routing to a direct response) over an in-memory pipe. Nothing may panic.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mast_proxy::cluster::ClusterManager;
use mast_proxy::config::RouteStore;
use mast_proxy::hcm::{Env, HcmConfig, stream::ConnInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct World {
    runtime: tokio::runtime::Runtime,
    env: Arc<Env>,
    hcm: Arc<HcmConfig>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as h;
        use envoy_types::pb::envoy::config::route::v3 as r;
        let route = r::Route {
            r#match: Some(r::RouteMatch {
                path_specifier: Some(r::route_match::PathSpecifier::Prefix("/".into())),
                ..Default::default()
            }),
            action: Some(r::route::Action::DirectResponse(r::DirectResponseAction {
                status: 200,
                ..Default::default()
            })),
            ..Default::default()
        };
        let proto = h::HttpConnectionManager {
            stat_prefix: "fuzz".into(),
            route_specifier: Some(h::http_connection_manager::RouteSpecifier::RouteConfig(
                r::RouteConfiguration {
                    name: "r".into(),
                    virtual_hosts: vec![r::VirtualHost {
                        name: "v".into(),
                        domains: vec!["*".into()],
                        routes: vec![route],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            )),
            http_filters: vec![h::HttpFilter {
                name: "envoy.filters.http.router".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut registry = prometheus_client::registry::Registry::default();
        World {
            runtime: tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
            env: Arc::new(Env {
                clusters: Arc::new(ClusterManager::new()),
                routes: Arc::new(RouteStore::new()),
                access_log: None,
                stats: mast_proxy::stats::ProxyStats::register(&mut registry),
            }),
            hcm: Arc::new(HcmConfig::from_proto(&proto).unwrap()),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    w.runtime.block_on(async {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let conn = ConnInfo {
            local: "127.0.0.1:80".parse().unwrap(),
            peer: "127.0.0.1:1".parse().unwrap(),
            tls: None,
        };
        let (_drain, draining) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(mast_proxy::hcm::server::serve(
            server,
            Arc::clone(&w.env),
            Arc::clone(&w.hcm),
            conn,
            draining,
        ));
        let _ = client.write_all(data).await;
        let _ = client.shutdown().await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(1), client.read_to_end(&mut sink)).await;
        drop(client);
        if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(1), task).await {
            assert!(!e.is_panic());
        }
    });
});
