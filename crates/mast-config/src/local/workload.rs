//! `LocalWorkload` (mast.dev/v1alpha1): the spec of a local program — its command, the
//! port it serves on, its service account, environment, restart policy and readiness probe —
//! and the `mast.dev/proxy` annotation that picks its sidecar.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::resource::Resource;

/// The annotation choosing a workload's sidecar: `mast` (default) or `envoy`.
pub const PROXY_ANNOTATION: &str = "mast.dev/proxy";

/// The service account used when `serviceAccount` is unset, as in Kubernetes.
const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// The spec of a `LocalWorkload`: a program `mastctl up` starts, with its own sidecar.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalWorkload {
    /// The program and its arguments (required, not empty). Run without a shell.
    #[serde(default)]
    pub command: Vec<String>,
    /// The port the program listens on, which Services target; given to it as `$PORT`.
    /// Optional for programs that serve nothing (clients, jobs). See [`Self::port_number`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// The service account the workload runs as; see [`Self::service_account`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// Extra environment variables for the program.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Whether the program is restarted when it exits (default `Always`).
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    /// A Kubernetes readiness probe (`httpGet`, `tcpSocket` or `grpc` on 127.0.0.1, with
    /// `initialDelaySeconds`, `periodSeconds`, `timeoutSeconds`, `successThreshold`,
    /// `failureThreshold`), kept as written: `mastctl up` checks and runs it while the
    /// program runs. Without one, the workload is ready once its port accepts connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<serde_json::Value>,
}

impl LocalWorkload {
    /// The port as a port number; `None` when unset or out of range (validation reports it).
    pub fn port_number(&self) -> Option<u16> {
        self.port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
    }

    /// The service account, `default` when unset or empty.
    pub fn service_account(&self) -> &str {
        self.service_account
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(DEFAULT_SERVICE_ACCOUNT)
    }

    /// Whether the workload is a job (runs once, `restartPolicy: Never`).
    pub fn is_job(&self) -> bool {
        self.restart_policy == RestartPolicy::Never
    }
}

/// What happens when a workload's program exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum RestartPolicy {
    /// Restart it with back-off, whatever its exit status (servers).
    #[default]
    Always,
    /// Run it once (jobs).
    Never,
}

/// The sidecar a workload runs with, from its `mast.dev/proxy` annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProxyChoice {
    /// `mast-proxy`, Mast's own sidecar (the default).
    #[default]
    Mast,
    /// Envoy, through `mast-agent`.
    Envoy,
}

impl ProxyChoice {
    /// Parses an annotation value (`mast` or `envoy`).
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "mast" => Some(Self::Mast),
            "envoy" => Some(Self::Envoy),
            _ => None,
        }
    }

    /// The choice written on `resource`: the default when the annotation is absent,
    /// `None` when its value is not one Mast knows (validation reports it).
    pub fn of(resource: &Resource) -> Option<Self> {
        match resource.annotations().get(PROXY_ANNOTATION) {
            None => Some(Self::default()),
            Some(v) => Self::parse(v),
        }
    }

    /// The annotation value naming this choice.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mast => "mast",
            Self::Envoy => "envoy",
        }
    }
}

/// Whether `s` is a valid environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
