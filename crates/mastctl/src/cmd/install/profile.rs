//! `mastctl profile list|dump|diff`: the built-in configuration profiles, a profile's full
//! IstioOperator (default merged under it, plus `-f`/`--set`), or the difference between two.

use anyhow::{Context, Result};
use serde_json::Value;

use super::InputArgs;
use super::operator::{PROFILES, get_path, profile_tree};

/// `mastctl profile …`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Lists available Mast configuration profiles.
    List,
    /// Dumps a Mast configuration profile.
    Dump(DumpArgs),
    /// Diffs two Mast configuration profiles.
    Diff(DiffArgs),
}

/// Flags of `profile dump`.
#[derive(clap::Args, Debug)]
pub struct DumpArgs {
    /// The profile (default `default`; `--set profile=…` and `-f` files may also choose it).
    profile: Option<String>,
    #[command(flatten)]
    input: InputArgs,
    /// Print only the subtree at this path (e.g. `components.pilot`, `values.global`).
    #[arg(short = 'p', long = "config-path")]
    config_path: Option<String>,
}

/// Flags of `profile diff`.
#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// The first profile.
    a: String,
    /// The second profile.
    b: String,
}

/// Runs a `profile` subcommand.
pub fn run(args: &Args) -> Result<i32> {
    match &args.command {
        Command::List => {
            print!("{}", list());
            Ok(crate::exit::OK)
        }
        Command::Dump(d) => {
            print!("{}", dump(d)?);
            Ok(crate::exit::OK)
        }
        Command::Diff(d) => {
            print!("{}", diff(&d.a, &d.b)?);
            Ok(crate::exit::OK)
        }
    }
}

/// `Mast configuration profiles:` and the names, indented as istioctl's.
pub fn list() -> String {
    let mut out = String::from("Mast configuration profiles:\n");
    for (name, _) in PROFILES {
        out.push_str(&format!("    {name}\n"));
    }
    out
}

fn dump(d: &DumpArgs) -> Result<String> {
    let mut input = d.input.clone();
    if let Some(p) = &d.profile {
        input.sets.insert(0, format!("profile={p}"));
    }
    let tree = input.tree(None)?;
    let Some(path) = &d.config_path else {
        return Ok(serde_saphyr::to_string(&tree)?);
    };
    let spec = tree.get("spec").cloned().unwrap_or(Value::Null);
    let path = path.strip_prefix("spec.").unwrap_or(path);
    let sub = get_path(&spec, path)?
        .with_context(|| format!("--config-path {path}: no such path in the profile"))?;
    Ok(serde_saphyr::to_string(sub)?)
}

/// The readable diff of profiles `a` and `b` (each merged over default).
pub fn diff(a: &str, b: &str) -> Result<String> {
    let ya = serde_saphyr::to_string(&profile_tree(a)?)?;
    let yb = serde_saphyr::to_string(&profile_tree(b)?)?;
    Ok(match super::diff::lines(&ya, &yb) {
        None => "Profiles are identical\n".to_string(),
        Some(d) => format!("The difference between profiles:\n{d}"),
    })
}
