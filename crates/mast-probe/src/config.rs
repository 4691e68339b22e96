//! `ISTIO_KUBE_APP_PROBERS`: the JSON table the injector writes (path →
//! `{"httpGet": {"path", "port", "scheme", "host", "httpHeaders": [{"name", "value"}]}}`,
//! `{"tcpSocket": {"port"}}` or `{"grpc": {"port", "service"}}`, plus `timeoutSeconds`),
//! checked as pilot-agent checks it: every path is `/app-health/<container>/<readyz|livez|
//! startupz>`, every probe has exactly one action and a numeric port.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::{DEFAULT_TIMEOUT, ENV, PATH_PREFIX};

/// Why the table is refused; the message names the variable, the path and the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{ENV}: {0}")]
pub struct ConfigError(String);

/// The probes, by status-port path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppProbers {
    probers: BTreeMap<String, Prober>,
}

/// One application probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prober {
    /// What is done.
    pub probe: Probe,
    /// How long it may take (`timeoutSeconds`, the kubelet's 1 s when absent or 0).
    pub timeout: Duration,
}

/// A probe's action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `httpGet`.
    HttpGet(HttpGetAction),
    /// `tcpSocket`: a connection is accepted.
    TcpSocket {
        /// The application's port.
        port: u16,
    },
    /// `grpc`: `grpc.health.v1.Health/Check` answers SERVING.
    Grpc(GrpcAction),
}

/// `httpGet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGetAction {
    /// The path (a `/` is prepended when missing).
    pub path: String,
    /// The application's port.
    pub port: u16,
    /// HTTP or HTTPS (not verified, as the kubelet).
    pub scheme: Scheme,
    /// `httpHeaders`, in order.
    pub headers: Vec<(String, String)>,
}

/// `httpGet.scheme`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    /// `HTTP` (the default).
    #[default]
    Http,
    /// `HTTPS`.
    Https,
}

/// `grpc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcAction {
    /// The application's port.
    pub port: u16,
    /// The service asked about (empty: the server as a whole).
    pub service: String,
}

impl AppProbers {
    /// The table in `$ISTIO_KUBE_APP_PROBERS`; empty when unset or blank.
    pub fn from_env() -> Result<Self, ConfigError> {
        match std::env::var(ENV) {
            Ok(text) => Self::parse(&text),
            Err(std::env::VarError::NotPresent) => Ok(Self::default()),
            Err(e) => Err(ConfigError(e.to_string())),
        }
    }

    /// Parses and checks the table (blank text: empty).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| ConfigError(format!("not valid JSON: {e}")))?;
        let Value::Object(table) = value else {
            return Err(ConfigError("not a JSON object (path → probe)".into()));
        };
        let mut probers = BTreeMap::new();
        for (path, entry) in table {
            check_path(&path)?;
            let prober = prober(&path, &entry)?;
            probers.insert(path, prober);
        }
        Ok(Self { probers })
    }

    /// The probe for a status-port path.
    pub fn get(&self, path: &str) -> Option<&Prober> {
        self.probers.get(path)
    }

    /// The paths served, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.probers.keys().map(String::as_str)
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.probers.is_empty()
    }
}

fn check_path(path: &str) -> Result<(), ConfigError> {
    let bad = || {
        ConfigError(format!(
            "{path:?}: the path must be /app-health/<container>/<readyz|livez|startupz>"
        ))
    };
    let rest = path.strip_prefix(PATH_PREFIX).ok_or_else(bad)?;
    match rest.split_once('/') {
        Some((container, kind))
            if !container.is_empty() && ["readyz", "livez", "startupz"].contains(&kind) =>
        {
            Ok(())
        }
        _ => Err(bad()),
    }
}

fn prober(path: &str, entry: &Value) -> Result<Prober, ConfigError> {
    let fail = |field: &str, what: &str| ConfigError(format!("{path}: {field}: {what}"));
    let entry = entry
        .as_object()
        .ok_or_else(|| fail("(probe)", "not an object"))?;
    let actions: Vec<&str> = ["httpGet", "tcpSocket", "grpc"]
        .into_iter()
        .filter(|k| entry.contains_key(*k))
        .collect();
    let [action] = actions[..] else {
        return Err(fail(
            "(probe)",
            "give exactly one of httpGet, tcpSocket or grpc",
        ));
    };
    let body = entry[action]
        .as_object()
        .ok_or_else(|| fail(action, "not an object"))?;
    let port = port(body).map_err(|what| fail(&format!("{action}.port"), &what))?;
    let probe = match action {
        "httpGet" => Probe::HttpGet(http_get(body, port).map_err(|(f, w)| fail(&f, &w))?),
        "tcpSocket" => Probe::TcpSocket { port },
        _ => Probe::Grpc(GrpcAction {
            port,
            service: string(body, "service")
                .map_err(|w| fail("grpc.service", &w))?
                .unwrap_or_default(),
        }),
    };
    let timeout = match entry.get("timeoutSeconds") {
        None | Some(Value::Null) => DEFAULT_TIMEOUT,
        Some(v) => match v.as_u64() {
            Some(0) => DEFAULT_TIMEOUT,
            Some(n) => Duration::from_secs(n),
            None => return Err(fail("timeoutSeconds", "not a whole number of seconds")),
        },
    };
    Ok(Prober { probe, timeout })
}

/// `port`: a number 1–65535 (or its decimal text; named ports are resolved by the
/// injector).
fn port(body: &Map<String, Value>) -> Result<u16, String> {
    let n = match body.get("port") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse::<u64>().ok(),
        None => return Err("missing".into()),
        Some(_) => None,
    };
    n.and_then(|n| u16::try_from(n).ok())
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{} is not a port number", body["port"]))
}

fn string(body: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("{other} is not a string")),
    }
}

fn http_get(body: &Map<String, Value>, port: u16) -> Result<HttpGetAction, (String, String)> {
    let path = string(body, "path")
        .map_err(|w| ("httpGet.path".to_owned(), w))?
        .unwrap_or_default();
    let path = if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    };
    let scheme = match string(body, "scheme").map_err(|w| ("httpGet.scheme".to_owned(), w))? {
        None => Scheme::Http,
        Some(s) if s.eq_ignore_ascii_case("http") => Scheme::Http,
        Some(s) if s.eq_ignore_ascii_case("https") => Scheme::Https,
        Some(s) => {
            return Err((
                "httpGet.scheme".into(),
                format!("{s:?} is not HTTP or HTTPS"),
            ));
        }
    };
    let mut headers = Vec::new();
    let list = match body.get("httpHeaders") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(list)) => &list[..],
        Some(_) => return Err(("httpGet.httpHeaders".into(), "not a list".into())),
    };
    for (i, h) in list.iter().enumerate() {
        let field = format!("httpGet.httpHeaders[{i}]");
        let name = h.get("name").and_then(Value::as_str);
        let value = h.get("value").and_then(Value::as_str).unwrap_or_default();
        let name = name
            .filter(|n| ::http::HeaderName::from_bytes(n.as_bytes()).is_ok())
            .ok_or_else(|| (field.clone(), "needs a valid header name".to_owned()))?;
        if ::http::HeaderValue::from_str(value).is_err() {
            return Err((field, format!("{value:?} is not a valid header value")));
        }
        headers.push((name.to_owned(), value.to_owned()));
    }
    Ok(HttpGetAction {
        path,
        port,
        scheme,
        headers,
    })
}
