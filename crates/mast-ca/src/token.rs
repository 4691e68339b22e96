//! Local tokens: how a workload proves its identity (namespace + service account) to the CA
//! when there is no Kubernetes API to review a service-account token.
//!
//! A token is `mast1.<payload>.<mac>`: `payload` is base64url (no padding) of the JSON
//! `{"ns":…,"sa":…,"iat":…,"exp":…?}` and `mac` is base64url of HMAC-SHA256(key, `mast1.<payload>`).
//! The key is 32 random bytes kept in `<ca-dir>/token-key` (mode 0600), made on first use.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::hmac;
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::files::{FileError, ensure_dir, write_atomic};

/// The prefix of every local token.
pub const TOKEN_PREFIX: &str = "mast1.";

/// The key file's name inside the CA directory.
pub const TOKEN_KEY_FILE: &str = "token-key";

/// Why a caller could not be authenticated. The messages are shown to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `authorization` metadata at all.
    #[error("no authorization header: send `authorization: Bearer <token>`")]
    Missing,
    /// The header or token is not in the expected form.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The MAC does not match (forged or signed by another CA directory's key).
    #[error("token signature is invalid (forged, or issued by another CA)")]
    BadSignature,
    /// The token's `exp` has passed.
    #[error("token expired at {0} (unix seconds)")]
    Expired(u64),
    /// An external authenticator refused or failed.
    #[error("{0}")]
    Rejected(String),
}

/// The claims inside a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenClaims {
    /// Namespace.
    pub ns: String,
    /// Service account.
    pub sa: String,
    /// Issued at (unix seconds).
    pub iat: u64,
    /// Expiry (unix seconds); none = no expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
}

/// Issues and verifies local tokens with one HMAC key.
#[derive(Clone)]
pub struct TokenIssuer {
    key: hmac::Key,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenIssuer {
    /// Loads `<dir>/token-key`, or makes a new random key there (mode 0600; `dir` is
    /// created with mode 0700 if missing).
    pub fn load_or_create(dir: &Path) -> Result<Self, FileError> {
        let path = dir.join(TOKEN_KEY_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) if b.len() >= 32 => b,
            Ok(_) => {
                return Err(FileError::new(
                    &path,
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "token key is shorter than 32 bytes",
                    ),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                ensure_dir(dir)?;
                let key = random_key().map_err(|e| FileError::new(&path, e))?;
                write_atomic(&path, &key, 0o600)?;
                key.to_vec()
            }
            Err(e) => return Err(FileError::new(&path, e)),
        };
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
            path: Some(path),
        })
    }

    /// An issuer with a fresh random key kept only in memory (tests).
    pub fn ephemeral() -> Self {
        let key = random_key().unwrap_or([7; 32]);
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            path: None,
        }
    }

    /// A token for `namespace`/`service_account` that never expires.
    pub fn issue(&self, namespace: &str, service_account: &str) -> String {
        self.issue_claims(&TokenClaims {
            ns: namespace.to_owned(),
            sa: service_account.to_owned(),
            iat: now_secs(),
            exp: None,
        })
    }

    /// A token carrying `claims` as given.
    pub fn issue_claims(&self, claims: &TokenClaims) -> String {
        let json = serde_json::to_vec(claims).unwrap_or_default();
        let signed = format!("{TOKEN_PREFIX}{}", B64.encode(json));
        let tag = hmac::sign(&self.key, signed.as_bytes());
        format!("{signed}.{}", B64.encode(tag.as_ref()))
    }

    /// Checks a token's MAC and expiry; returns (namespace, service account).
    pub fn verify(&self, token: &str) -> Result<(String, String), AuthError> {
        let claims = self.verify_claims(token)?;
        Ok((claims.ns, claims.sa))
    }

    /// Checks a token's MAC and expiry; returns its claims.
    pub fn verify_claims(&self, token: &str) -> Result<TokenClaims, AuthError> {
        let token = token.trim();
        let Some(rest) = token.strip_prefix(TOKEN_PREFIX) else {
            return Err(AuthError::Malformed(format!(
                "a local token starts with {TOKEN_PREFIX:?}"
            )));
        };
        let Some((payload, mac)) = rest.split_once('.') else {
            return Err(AuthError::Malformed(
                "expected mast1.<payload>.<mac>".into(),
            ));
        };
        let mac = B64
            .decode(mac)
            .map_err(|e| AuthError::Malformed(format!("signature is not base64url: {e}")))?;
        let signed = &token[..TOKEN_PREFIX.len() + payload.len()];
        hmac::verify(&self.key, signed.as_bytes(), &mac).map_err(|_| AuthError::BadSignature)?;
        let json = B64
            .decode(payload)
            .map_err(|e| AuthError::Malformed(format!("payload is not base64url: {e}")))?;
        let claims: TokenClaims = serde_json::from_slice(&json)
            .map_err(|e| AuthError::Malformed(format!("payload: {e}")))?;
        if claims.ns.is_empty() || claims.sa.is_empty() {
            return Err(AuthError::Malformed(
                "namespace and service account must not be empty".into(),
            ));
        }
        if let Some(exp) = claims.exp
            && exp <= now_secs()
        {
            return Err(AuthError::Expired(exp));
        }
        Ok(claims)
    }

    /// The key file, when the key is kept on disk.
    pub fn key_path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

fn random_key() -> std::io::Result<[u8; 32]> {
    let mut key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| std::io::Error::other("no system randomness"))?;
    Ok(key)
}
