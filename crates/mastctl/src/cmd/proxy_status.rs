//! `mastctl proxy-status`: every proxy connected to mastd and whether it runs the latest
//! configuration, in istioctl's columns (`NAME CLUSTER CDS LDS EDS RDS ISTIOD VERSION`, states
//! SYNCED / NOT SENT / STALE), read from mastd's `/debug/syncz`.

use anyhow::bail;
use serde::Deserialize;

use super::table::Table;
use crate::http;

/// Flags of `mastctl proxy-status`.
#[derive(clap::Args)]
pub struct Args {
    /// Show only this proxy (`<workload>.<namespace>` or node id).
    proxy: Option<String>,
    /// mastd's monitoring address.
    /// [default: the running local mesh's (mastctl up), else 127.0.0.1:15014]
    #[arg(long, env = "MAST_MONITORING_ADDR")]
    mastd: Option<String>,
    /// Output: `short` (table) or `json`.
    #[arg(short, long, default_value = "short")]
    output: String,
}

/// One proxy as mastd's `/debug/syncz` reports it.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct SyncStatus {
    /// The node id.
    pub proxy_id: String,
    /// `<workload>.<namespace>`.
    pub name: String,
    /// The cluster id from the node metadata.
    #[serde(default)]
    pub cluster_id: String,
    /// The proxy's version (Envoy's build version).
    #[serde(default)]
    pub proxy_version: String,
    /// The proxy's admin address, when it told mastd.
    #[serde(default)]
    pub admin_address: String,
    /// Which mastd serves it.
    #[serde(default)]
    pub control_plane: String,
    /// CDS state: SYNCED, NOT SENT or STALE.
    pub cds: String,
    /// LDS state.
    pub lds: String,
    /// EDS state.
    pub eds: String,
    /// RDS state.
    pub rds: String,
}

impl SyncStatus {
    fn matches(&self, want: &str) -> bool {
        self.proxy_id == want || self.name == want
    }
}

fn fetch(mastd: &str) -> anyhow::Result<Vec<SyncStatus>> {
    let v = http::get_json(mastd, "/debug/syncz").map_err(|e| e.context(format!("is mastd running? (its monitoring address is {mastd}; set --mastd or MAST_MONITORING_ADDR)")))?;
    Ok(serde_json::from_value(v)?)
}

/// Where the admin interface of `proxy` listens, as mastd knows it.
pub fn admin_address(mastd: &str, proxy: &str) -> anyhow::Result<String> {
    let all = fetch(mastd)?;
    let Some(s) = all.iter().find(|s| s.matches(proxy)) else {
        let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        bail!(
            "no proxy {proxy:?} is connected to mastd at {mastd}; connected: {}",
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        );
    };
    if s.admin_address.is_empty() {
        bail!("proxy {proxy:?} did not report its admin address; pass --admin ADDR");
    }
    Ok(s.admin_address.clone())
}

/// Runs the command.
pub fn run(args: &Args) -> anyhow::Result<i32> {
    let mastd = crate::local::mastd_address(args.mastd.as_deref());
    let mut all = fetch(&mastd)?;
    if let Some(p) = &args.proxy {
        all.retain(|s| s.matches(p));
        if all.is_empty() {
            bail!("no proxy {p:?} is connected to mastd at {mastd}");
        }
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    match args.output.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&all)?),
        "short" => print!("{}", table(&all)),
        other => bail!("unknown output format {other:?}: use short or json"),
    }
    Ok(crate::exit::OK)
}

fn table(all: &[SyncStatus]) -> String {
    let mut t = Table::new(&[
        "NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ISTIOD", "VERSION",
    ]);
    for s in all {
        t.row(vec![
            s.name.clone(),
            s.cluster_id.clone(),
            s.cds.clone(),
            s.lds.clone(),
            s.eds.clone(),
            s.rds.clone(),
            s.control_plane.clone(),
            s.proxy_version.clone(),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_istioctl_columns() {
        let s: Vec<SyncStatus> = serde_json::from_value(serde_json::json!([{
            "proxy_id": "sidecar~127.0.0.1~client.default~default.svc.cluster.local", "name": "client.default",
            "cluster_id": "Kubernetes", "proxy_version": "1.40.0", "control_plane": "mastd-host",
            "cds": "SYNCED", "lds": "SYNCED", "eds": "SYNCED", "rds": "STALE"}]))
        .unwrap();
        let out = table(&s);
        assert_eq!(
            out,
            "NAME               CLUSTER        CDS        LDS        EDS        RDS       ISTIOD         VERSION\nclient.default     Kubernetes     SYNCED     SYNCED     SYNCED     STALE     mastd-host     1.40.0\n"
        );
    }
}
