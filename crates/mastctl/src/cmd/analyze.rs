//! `mastctl analyze`: runs Mast's analyzers over files and folders and prints messages
//! exactly as `istioctl analyze` does, with its output formats, thresholds and exit codes.
//! Without paths it analyzes the folder of the running local mesh (`mastctl up`), found as
//! `proxy-status` finds it (`$MAST_STATE_FILE`, else the most recent live state file).

use std::path::PathBuf;

use anyhow::bail;
use mast_analyze::{Message, Options, analyze, output};
use mast_config::{Level, LoadOptions, load_paths};

/// Flags of `mastctl analyze`.
#[derive(clap::Args)]
pub struct Args {
    /// Files or folders of resources to analyze (`-` for standard input).
    /// [default: the folder of the running local mesh (mastctl up)]
    files: Vec<PathBuf>,
    /// Namespace to analyze; resources that name none are placed in it.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// Analyze all namespaces.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Output format: `log`, `json` or `yaml`.
    #[arg(short, long, default_value = "log")]
    output: String,
    /// The lowest level that makes the exit code non-zero: Info, Warning or Error.
    #[arg(long, default_value = "Warning")]
    failure_threshold: String,
    /// The lowest level printed: Info, Warning or Error.
    #[arg(long, default_value = "Info")]
    output_threshold: String,
    /// Read the live cluster too (not available: Mast analyzes files).
    #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    use_kube: bool,
    /// List the analyzers and exit.
    #[arg(short = 'L', long)]
    list_analyzers: bool,
}

fn level(flag: &str, value: &str) -> anyhow::Result<Level> {
    match Level::parse(value) {
        Some(l) => Ok(l),
        None => bail!("invalid {flag} {value:?}: use Info, Warning or Error"),
    }
}

/// Runs the analysis and prints its messages.
pub fn run(args: &Args) -> anyhow::Result<i32> {
    if args.list_analyzers {
        for a in mast_analyze::analyzers::all() {
            println!("* {}", a.name());
        }
        return Ok(crate::exit::OK);
    }
    let failure = level("--failure-threshold", &args.failure_threshold)?;
    let shown = level("--output-threshold", &args.output_threshold)?;
    if args.use_kube {
        bail!(
            "--use-kube: reading a live cluster arrives with Mast's Kubernetes support; pass files or folders instead"
        );
    }
    let files = paths_or_running_mesh(&args.files)?;
    let loaded = load_paths(
        &files,
        &LoadOptions {
            default_namespace: args.namespace.clone(),
        },
    );
    // YAML that cannot be read at all (missing file, syntax error) is a parse failure;
    // a resource that fails its schema is an IST0106 message like any other.
    let unparsed = loaded.diagnostics.iter().any(|d| d.resource.is_none());
    let opts = Options {
        namespace: (!args.all_namespaces).then(|| args.namespace.clone()),
    };
    let messages: Vec<Message> = analyze(&loaded.resources, &loaded.diagnostics, &opts)
        .into_iter()
        .filter(|m| m.level() >= shown)
        .collect();
    let target = if args.all_namespaces {
        "all namespaces".to_owned()
    } else {
        format!("namespace: {}", args.namespace)
    };
    print_messages(&args.output, &messages, &target)?;
    if unparsed {
        eprintln!("Error: Some files couldn't be parsed.");
        return Ok(crate::exit::DATA_ERROR);
    }
    if messages.iter().any(|m| m.level() >= failure) {
        eprintln!("Error: Analyzers found issues when analyzing {target}.");
        eprintln!(
            "See https://istio.io/latest/docs/reference/config/analysis for more information about causes and resolutions."
        );
        return Ok(crate::exit::ANALYZER_FOUND_ISSUES);
    }
    Ok(crate::exit::OK)
}

/// The paths given, else the running local mesh's folder (said on stderr).
fn paths_or_running_mesh(files: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    if !files.is_empty() {
        return Ok(files.to_vec());
    }
    match crate::local::state::find(None) {
        Ok((state_file, state)) => {
            eprintln!(
                "Analyzing {} (the folder of the local mesh running from {})",
                state.dir.display(),
                state_file.display()
            );
            Ok(vec![state.dir])
        }
        Err(e) => bail!(
            "no files or folders given: mastctl analyze FILE|DIR ... (or - for standard input), \
             and no local mesh to analyze: {e:#}"
        ),
    }
}

fn print_messages(format: &str, messages: &[Message], target: &str) -> anyhow::Result<()> {
    match format {
        "log" if messages.is_empty() => {
            println!("\u{2714} No validation issues found when analyzing {target}.")
        }
        "log" => {
            for m in messages {
                println!("{m}");
            }
        }
        "json" => println!(
            "{}",
            serde_json::to_string_pretty(&output::structured(messages))?
        ),
        "yaml" => print!(
            "{}",
            serde_saphyr::to_string(&output::structured(messages))?
        ),
        other => bail!("invalid output format {other:?}: use log, json or yaml"),
    }
    Ok(())
}
