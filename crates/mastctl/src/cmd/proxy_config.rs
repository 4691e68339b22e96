//! `mastctl proxy-config cluster|listener|route|endpoint|secret|bootstrap|all <proxy>`: the
//! configuration a proxy is running, read from its admin interface (`/config_dump`,
//! `/clusters?format=json`), printed as istioctl's tables or as JSON (`-o json`); [`secret`]
//! reads the certificates ([`der`] decodes them).
//!
//! The proxy is named as `proxy-status` names it (`<workload>.<namespace>`, or the full node
//! id); mastd tells where its admin interface listens. `--admin ADDR` reads a proxy's admin
//! interface directly.

mod der;
mod secret;

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::table::Table;
use crate::http;

/// Which part of the configuration to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    /// Clusters (CDS).
    Cluster,
    /// Listeners (LDS).
    Listener,
    /// Routes (RDS).
    Route,
    /// Endpoints with health (EDS).
    Endpoint,
    /// Certificates and trusted roots (SDS).
    Secret,
    /// The bootstrap.
    Bootstrap,
    /// Everything.
    All,
}

/// Flags of `mastctl proxy-config`.
#[derive(clap::Args)]
pub struct Args {
    /// What to show.
    #[arg(value_enum)]
    section: Section,
    /// The proxy: `<workload>.<namespace>`, a local mesh's workload name, or its node id
    /// (optional with --admin).
    proxy: Option<String>,
    /// mastd's monitoring address, to find the proxy.
    /// [default: the running local mesh's (mastctl up), else 127.0.0.1:15014]
    #[arg(long, env = "MAST_MONITORING_ADDR")]
    mastd: Option<String>,
    /// Read this admin address (`host:port`) directly instead of asking mastd.
    #[arg(long)]
    admin: Option<String>,
    /// Output: `short` (tables) or `json`.
    #[arg(short, long, default_value = "short")]
    output: String,
}

/// Runs the command.
pub fn run(args: &Args) -> anyhow::Result<i32> {
    let admin = match (&args.admin, &args.proxy) {
        (Some(a), _) => a.clone(),
        (None, Some(p)) => admin_address(args.mastd.as_deref(), p)?,
        (None, None) => bail!("name a proxy (as proxy-status shows it) or give --admin ADDR"),
    };
    let dump: Value = http::get_json(&admin, "/config_dump").with_context(|| {
        format!("reading /config_dump from the proxy's admin interface at {admin}")
    })?;
    let sections: &[Section] = match args.section {
        Section::All => &[
            Section::Cluster,
            Section::Listener,
            Section::Route,
            Section::Endpoint,
            Section::Secret,
        ],
        one => std::slice::from_ref(match one {
            Section::Cluster => &Section::Cluster,
            Section::Listener => &Section::Listener,
            Section::Route => &Section::Route,
            Section::Endpoint => &Section::Endpoint,
            Section::Secret => &Section::Secret,
            _ => &Section::Bootstrap,
        }),
    };
    for (i, s) in sections.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let endpoints = if *s == Section::Endpoint {
            Some(http::get_json(&admin, "/clusters?format=json")?)
        } else {
            None
        };
        match args.output.as_str() {
            "json" => println!(
                "{}",
                serde_json::to_string_pretty(&section_json(&dump, *s, endpoints.as_ref()))?
            ),
            "short" => print!("{}", section_table(&dump, *s, endpoints.as_ref())),
            other => bail!("unknown output format {other:?}: use short or json"),
        }
    }
    Ok(crate::exit::OK)
}

/// Where the admin interface of `proxy` listens, as mastd (`mastd`, else the local mesh's)
/// knows it; `proxy` as [`proxy_name`] takes it.
pub(crate) fn admin_address(mastd: Option<&str>, proxy: &str) -> anyhow::Result<String> {
    let name = proxy_name(mastd, proxy);
    super::proxy_status::admin_address(&crate::local::mastd_address(mastd), &name)
}

/// The proxy's name as proxy-status shows it: `proxy` itself, except that without `--mastd`
/// a bare workload name of the running local mesh (`httpbin`) stands for
/// `httpbin.<its namespace>`, as `mastctl exec` takes it.
pub(crate) fn proxy_name(mastd: Option<&str>, proxy: &str) -> String {
    let local = || {
        if mastd.is_some() || proxy.contains('.') || proxy.contains('~') {
            return None;
        }
        let (_, state) = crate::local::state::find(None).ok()?;
        let w = state.workload(proxy).ok()?;
        Some(format!("{}.{}", w.name, w.namespace))
    };
    local().unwrap_or_else(|| proxy.to_owned())
}

/// The config_dump entry whose `@type` ends with `suffix`.
fn config<'a>(dump: &'a Value, suffix: &str) -> Option<&'a Value> {
    let dotted = format!(".{suffix}");
    dump.get("configs")?.as_array()?.iter().find(|c| {
        c.get("@type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.ends_with(&dotted))
    })
}

fn list<'a>(v: Option<&'a Value>, key: &str) -> impl Iterator<Item = &'a Value> {
    v.and_then(|v| v.get(key))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn clusters(dump: &Value) -> Vec<&Value> {
    let c = config(dump, "ClustersConfigDump");
    list(c, "static_clusters")
        .chain(list(c, "dynamic_active_clusters"))
        .filter_map(|e| e.get("cluster"))
        .collect()
}

fn listeners(dump: &Value) -> Vec<&Value> {
    let c = config(dump, "ListenersConfigDump");
    let statics = list(c, "static_listeners").filter_map(|e| e.get("listener"));
    let dynamics = list(c, "dynamic_listeners").filter_map(|e| e.pointer("/active_state/listener"));
    statics.chain(dynamics).collect()
}

fn routes(dump: &Value) -> Vec<&Value> {
    let c = config(dump, "RoutesConfigDump");
    list(c, "static_route_configs")
        .chain(list(c, "dynamic_route_configs"))
        .filter_map(|e| e.get("route_config"))
        .collect()
}

fn section_json(dump: &Value, s: Section, endpoints: Option<&Value>) -> Value {
    match s {
        Section::Cluster => Value::Array(clusters(dump).into_iter().cloned().collect()),
        Section::Listener => Value::Array(listeners(dump).into_iter().cloned().collect()),
        Section::Route => Value::Array(routes(dump).into_iter().cloned().collect()),
        Section::Endpoint => endpoints.cloned().unwrap_or(Value::Null),
        Section::Secret => secret::secrets_json(dump),
        Section::Bootstrap | Section::All => config(dump, "BootstrapConfigDump")
            .cloned()
            .unwrap_or(Value::Null),
    }
}

fn section_table(dump: &Value, s: Section, endpoints: Option<&Value>) -> String {
    match s {
        Section::Cluster => cluster_table(dump),
        Section::Listener => listener_table(dump),
        Section::Route => route_table(dump),
        Section::Endpoint => endpoint_table(endpoints.unwrap_or(&Value::Null)),
        Section::Secret => secret::secret_table(dump),
        Section::Bootstrap | Section::All => {
            serde_json::to_string_pretty(&section_json(dump, s, None)).unwrap_or_default() + "\n"
        }
    }
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// `/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews` → `reviews.default`.
fn istio_config_ref(v: &Value) -> String {
    let path = text(v, "/metadata/filter_metadata/istio/config");
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [.., "namespaces", ns, _kind, name] => format!("{name}.{ns}"),
        _ => String::new(),
    }
}

fn cluster_table(dump: &Value) -> String {
    let mut t = Table::new(&[
        "SERVICE FQDN",
        "PORT",
        "SUBSET",
        "DIRECTION",
        "TYPE",
        "DESTINATION RULE",
    ]);
    let mut rows: Vec<Vec<String>> = clusters(dump)
        .into_iter()
        .map(|c| {
            let name = text(c, "/name");
            let kind = c.get("type").and_then(Value::as_str).unwrap_or(
                if c.get("cluster_type").is_some() {
                    "CUSTOM"
                } else {
                    "STATIC"
                },
            );
            let parts: Vec<&str> = name.split('|').collect();
            match parts.as_slice() {
                [dir @ ("outbound" | "inbound"), port, subset, host] => {
                    let dash = |s: &str| {
                        if s.is_empty() {
                            "-".to_owned()
                        } else {
                            s.to_owned()
                        }
                    };
                    vec![
                        dash(host),
                        (*port).to_owned(),
                        dash(subset),
                        (*dir).to_owned(),
                        kind.to_owned(),
                        istio_config_ref(c),
                    ]
                }
                _ => vec![
                    name.to_owned(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    kind.to_owned(),
                    String::new(),
                ],
            }
        })
        .collect();
    rows.sort();
    for r in rows {
        t.row(r);
    }
    t.render()
}

fn listener_table(dump: &Value) -> String {
    let mut t = Table::new(&["ADDRESSES", "PORT", "MATCH", "DESTINATION"]);
    for l in listeners(dump) {
        let addr = text(l, "/address/socket_address/address");
        let port = l
            .pointer("/address/socket_address/port_value")
            .map(ToString::to_string)
            .unwrap_or_default();
        for chain in l
            .get("filter_chains")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .chain(l.get("default_filter_chain"))
        {
            t.row(vec![
                addr.to_owned(),
                port.clone(),
                chain_match(chain),
                chain_destination(chain),
            ]);
        }
    }
    t.render()
}

fn chain_match(chain: &Value) -> String {
    let m = chain.get("filter_chain_match");
    let mut parts = Vec::new();
    if let Some(p) = m.and_then(|m| m.get("destination_port")) {
        parts.push(format!("Port: {p}"));
    }
    if let Some(names) = m
        .and_then(|m| m.get("server_names"))
        .and_then(Value::as_array)
    {
        let names: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
        parts.push(format!("SNI: {}", names.join(",")));
    }
    if let Some(tp) = m
        .and_then(|m| m.get("transport_protocol"))
        .and_then(Value::as_str)
    {
        parts.push(format!("Trans: {tp}"));
    }
    if parts.is_empty() {
        "ALL".into()
    } else {
        parts.join("; ")
    }
}

fn chain_destination(chain: &Value) -> String {
    let Some(filter) = chain
        .get("filters")
        .and_then(Value::as_array)
        .and_then(|f| f.last())
    else {
        return String::new();
    };
    let cfg = filter.get("typed_config").unwrap_or(&Value::Null);
    if let Some(rds) = cfg
        .pointer("/rds/route_config_name")
        .and_then(Value::as_str)
    {
        return format!("Route: {rds}");
    }
    if cfg.get("route_config").is_some() {
        return "Inline Route".into();
    }
    if let Some(c) = cfg.get("cluster").and_then(Value::as_str) {
        return format!("Cluster: {c}");
    }
    if let Some(ws) = cfg
        .pointer("/weighted_clusters/clusters")
        .and_then(Value::as_array)
    {
        let names: Vec<&str> = ws
            .iter()
            .filter_map(|w| w.get("name").and_then(Value::as_str))
            .collect();
        return format!("Clusters: {}", names.join(","));
    }
    text(filter, "/name").to_owned()
}

fn route_table(dump: &Value) -> String {
    let mut t = Table::new(&["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"]);
    for rc in routes(dump) {
        let name = text(rc, "/name");
        for vh in rc
            .get("virtual_hosts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let domains: Vec<&str> = vh
                .get("domains")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let shown = match domains.as_slice() {
                [] => String::new(),
                [one] => (*one).to_owned(),
                [first, rest @ ..] => format!("{first} + {} more...", rest.len()),
            };
            for r in vh
                .get("routes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                t.row(vec![
                    name.to_owned(),
                    text(vh, "/name").to_owned(),
                    shown.clone(),
                    route_match(r),
                    istio_config_ref(r),
                ]);
            }
        }
    }
    t.render()
}

fn route_match(r: &Value) -> String {
    let m = r.get("match").unwrap_or(&Value::Null);
    if let Some(p) = m.get("prefix").and_then(Value::as_str) {
        return format!("{p}*");
    }
    if let Some(p) = m.get("path").and_then(Value::as_str) {
        return p.to_owned();
    }
    if let Some(re) = m.pointer("/safe_regex/regex").and_then(Value::as_str) {
        return re.to_owned();
    }
    "/*".into()
}

fn endpoint_table(clusters: &Value) -> String {
    let mut t = Table::new(&["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"]);
    for c in clusters
        .get("cluster_statuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = text(c, "/name");
        for h in c
            .get("host_statuses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let addr = format!(
                "{}:{}",
                text(h, "/address/socket_address/address"),
                h.pointer("/address/socket_address/port_value")
                    .map(ToString::to_string)
                    .unwrap_or_default()
            );
            let health = h.get("health_status").unwrap_or(&Value::Null);
            let status = health
                .get("eds_health_status")
                .and_then(Value::as_str)
                .unwrap_or("HEALTHY");
            let outlier =
                if health.get("failed_outlier_check").and_then(Value::as_bool) == Some(true) {
                    "FAILED"
                } else {
                    "OK"
                };
            t.row(vec![
                addr,
                status.to_owned(),
                outlier.to_owned(),
                name.to_owned(),
            ]);
        }
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_with_a_namespace_or_a_mastd_are_taken_as_given() {
        assert_eq!(proxy_name(None, "httpbin.foo"), "httpbin.foo");
        assert_eq!(proxy_name(Some("127.0.0.1:1"), "httpbin"), "httpbin");
        let id = "sidecar~127.0.0.1~httpbin~foo";
        assert_eq!(proxy_name(None, id), id);
    }

    fn dump() -> Value {
        json!({"configs": [
            {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "dynamic_active_clusters": [
                {"version_info": "3", "cluster": {"name": "outbound|80|v1|nginx-svc.default.svc.cluster.local", "type": "EDS",
                    "metadata": {"filter_metadata": {"istio": {"config": "/apis/networking.istio.io/v1/namespaces/default/destination-rule/nginx"}}}}},
                {"version_info": "3", "cluster": {"name": "BlackHoleCluster", "type": "STATIC"}}]},
            {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "dynamic_listeners": [
                {"name": "0.0.0.0_80", "active_state": {"listener": {"name": "0.0.0.0_80", "address": {"socket_address": {"address": "0.0.0.0", "port_value": 80}},
                    "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {"rds": {"route_config_name": "80"}}}]}]}}}]},
            {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump", "dynamic_route_configs": [
                {"route_config": {"name": "80", "virtual_hosts": [{"name": "nginx-svc.default.svc.cluster.local:80", "domains": ["nginx-svc.default.svc.cluster.local", "nginx-svc"],
                    "routes": [{"match": {"prefix": "/"}, "metadata": {"filter_metadata": {"istio": {"config": "/apis/networking.istio.io/v1/namespaces/default/virtual-service/nginx-svc-vs"}}}}]}]}}]}
        ]})
    }

    #[test]
    fn tables_read_envoy_config_dump() {
        let d = dump();
        let clusters = cluster_table(&d);
        assert!(clusters.starts_with("SERVICE FQDN"), "{clusters}");
        assert!(clusters.contains("nginx-svc.default.svc.cluster.local     80       v1         outbound      EDS        nginx.default"), "{clusters}");
        assert!(clusters.contains("BlackHoleCluster"));
        let listeners = listener_table(&d);
        assert!(
            listeners.contains("0.0.0.0       80       ALL       Route: 80"),
            "{listeners}"
        );
        let routes = route_table(&d);
        assert!(
            routes.contains(
                "nginx-svc.default.svc.cluster.local + 1 more...     /*        nginx-svc-vs.default"
            ),
            "{routes}"
        );
    }

    #[test]
    fn endpoints_from_admin_clusters() {
        let c = json!({"cluster_statuses": [{"name": "outbound|80||a.default.svc.cluster.local", "host_statuses": [
            {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 8080}}, "health_status": {"eds_health_status": "HEALTHY", "failed_outlier_check": true}}]}]});
        let t = endpoint_table(&c);
        assert!(t.contains("127.0.0.1:8080     HEALTHY     FAILED            outbound|80||a.default.svc.cluster.local"), "{t}");
    }
}
