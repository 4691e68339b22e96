//! Certificate verifiers with Envoy's semantics, reading the current roots at each handshake
//! (so a root rotation applies to the next handshake):
//! - [`ServerVerifier`] (upstream): the chain must lead to a trusted root; then the SAN
//!   matchers must match, or with none and `auto_san_validation`, the certificate must be valid
//!   for the SNI host. The SNI is never checked otherwise (Envoy does not). Without a
//!   validation context nothing is verified but the handshake signature.
//! - [`ClientVerifier`] (downstream): the client chain must lead to a trusted root and match
//!   the SAN matchers; a certificate is required when `require_client_certificate` is set.
//!
//! Both check the certificate pins (`verify_certificate_hash` / `_spki`) when configured.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use super::context::Validation;
use super::matcher::any_matches;
use super::peer::sans;
use super::provider;

fn algorithms() -> WebPkiSupportedAlgorithms {
    provider().signature_verification_algorithms
}

fn san_mismatch() -> Error {
    Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure)
}

/// Verifies an upstream's certificate.
#[derive(Debug)]
pub struct ServerVerifier {
    validation: Option<ValidationDebug>,
    auto_san: bool,
}

struct ValidationDebug(Validation);

impl std::fmt::Debug for ValidationDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validation")
            .field("sans", &self.0.sans)
            .finish()
    }
}

impl ServerVerifier {
    /// A verifier for `validation` (`None`: accept any certificate).
    pub fn new(validation: Option<Validation>, auto_san: bool) -> Arc<Self> {
        Arc::new(Self {
            validation: validation.map(ValidationDebug),
            auto_san,
        })
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some(ValidationDebug(v)) = &self.validation else {
            return Ok(ServerCertVerified::assertion());
        };
        let roots = v
            .roots
            .roots()
            .ok_or_else(|| Error::General("no trusted roots yet (SDS ROOTCA)".into()))?;
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &roots,
            intermediates,
            now,
            algorithms().all,
        )?;
        if !v.pins.matches(end_entity.as_ref()) {
            return Err(san_mismatch());
        }
        if !v.sans.is_empty() {
            if !any_matches(&v.sans, &sans(end_entity.as_ref())) {
                return Err(san_mismatch());
            }
        } else if self.auto_san {
            rustls::client::verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        algorithms().supported_schemes()
    }
}

/// Verifies a downstream client's certificate.
#[derive(Debug)]
pub struct ClientVerifier {
    validation: ValidationDebug,
    mandatory: bool,
}

impl ClientVerifier {
    /// A verifier for `validation`; `mandatory` = `require_client_certificate`.
    pub fn new(validation: Validation, mandatory: bool) -> Arc<Self> {
        Arc::new(Self {
            validation: ValidationDebug(validation),
            mandatory,
        })
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let v = &self.validation.0;
        let verifier = v
            .roots
            .client_verifier()
            .ok_or_else(|| Error::General("no trusted roots yet (SDS ROOTCA)".into()))?;
        verifier.verify_client_cert(end_entity, intermediates, now)?;
        if !v.pins.matches(end_entity.as_ref()) {
            return Err(san_mismatch());
        }
        if !v.sans.is_empty() && !any_matches(&v.sans, &sans(end_entity.as_ref())) {
            return Err(san_mismatch());
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        algorithms().supported_schemes()
    }
}
