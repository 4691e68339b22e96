//! `mastctl version`: the client's version and, as `istioctl version` shows the control
//! plane's, the running local mesh's (`mastctl up`): mastd's version from its monitoring API's
//! `/version` and the connected proxies' versions from `/debug/syncz`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::proxy_status::SyncStatus;
use crate::http;

/// Flags of `mastctl version`.
#[derive(clap::Args)]
pub struct Args {
    /// Output format: `short` (default), `json` or `yaml`.
    #[arg(short, long, default_value = "short")]
    output: String,
    /// Also ask the running local mesh's mastd (`--remote=false` for the client only).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true")]
    remote: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClientVersion {
    version: &'static str,
    rust_version: &'static str,
    target: String,
}

/// One control-plane component's version (istioctl's `meshVersion` entries).
#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
struct MeshComponent {
    component: String,
    version: String,
    /// Where it was asked (mastd's monitoring address).
    address: String,
}

/// How many connected proxies run one version (istioctl's data plane line).
#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
struct DataPlaneVersion {
    version: String,
    proxies: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Versions {
    client_version: ClientVersion,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mesh_version: Vec<MeshComponent>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    data_plane_version: Vec<DataPlaneVersion>,
}

/// Prints the version.
pub fn run(args: &Args) -> anyhow::Result<i32> {
    let mut v = Versions {
        client_version: ClientVersion {
            version: mast_core::VERSION,
            rust_version: env!("CARGO_PKG_RUST_VERSION"),
            target: format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
        },
        mesh_version: Vec::new(),
        data_plane_version: Vec::new(),
    };
    if args.remote {
        ask_running_mesh(&mut v);
    }
    match args.output.as_str() {
        "short" => print!("{}", short(&v)),
        "json" => println!("{}", serde_json::to_string_pretty(&v)?),
        "yaml" => print!("{}", serde_saphyr::to_string(&v)?),
        other => anyhow::bail!("unknown output format {other:?}: use short, json or yaml"),
    }
    Ok(crate::exit::OK)
}

/// Fills in mastd's and the proxies' versions when a local mesh runs; a mesh whose mastd
/// does not answer is reported on stderr (the client version is still printed).
fn ask_running_mesh(v: &mut Versions) {
    let Ok((_, state)) = crate::local::state::find(None) else {
        return;
    };
    let address = state.mastd.monitoring;
    if address.is_empty() {
        return;
    }
    match http::get_json(&address, "/version") {
        Ok(body) => v.mesh_version.push(MeshComponent {
            component: str_field(&body, "component", "mastd"),
            version: str_field(&body, "version", "unknown"),
            address: address.clone(),
        }),
        Err(e) => {
            eprintln!(
                "control plane version: unknown (the local mesh of {} does not answer: {e:#})",
                state.dir.display()
            );
            return;
        }
    }
    if let Ok(body) = http::get_json(&address, "/debug/syncz")
        && let Ok(proxies) = serde_json::from_value::<Vec<SyncStatus>>(body)
    {
        v.data_plane_version = data_plane(&proxies);
    }
}

fn str_field(body: &serde_json::Value, key: &str, default: &str) -> String {
    body.get(key)
        .and_then(serde_json::Value::as_str)
        .unwrap_or(default)
        .to_owned()
}

/// Proxies counted by version (an empty version reads `unknown`).
fn data_plane(proxies: &[SyncStatus]) -> Vec<DataPlaneVersion> {
    let mut by_version: BTreeMap<&str, usize> = BTreeMap::new();
    for p in proxies {
        let version = if p.proxy_version.is_empty() {
            "unknown"
        } else {
            p.proxy_version.as_str()
        };
        *by_version.entry(version).or_default() += 1;
    }
    by_version
        .into_iter()
        .map(|(version, proxies)| DataPlaneVersion {
            version: version.to_owned(),
            proxies,
        })
        .collect()
}

/// istioctl's short form: `client version: …`, then `control plane version: …` and `data
/// plane version: … (N proxies)` when a mesh answered.
fn short(v: &Versions) -> String {
    let mut out = format!("client version: {}\n", v.client_version.version);
    for m in &v.mesh_version {
        out.push_str(&format!("control plane version: {}\n", m.version));
    }
    if !v.data_plane_version.is_empty() {
        let parts: Vec<String> = v
            .data_plane_version
            .iter()
            .map(|d| {
                let noun = if d.proxies == 1 { "proxy" } else { "proxies" };
                format!("{} ({} {noun})", d.version, d.proxies)
            })
            .collect();
        out.push_str(&format!("data plane version: {}\n", parts.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(version: &str) -> SyncStatus {
        serde_json::from_value(serde_json::json!({
            "proxy_id": "p", "name": "p.default", "proxy_version": version,
            "cds": "SYNCED", "lds": "SYNCED", "eds": "SYNCED", "rds": "SYNCED",
        }))
        .unwrap()
    }

    fn versions(mesh: Vec<MeshComponent>, proxies: &[SyncStatus]) -> Versions {
        Versions {
            client_version: ClientVersion {
                version: "1.2.3",
                rust_version: "1.85",
                target: "x86_64-linux".into(),
            },
            mesh_version: mesh,
            data_plane_version: data_plane(proxies),
        }
    }

    #[test]
    fn short_form_is_the_client_alone_without_a_mesh() {
        assert_eq!(short(&versions(vec![], &[])), "client version: 1.2.3\n");
    }

    #[test]
    fn short_form_shows_control_and_data_plane_like_istioctl() {
        let mesh = vec![MeshComponent {
            component: "mastd".into(),
            version: "1.2.3".into(),
            address: "127.0.0.1:1".into(),
        }];
        let proxies = [proxy("1.2.3"), proxy("1.2.3"), proxy("1.31.0"), proxy("")];
        assert_eq!(
            short(&versions(mesh, &proxies)),
            "client version: 1.2.3\ncontrol plane version: 1.2.3\n\
             data plane version: 1.2.3 (2 proxies), 1.31.0 (1 proxy), unknown (1 proxy)\n"
        );
    }

    #[test]
    fn json_names_the_mesh_version_only_when_asked() {
        let v = serde_json::to_value(versions(vec![], &[])).unwrap();
        assert!(v.get("meshVersion").is_none(), "{v}");
        let mesh = vec![MeshComponent {
            component: "mastd".into(),
            version: "1.2.3".into(),
            address: "a".into(),
        }];
        let v = serde_json::to_value(versions(mesh, &[proxy("x")])).unwrap();
        assert_eq!(v["meshVersion"][0]["component"], "mastd");
        assert_eq!(v["dataPlaneVersion"][0]["proxies"], 1);
    }
}
