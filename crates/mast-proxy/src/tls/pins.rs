//! Certificate pins of a validation context (`verify_certificate_hash`: hex SHA-256 of the
//! DER, colons allowed; `verify_certificate_spki`: base64 SHA-256 of the SubjectPublicKeyInfo),
//! as Envoy's default validator checks them: with either list set, the peer certificate must
//! match an entry of one of them (in addition to the chain and SAN checks).

use x509_parser::prelude::{FromDer as _, X509Certificate};

/// The pins (SHA-256 digests); empty: no pinning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pins {
    hashes: Vec<[u8; 32]>,
    spki: Vec<[u8; 32]>,
}

impl Pins {
    /// Parses the lists (errors: (field, reason), relative to the validation context).
    pub fn parse(hashes: &[String], spki: &[String]) -> Result<Self, (String, String)> {
        let mut pins = Pins::default();
        for (i, h) in hashes.iter().enumerate() {
            let hex: String = h.chars().filter(|c| *c != ':').collect();
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|j| {
                    hex.get(j..j + 2)
                        .and_then(|b| u8::from_str_radix(b, 16).ok())
                })
                .collect::<Option<Vec<u8>>>();
            let digest = bytes
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| {
                    (
                        format!("verify_certificate_hash[{i}]"),
                        format!("{h:?} is not a hex SHA-256 digest"),
                    )
                })?;
            pins.hashes.push(digest);
        }
        for (i, s) in spki.iter().enumerate() {
            use base64::Engine as _;
            let digest = base64::engine::general_purpose::STANDARD
                .decode(s)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| {
                    (
                        format!("verify_certificate_spki[{i}]"),
                        format!("{s:?} is not a base64 SHA-256 digest"),
                    )
                })?;
            pins.spki.push(digest);
        }
        Ok(pins)
    }

    /// Whether no pin is configured.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty() && self.spki.is_empty()
    }

    /// Whether the DER certificate matches (always, without pins).
    pub fn matches(&self, der: &[u8]) -> bool {
        if self.is_empty() {
            return true;
        }
        let sha = |b: &[u8]| ring::digest::digest(&ring::digest::SHA256, b);
        if !self.hashes.is_empty() && self.hashes.iter().any(|h| h[..] == *sha(der).as_ref()) {
            return true;
        }
        if self.spki.is_empty() {
            return false;
        }
        let Ok((_, cert)) = X509Certificate::from_der(der) else {
            return false;
        };
        let digest = sha(cert.public_key().raw);
        self.spki.iter().any(|p| p[..] == *digest.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_spki_pins() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().to_vec();
        let hash = ring::digest::digest(&ring::digest::SHA256, &der);
        let hex: Vec<String> = hash.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        let spki = {
            use base64::Engine as _;
            let (_, parsed) = X509Certificate::from_der(&der).unwrap();
            let d = ring::digest::digest(&ring::digest::SHA256, parsed.public_key().raw);
            base64::engine::general_purpose::STANDARD.encode(d.as_ref())
        };
        let other = "00".repeat(32);
        assert!(Pins::parse(&[hex.join(":")], &[]).unwrap().matches(&der));
        assert!(
            Pins::parse(std::slice::from_ref(&other), std::slice::from_ref(&spki))
                .unwrap()
                .matches(&der)
        );
        assert!(!Pins::parse(&[other], &[]).unwrap().matches(&der));
        assert!(Pins::default().matches(&der));
        assert_eq!(
            Pins::parse(&["xyz".into()], &[]).unwrap_err().0,
            "verify_certificate_hash[0]"
        );
        assert_eq!(
            Pins::parse(&[], &["!!".into()]).unwrap_err().0,
            "verify_certificate_spki[0]"
        );
    }
}
