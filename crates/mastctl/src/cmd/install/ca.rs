//! The mesh CA install hands to mastd: the `cacerts` Secret (Istio's plug-in CA layout) in
//! the control plane namespace if it exists — so reinstalls and new revisions keep the same
//! root — else a new self-signed root made by `mast_ca`.

use anyhow::{Context, Result};
use base64::Engine;
use kube::Client;
use serde_json::Value;

use super::render::MeshCa;

/// The CA in Secret `<namespace>/cacerts`, or a new one.
pub async fn ensure(
    client: &Client,
    namespace: &str,
    trust_domain: &str,
) -> Result<(MeshCa, bool)> {
    if let Some(secret) = super::kube::get(client, "Secret", namespace, "cacerts").await? {
        let v = serde_json::to_value(&secret)?;
        let ca = from_secret(&v).with_context(|| format!("Secret {namespace}/cacerts"))?;
        return Ok((ca, false));
    }
    let (key_pem, cert_pem) = mast_ca::authority::generate_root(trust_domain)
        .map_err(|e| anyhow::anyhow!("generating the mesh CA: {e}"))?;
    Ok((
        MeshCa {
            key_pem,
            root_pem: cert_pem.clone(),
            cert_pem,
        },
        true,
    ))
}

/// Reads `ca-key.pem`, `ca-cert.pem` and `root-cert.pem` from a Secret's `data` (base64) or
/// `stringData`.
pub fn from_secret(v: &Value) -> Result<MeshCa> {
    let field = |k: &str| -> Result<String> {
        if let Some(s) = v.pointer(&format!("/data/{k}")).and_then(Value::as_str) {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .with_context(|| format!("field data.{k} is not base64"))?;
            return String::from_utf8(bytes).with_context(|| format!("field data.{k} is not text"));
        }
        v.pointer(&format!("/stringData/{k}"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .with_context(|| format!("field data.{k} is missing"))
    };
    Ok(MeshCa {
        key_pem: field("ca-key.pem")?,
        cert_pem: field("ca-cert.pem")?,
        root_pem: field("root-cert.pem")?,
    })
}
