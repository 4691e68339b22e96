//! JWTs for RequestAuthentication scenarios: an ES256 key made at run time (ring), its JWKS
//! as a RequestAuthentication would inline it, and signed or forged tokens.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

/// An issuer's signing key.
pub struct Issuer {
    /// The `iss` claim.
    pub iss: String,
    key: EcdsaKeyPair,
    kid: String,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer").field("iss", &self.iss).finish()
    }
}

impl Issuer {
    /// A new P-256 key for issuer `iss`.
    pub fn new(iss: &str) -> anyhow::Result<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow::anyhow!("generating a P-256 key"))?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| anyhow::anyhow!("loading the P-256 key"))?;
        Ok(Self {
            iss: iss.into(),
            key,
            kid: "e2e-key".into(),
        })
    }

    /// The JWKS (one EC key) as JSON text.
    pub fn jwks(&self) -> String {
        let point = self.key.public_key().as_ref();
        let (x, y) = (&point[1..33], &point[33..65]);
        serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
            "x": B64.encode(x), "y": B64.encode(y),
        }]})
        .to_string()
    }

    /// A token for `sub` with more `claims` (a JSON object), valid for an hour.
    pub fn token(&self, sub: &str, claims: serde_json::Value) -> anyhow::Result<String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let mut payload = serde_json::json!({
            "iss": self.iss, "sub": sub, "iat": now, "exp": now + 3600,
        });
        if let (Some(p), Some(extra)) = (payload.as_object_mut(), claims.as_object()) {
            for (k, v) in extra {
                p.insert(k.clone(), v.clone());
            }
        }
        self.sign(&payload)
    }

    /// Signs `payload` as an ES256 JWS.
    pub fn sign(&self, payload: &serde_json::Value) -> anyhow::Result<String> {
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(payload.to_string())
        );
        let sig = self
            .key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| anyhow::anyhow!("signing"))?;
        Ok(format!("{signing_input}.{}", B64.encode(sig.as_ref())))
    }
}

/// `token` with its payload replaced by `payload` and the original signature kept: a forgery.
pub fn forge(token: &str, payload: &serde_json::Value) -> String {
    let mut parts = token.split('.');
    let header = parts.next().unwrap_or_default();
    let _ = parts.next();
    let sig = parts.next().unwrap_or_default();
    format!("{header}.{}.{sig}", B64.encode(payload.to_string()))
}
