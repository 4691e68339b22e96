//! `mastctl version`: the client's version (and, once mastd exists, the control plane's).

use serde::Serialize;

/// Flags of `mastctl version`.
#[derive(clap::Args)]
pub struct Args {
    /// Output format: `short` (default), `json` or `yaml`.
    #[arg(short, long, default_value = "short")]
    output: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClientVersion {
    version: &'static str,
    rust_version: &'static str,
    target: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Versions {
    client_version: ClientVersion,
}

/// Prints the version.
pub fn run(args: &Args) -> anyhow::Result<i32> {
    let v = Versions {
        client_version: ClientVersion {
            version: mast_core::VERSION,
            rust_version: env!("CARGO_PKG_RUST_VERSION"),
            target: format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
        },
    };
    match args.output.as_str() {
        "short" => println!("client version: {}", mast_core::VERSION),
        "json" => println!("{}", serde_json::to_string_pretty(&v)?),
        "yaml" => print!("{}", serde_saphyr::to_string(&v)?),
        other => anyhow::bail!("unknown output format {other:?}: use short, json or yaml"),
    }
    Ok(crate::exit::OK)
}
