//! Istio's CA messages (`security/proto/istioca.proto`, package `istio.v1.auth`), written by
//! hand with prost: the field numbers and types are Istio's, so the wire format is identical.

/// Certificate request: `istio.v1.auth.IstioCertificateRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IstioCertificateRequest {
    /// PEM-encoded certificate signing request.
    #[prost(string, tag = "1")]
    pub csr: String,
    /// Requested validity in seconds (0 = the CA's default).
    #[prost(int64, tag = "3")]
    pub validity_duration: i64,
    /// Free-form metadata (Istio uses it for impersonation by trusted nodes; Mast ignores it).
    #[prost(message, optional, tag = "4")]
    pub metadata: Option<prost_types::Struct>,
}

/// Certificate response: `istio.v1.auth.IstioCertificateResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IstioCertificateResponse {
    /// PEM certificates: the leaf first, then intermediates, the trust bundle (root(s)) last.
    #[prost(string, repeated, tag = "1")]
    pub cert_chain: Vec<String>,
}

/// The gRPC service name.
pub const SERVICE_NAME: &str = "istio.v1.auth.IstioCertificateService";
/// The method name.
pub const METHOD_NAME: &str = "CreateCertificate";
/// The full request path.
pub const CREATE_CERTIFICATE_PATH: &str =
    "/istio.v1.auth.IstioCertificateService/CreateCertificate";

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn wire_format_uses_istio_tags() {
        let req = IstioCertificateRequest {
            csr: "x".into(),
            validity_duration: 60,
            metadata: None,
        };
        // tag 1 (string) = 0x0a, tag 3 (varint) = 0x18.
        assert_eq!(req.encode_to_vec(), vec![0x0a, 1, b'x', 0x18, 60]);
        let resp = IstioCertificateResponse {
            cert_chain: vec!["a".into(), "b".into()],
        };
        assert_eq!(resp.encode_to_vec(), vec![0x0a, 1, b'a', 0x0a, 1, b'b']);
    }
}
