//! Loading resources from files, folders, standard input or strings.
//!
//! Owns the decoding of one YAML document into a typed [`Resource`] (including
//! `kind: List`), defaulting of namespaces, and turning every failure — unreadable file,
//! YAML syntax, wrong type, unknown field, unserved `apiVersion` — into a [`Diagnostic`]
//! naming file:line, resource and field. A bad document never hides the good ones.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::diag::{Diagnostic, Level, Origin, ResourceRef};
use crate::resource::{Body, Kind, Resource};
use crate::schema::{self, SchemaError};
use crate::yaml::{self, LineIndex};

/// File extensions read from folders, as istioctl reads them.
pub const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// How to load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Namespace given to namespaced resources that do not name one.
    pub default_namespace: String,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            default_namespace: "default".into(),
        }
    }
}

/// What loading produced: the resources that decoded, and a diagnostic for each failure.
#[derive(Debug, Default)]
pub struct LoadOutput {
    /// Resources that decoded, in file order.
    pub resources: Vec<Resource>,
    /// One message per file or document that could not be read or decoded.
    pub diagnostics: Vec<Diagnostic>,
}

impl LoadOutput {
    fn extend(&mut self, other: LoadOutput) {
        self.resources.extend(other.resources);
        self.diagnostics.extend(other.diagnostics);
    }
}

/// Loads files and folders (recursively; `.yaml`, `.yml`, `.json`); `-` reads standard input.
pub fn load_paths<P: AsRef<Path>>(paths: &[P], opts: &LoadOptions) -> LoadOutput {
    let mut out = LoadOutput::default();
    for path in paths {
        let path = path.as_ref();
        if path == Path::new("-") {
            let mut text = String::new();
            match std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
                Ok(_) => out.extend(load_str(&text, "-", opts)),
                Err(e) => out
                    .diagnostics
                    .push(file_error("-", &format!("cannot read standard input: {e}"))),
            }
            continue;
        }
        match collect_files(path) {
            Ok(files) => {
                for file in files {
                    out.extend(load_file(&file, opts));
                }
            }
            Err(e) => out
                .diagnostics
                .push(file_error(&path.display().to_string(), &e)),
        }
    }
    out
}

fn load_file(file: &Path, opts: &LoadOptions) -> LoadOutput {
    let name = file.display().to_string();
    match std::fs::read_to_string(file) {
        Ok(text) => load_str(&text, &name, opts),
        Err(e) => LoadOutput {
            resources: Vec::new(),
            diagnostics: vec![file_error(&name, &format!("cannot read file: {e}"))],
        },
    }
}

fn collect_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("cannot list folder {}: {e}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            out.extend(collect_files(&entry)?);
        } else if entry
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e))
        {
            out.push(entry);
        }
    }
    Ok(out)
}

fn file_error(file: &str, message: &str) -> Diagnostic {
    Diagnostic {
        level: Level::Error,
        origin: Some(Origin {
            file: file.into(),
            line: 0,
        }),
        resource: None,
        field: None,
        message: message.to_owned(),
    }
}

/// Loads every document of `text`, naming `file` in messages.
pub fn load_str(text: &str, file: &str, opts: &LoadOptions) -> LoadOutput {
    let file: Arc<str> = file.into();
    let mut out = LoadOutput::default();
    for doc in yaml::parse_documents(text) {
        match doc {
            Err(e) => out.diagnostics.push(Diagnostic {
                level: Level::Error,
                origin: Some(Origin {
                    file: file.clone(),
                    line: e.line,
                }),
                resource: None,
                field: None,
                message: format!("YAML syntax error: {}", e.message),
            }),
            Ok(doc) => {
                let lines = Arc::new(doc.lines);
                let origin = Origin {
                    file: file.clone(),
                    line: doc.line,
                };
                decode_document(doc.value, "", &origin, &lines, opts, &mut out);
            }
        }
    }
    out
}

/// Decodes one object (or the items of a `kind: List`) at `prefix` in the document.
fn decode_document(
    value: Value,
    prefix: &str,
    origin: &Origin,
    lines: &Arc<LineIndex>,
    opts: &LoadOptions,
    out: &mut LoadOutput,
) {
    if value.get("kind").and_then(Value::as_str) == Some("List")
        && let Some(Value::Array(items)) = value.get("items")
    {
        for (i, item) in items.iter().enumerate() {
            let p = format!("{prefix}items[{i}]");
            let item_origin = Origin {
                file: origin.file.clone(),
                line: lines.line_of(&p).unwrap_or(origin.line),
            };
            let sub = Arc::new(lines.rebase(&p));
            decode_document(item.clone(), "", &item_origin, &sub, opts, out);
        }
        return;
    }
    match decode(value, origin, lines, opts) {
        Ok(r) => out.resources.push(r),
        Err(d) => out.diagnostics.push(*d),
    }
}

fn decode(
    value: Value,
    origin: &Origin,
    lines: &Arc<LineIndex>,
    opts: &LoadOptions,
) -> Result<Resource, Box<Diagnostic>> {
    let fail = |resource: Option<ResourceRef>, field: &str, message: String| {
        Box::new(Diagnostic {
            level: Level::Error,
            origin: Some(Origin {
                file: origin.file.clone(),
                line: lines.line_of(field).unwrap_or(origin.line),
            }),
            resource,
            field: (!field.is_empty()).then(|| field.to_owned()),
            message,
        })
    };
    if !value.is_object() {
        return Err(fail(
            None,
            "",
            format!(
                "expected a Kubernetes resource (a mapping with apiVersion and kind), found {}",
                schema::describe(&value)
            ),
        ));
    }
    let text = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    let reference = ResourceRef {
        kind: if kind.is_empty() {
            "<no kind>".into()
        } else {
            kind.clone()
        },
        namespace: value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        name: value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("<no name>")
            .to_owned(),
    };
    if kind.is_empty() {
        return Err(fail(
            Some(reference),
            "kind",
            "required field is missing".into(),
        ));
    }
    if api_version.is_empty() {
        return Err(fail(
            Some(reference),
            "apiVersion",
            "required field is missing".into(),
        ));
    }
    let known = Kind::lookup(&api_version, &kind)
        .map_err(|m| fail(Some(reference.clone()), "apiVersion", m))?;
    let mut meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta = schema::from_value(
        value
            .get("metadata")
            .cloned()
            .unwrap_or(Value::Object(Default::default())),
    )
    .map_err(|e| fail(Some(reference.clone()), &e.path("metadata"), e.message))?;
    if meta.name.as_deref().unwrap_or("").is_empty() && meta.generate_name.is_none() {
        return Err(fail(
            Some(reference),
            "metadata.name",
            "required field is missing".into(),
        ));
    }
    let mut reference = reference;
    if known.is_none_or(Kind::namespaced) && meta.namespace.as_deref().unwrap_or("").is_empty() {
        meta.namespace = Some(opts.default_namespace.clone());
        reference.namespace.clone_from(&opts.default_namespace);
    }
    let body = match known {
        None => Body::Unknown(Arc::new(value)),
        Some(k) => decode_body(k, value)
            .map_err(|e| fail(Some(reference.clone()), &e.path(""), e.message))?,
    };
    Ok(Resource {
        api_version,
        kind,
        meta: Arc::new(meta),
        body,
        origin: origin.clone(),
        lines: lines.clone(),
    })
}

/// An Istio object: everything but `spec` is checked loosely, `spec` strictly.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IstioObject<S> {
    #[serde(rename = "apiVersion")]
    _api_version: Value,
    #[serde(rename = "kind")]
    _kind: Value,
    #[serde(rename = "metadata", default)]
    _metadata: Value,
    #[serde(default = "empty_spec")]
    spec: Value,
    #[serde(rename = "status", default)]
    _status: Value,
    #[serde(skip)]
    _marker: std::marker::PhantomData<S>,
}

fn empty_spec() -> Value {
    Value::Object(Default::default())
}

fn istio<S: DeserializeOwned>(value: Value) -> Result<Arc<S>, SchemaError> {
    let obj: IstioObject<S> = schema::from_value(value)?;
    let spec = if obj.spec.is_null() {
        empty_spec()
    } else {
        obj.spec
    };
    schema::from_value(spec)
        .map(Arc::new)
        .map_err(|e| e.under("spec"))
}

fn kube<T: DeserializeOwned + serde::Serialize>(value: Value) -> Result<Arc<T>, SchemaError> {
    let typed: T = schema::from_value(value.clone())?;
    schema::check_no_unknown_fields(&value, &typed)?;
    Ok(Arc::new(typed))
}

fn decode_body(kind: Kind, v: Value) -> Result<Body, SchemaError> {
    Ok(match kind {
        Kind::VirtualService => Body::VirtualService(istio(v)?),
        Kind::DestinationRule => Body::DestinationRule(istio(v)?),
        Kind::Gateway => Body::Gateway(istio(v)?),
        Kind::ServiceEntry => Body::ServiceEntry(istio(v)?),
        Kind::WorkloadEntry => {
            let healthy = crate::networking::WorkloadEntry::object_is_healthy(&v);
            let mut entry: Arc<crate::networking::WorkloadEntry> = istio(v)?;
            Arc::make_mut(&mut entry).healthy = healthy;
            Body::WorkloadEntry(entry)
        }
        Kind::Sidecar => Body::Sidecar(istio(v)?),
        Kind::PeerAuthentication => Body::PeerAuthentication(istio(v)?),
        Kind::AuthorizationPolicy => Body::AuthorizationPolicy(istio(v)?),
        Kind::RequestAuthentication => Body::RequestAuthentication(istio(v)?),
        Kind::LocalWorkload => Body::LocalWorkload(istio(v)?),
        Kind::LocalGateway => Body::LocalGateway(istio(v)?),
        Kind::GatewayClass => Body::GatewayClass(istio(v)?),
        Kind::KubeGateway => Body::KubeGateway(istio(v)?),
        Kind::HttpRoute => Body::HttpRoute(istio(v)?),
        Kind::GrpcRoute => Body::GrpcRoute(istio(v)?),
        Kind::TcpRoute => Body::TcpRoute(istio(v)?),
        Kind::TlsRoute => Body::TlsRoute(istio(v)?),
        Kind::ReferenceGrant => Body::ReferenceGrant(istio(v)?),
        Kind::Namespace => Body::Namespace(kube(v)?),
        Kind::Service => Body::Service(kube(v)?),
        Kind::Endpoints => Body::Endpoints(kube(v)?),
        Kind::Pod => Body::Pod(kube(v)?),
        Kind::ConfigMap => Body::ConfigMap(kube(v)?),
        Kind::Secret => Body::Secret(kube(v)?),
        Kind::Deployment => Body::Deployment(kube(v)?),
        Kind::ReplicaSet => Body::ReplicaSet(kube(v)?),
        Kind::DaemonSet => Body::DaemonSet(kube(v)?),
        Kind::StatefulSet => Body::StatefulSet(kube(v)?),
        Kind::Job => Body::Job(kube(v)?),
        Kind::CronJob => Body::CronJob(kube(v)?),
    })
}
