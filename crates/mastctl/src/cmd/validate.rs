//! `mastctl validate -f FILE|DIR|-`: loads resources and validates each one as Istio's
//! webhook would. Exit 0 when every resource is valid (warnings allowed); otherwise every
//! error is listed, each naming file:line, resource and field.

use std::path::PathBuf;

use mast_config::validate::validate_all;
use mast_config::{Diagnostic, Level, LoadOptions, load_paths};

/// Flags of `mastctl validate`.
#[derive(clap::Args)]
pub struct Args {
    /// Files or folders to validate (`-` for standard input); repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<PathBuf>,
    /// Namespace for resources that name none.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// Print nothing on success.
    #[arg(short, long)]
    quiet: bool,
}

/// Runs the validation and prints its outcome.
pub fn run(args: &Args) -> anyhow::Result<i32> {
    let opts = LoadOptions {
        default_namespace: args.namespace.clone(),
    };
    let loaded = load_paths(&args.files, &opts);
    let mut diags: Vec<Diagnostic> = loaded.diagnostics;
    diags.extend(validate_all(&loaded.resources));
    let errors: Vec<&Diagnostic> = diags.iter().filter(|d| d.level == Level::Error).collect();
    for d in diags.iter().filter(|d| d.level != Level::Error) {
        eprintln!("Warning: {d}");
    }
    if errors.is_empty() {
        if !args.quiet {
            for f in &args.files {
                if f.as_os_str() == "-" {
                    println!("validation succeed");
                } else {
                    println!("{:?} is valid", f.display().to_string());
                }
            }
        }
        return Ok(crate::exit::OK);
    }
    for d in &errors {
        eprintln!("{d}");
    }
    let n = errors.len();
    eprintln!("Error: {n} error{} occurred", if n == 1 { "" } else { "s" });
    Ok(crate::exit::UNKNOWN)
}
