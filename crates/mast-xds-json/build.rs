//! Compiles the Envoy `.proto` files that envoy-types ships into one encoded
//! `FileDescriptorSet` (`$OUT_DIR/envoy_descriptors.bin`), which the library embeds with
//! `include_bytes!` and loads into a `prost_reflect::DescriptorPool` for JSON.
//!
//! The envoy-types source directory is found through `cargo metadata` (the `manifest_path`
//! of package `envoy-types`), or taken from `MAST_ENVOY_TYPES_DIR` when that is set.
//! Only the directories in [`PROTO_DIRS`] are compiled (plus everything they import), to keep
//! the build short: add a directory there when the generators start emitting a new
//! `typed_config` type.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Directories (relative to envoy-types' `proto/data-plane-api`) whose every `.proto` file is
/// compiled. Imports are followed, so only the roots are listed.
const PROTO_DIRS: &[&str] = &[
    "envoy/admin/v3",
    "envoy/config/bootstrap/v3",
    "envoy/config/cluster/v3",
    "envoy/config/core/v3",
    "envoy/config/endpoint/v3",
    "envoy/config/listener/v3",
    "envoy/config/route/v3",
    "envoy/config/trace/v3",
    "envoy/extensions/access_loggers/file/v3",
    "envoy/extensions/access_loggers/stream/v3",
    "envoy/extensions/clusters/dynamic_forward_proxy/v3",
    "envoy/extensions/common/dynamic_forward_proxy/v3",
    "envoy/extensions/filters/http/cors/v3",
    "envoy/extensions/filters/http/dynamic_forward_proxy/v3",
    "envoy/extensions/filters/http/fault/v3",
    "envoy/extensions/filters/http/health_check/v3",
    "envoy/extensions/filters/http/jwt_authn/v3",
    "envoy/extensions/filters/http/rbac/v3",
    "envoy/extensions/filters/http/router/v3",
    "envoy/extensions/filters/listener/http_inspector/v3",
    "envoy/extensions/filters/listener/original_dst/v3",
    "envoy/extensions/filters/listener/tls_inspector/v3",
    "envoy/extensions/filters/network/http_connection_manager/v3",
    "envoy/extensions/filters/network/rbac/v3",
    "envoy/extensions/filters/network/tcp_proxy/v3",
    "envoy/extensions/load_balancing_policies/least_request/v3",
    "envoy/extensions/path/match/uri_template/v3",
    "envoy/extensions/load_balancing_policies/maglev/v3",
    "envoy/extensions/load_balancing_policies/random/v3",
    "envoy/extensions/load_balancing_policies/ring_hash/v3",
    "envoy/extensions/load_balancing_policies/round_robin/v3",
    "envoy/extensions/request_id/uuid/v3",
    "envoy/extensions/retry/host/previous_hosts/v3",
    "envoy/extensions/retry/priority/previous_priorities/v3",
    "envoy/extensions/transport_sockets/proxy_protocol/v3",
    "envoy/extensions/transport_sockets/raw_buffer/v3",
    "envoy/extensions/transport_sockets/tls/v3",
    "envoy/extensions/upstreams/http/v3",
    "envoy/service/discovery/v3",
];

/// Files whose relative type references protox resolves differently from `protoc`, with the
/// rewrite that fully qualifies them. In package `envoy.extensions.clusters.dynamic_forward_proxy.v3`,
/// `common.dynamic_forward_proxy.v3.DnsCacheConfig` means `envoy.extensions.common.…`: `protoc`
/// skips the package `envoy.extensions.clusters.common` because no direct import of the file
/// defines it, but protox (prost-reflect) sees every package in the pool and reports the name
/// as shadowed. A patched copy, identical but for the leading-dot name, is compiled instead.
const PATCHES: &[(&str, &str, &str)] = &[
    (
        "envoy/extensions/clusters/dynamic_forward_proxy/v3/cluster.proto",
        " common.dynamic_forward_proxy.v3.DnsCacheConfig ",
        " .envoy.extensions.common.dynamic_forward_proxy.v3.DnsCacheConfig ",
    ),
    (
        "envoy/extensions/filters/http/dynamic_forward_proxy/v3/dynamic_forward_proxy.proto",
        " common.dynamic_forward_proxy.v3.DnsCacheConfig ",
        " .envoy.extensions.common.dynamic_forward_proxy.v3.DnsCacheConfig ",
    ),
];

/// Include roots under envoy-types' `proto/` directory (the layout envoy-types ships).
const INCLUDE_ROOTS: &[&str] = &[
    "data-plane-api",
    "xds",
    "protoc-gen-validate",
    "googleapis",
    "cel-spec/proto",
    "opentelemetry-proto",
    "client_model",
    "ratelimit",
];

fn main() {
    if let Err(message) = run() {
        // A build script reports failure by exiting non-zero with a message on stderr.
        eprintln!("mast-xds-json build: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=MAST_ENVOY_TYPES_DIR");
    let proto_root = envoy_types_dir()?.join("proto");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    // The patched copies come first, so they shadow the originals.
    let mut includes = vec![write_patches(&proto_root.join("data-plane-api"), &out_dir)?];
    includes.extend(INCLUDE_ROOTS.iter().map(|r| proto_root.join(r)));
    let files = proto_files(&proto_root.join("data-plane-api"))?;

    let mut compiler = protox::Compiler::new(&includes).map_err(|e| e.to_string())?;
    compiler.include_imports(true).include_source_info(false);
    for file in &files {
        compiler
            .open_file(file)
            .map_err(|e| format!("compiling {}: {e}", file.display()))?;
    }
    let bytes = compiler.encode_file_descriptor_set();

    let out = out_dir.join("envoy_descriptors.bin");
    std::fs::write(&out, bytes).map_err(|e| format!("writing {}: {e}", out.display()))?;
    Ok(())
}

/// Writes the [`PATCHES`] under `<out_dir>/proto-patches` (the include root returned), each
/// file a copy of the original from `api_root` with its one rewrite, which must apply.
fn write_patches(api_root: &Path, out_dir: &Path) -> Result<PathBuf, String> {
    let root = out_dir.join("proto-patches");
    for (file, from, to) in PATCHES {
        let original = api_root.join(file);
        let text = std::fs::read_to_string(&original)
            .map_err(|e| format!("reading {}: {e}", original.display()))?;
        if !text.contains(from) {
            return Err(format!(
                "{}: {from:?} not found to patch",
                original.display()
            ));
        }
        let patched = root.join(file);
        if let Some(dir) = patched.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        std::fs::write(&patched, text.replace(from, to))
            .map_err(|e| format!("writing {}: {e}", patched.display()))?;
    }
    Ok(root)
}

/// Every `.proto` file directly inside the [`PROTO_DIRS`], as paths relative to `api_root`
/// (the form protox resolves like an `import`).
fn proto_files(api_root: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for dir in PROTO_DIRS {
        let abs = api_root.join(dir);
        let entries =
            std::fs::read_dir(&abs).map_err(|e| format!("reading {}: {e}", abs.display()))?;
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| name.ends_with(".proto"))
            .collect();
        names.sort();
        files.extend(names.into_iter().map(|name| Path::new(dir).join(name)));
    }
    Ok(files)
}

/// The envoy-types package directory: `MAST_ENVOY_TYPES_DIR`, else the parent of the
/// `manifest_path` that `cargo metadata` reports for package `envoy-types` (first offline,
/// which works once the build has fetched its crates, then online as a last resort).
fn envoy_types_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("MAST_ENVOY_TYPES_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let metadata = cargo_metadata(true).or_else(|offline| {
        cargo_metadata(false).map_err(|online| format!("{offline}; online: {online}"))
    })?;
    let manifest = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "envoy-types")
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or("package envoy-types not found in cargo metadata")?;
    Path::new(manifest)
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("manifest path {manifest} has no parent"))
}

/// Runs `cargo metadata` for this package, limited to the target platform so that crates
/// of other platforms need not be downloaded.
fn cargo_metadata(offline: bool) -> Result<serde_json::Value, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?;
    let mut command = Command::new(cargo);
    command.args(["metadata", "--format-version", "1", "--manifest-path"]);
    command.arg(Path::new(&manifest_dir).join("Cargo.toml"));
    if let Some(target) = std::env::var_os("TARGET") {
        command.arg("--filter-platform").arg(target);
    }
    if offline {
        command.arg("--offline");
    }
    let output = command
        .output()
        .map_err(|e| format!("running cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("parsing cargo metadata: {e}"))
}
