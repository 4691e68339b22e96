//! JWKS documents (RFC 7517): RSA (`n`, `e`), EC (`crv`, `x`, `y`: P-256, P-384), OKP
//! (`Ed25519`, `x`) and oct (`k`) keys, decoded once at conversion, and signature
//! verification with `ring` following `jwt_verify_lib`'s key selection (kid, then alg).

use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::Value;

use super::token::{B64URL, Jwt, Status};
use base64::Engine as _;

/// One usable key.
#[derive(Debug, Clone)]
pub struct Jwk {
    kid: String,
    alg: String,
    key: Key,
}

#[derive(Debug, Clone)]
enum Key {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed point `04 || x || y`, and the curve's name.
    Ec {
        crv: &'static str,
        point: Vec<u8>,
    },
    Ed25519(Vec<u8>),
    Oct(Vec<u8>),
}

/// A key set.
#[derive(Debug, Clone, Default)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

fn field<'a>(o: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a str> {
    o.get(name).and_then(Value::as_str)
}

fn b64(o: &serde_json::Map<String, Value>, name: &str) -> Option<Vec<u8>> {
    B64URL.decode(field(o, name)?).ok()
}

fn pad_to(mut v: Vec<u8>, len: usize) -> Option<Vec<u8>> {
    if v.len() > len {
        return None;
    }
    while v.len() < len {
        v.insert(0, 0);
    }
    Some(v)
}

impl Jwks {
    /// Parses a JWKS document; keys that cannot be used are skipped (as unsupported key
    /// types are by Envoy). Fails when the text is not a JWKS at all.
    pub fn parse(text: &str) -> Result<Self, String> {
        let doc: Value = serde_json::from_str(text).map_err(|_| "Jwks is an invalid JSON")?;
        let keys = doc
            .get("keys")
            .ok_or("Jwks does not have [keys] field")?
            .as_array()
            .ok_or("[keys] in Jwks is not an array")?;
        let keys: Vec<Jwk> = keys
            .iter()
            .filter_map(|k| k.as_object().and_then(parse_key))
            .collect();
        if keys.is_empty() {
            return Err("Jwks doesn't have any valid public key".into());
        }
        Ok(Jwks { keys })
    }

    /// Verifies the token's signature with the first matching key (`jwt_verify_lib`'s
    /// `verifyJwtWithoutTimeChecking`).
    pub fn verify(&self, jwt: &Jwt<'_>) -> Status {
        let mut candidate = false;
        for k in &self.keys {
            if !jwt.kid.is_empty() && !k.kid.is_empty() && k.kid != jwt.kid {
                continue;
            }
            if !k.alg.is_empty() && k.alg != jwt.alg {
                continue;
            }
            candidate = true;
            match verify_with(&k.key, jwt) {
                Status::Ok => return Status::Ok,
                Status::Ed25519WrongLength => return Status::Ed25519WrongLength,
                _ => {}
            }
        }
        if candidate {
            Status::VerificationFail
        } else {
            Status::KidAlgMismatch
        }
    }
}

fn parse_key(o: &serde_json::Map<String, Value>) -> Option<Jwk> {
    let alg = field(o, "alg").unwrap_or("").to_owned();
    let key = match field(o, "kty")? {
        "RSA" if alg.is_empty() || alg.starts_with("RS") || alg.starts_with("PS") => Key::Rsa {
            n: b64(o, "n")?,
            e: b64(o, "e")?,
        },
        "EC" if alg.is_empty() || alg.starts_with("ES") => {
            let (crv, len) = match field(o, "crv").unwrap_or(match alg.as_str() {
                "ES384" => "P-384",
                _ => "P-256",
            }) {
                "P-256" => ("P-256", 32),
                "P-384" => ("P-384", 48),
                _ => return None,
            };
            let mut point = vec![4u8];
            point.extend(pad_to(b64(o, "x")?, len)?);
            point.extend(pad_to(b64(o, "y")?, len)?);
            Key::Ec { crv, point }
        }
        "OKP" if (alg.is_empty() || alg == "EdDSA") && field(o, "crv") == Some("Ed25519") => {
            let x = b64(o, "x")?;
            (x.len() == 32).then_some(())?;
            Key::Ed25519(x)
        }
        "oct" if alg.is_empty() || alg.starts_with("HS") => Key::Oct(b64(o, "k")?),
        _ => return None,
    };
    Some(Jwk {
        kid: field(o, "kid").unwrap_or("").to_owned(),
        alg,
        key,
    })
}

fn verify_with(key: &Key, jwt: &Jwt<'_>) -> Status {
    let msg = jwt.signed.as_bytes();
    let sig = jwt.signature.as_slice();
    let ok = match (key, jwt.alg.as_str()) {
        (Key::Rsa { n, e }, alg) => {
            let params: &signature::RsaParameters = match alg {
                "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
                _ => return Status::VerificationFail,
            };
            RsaPublicKeyComponents { n, e }
                .verify(params, msg, sig)
                .is_ok()
        }
        (Key::Ec { crv, point }, alg) => {
            let params = match (alg, *crv) {
                ("ES256", "P-256") => &signature::ECDSA_P256_SHA256_FIXED,
                ("ES384", "P-384") => &signature::ECDSA_P384_SHA384_FIXED,
                _ => return Status::VerificationFail,
            };
            UnparsedPublicKey::new(params, point)
                .verify(msg, sig)
                .is_ok()
        }
        (Key::Ed25519(x), "EdDSA") => {
            if sig.len() != 64 {
                return Status::Ed25519WrongLength;
            }
            UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(msg, sig)
                .is_ok()
        }
        (Key::Oct(k), alg) => {
            let algorithm = match alg {
                "HS256" => ring::hmac::HMAC_SHA256,
                "HS384" => ring::hmac::HMAC_SHA384,
                "HS512" => ring::hmac::HMAC_SHA512,
                _ => return Status::VerificationFail,
            };
            ring::hmac::verify(&ring::hmac::Key::new(algorithm, k), msg, sig).is_ok()
        }
        _ => false,
    };
    if ok {
        Status::Ok
    } else {
        Status::VerificationFail
    }
}
