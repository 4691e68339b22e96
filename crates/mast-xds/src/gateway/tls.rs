//! The `DownstreamTlsContext` of a TLS-terminating gateway server (Istio's
//! `BuildListenerTLSContext` for gateways):
//!
//! - `require_client_certificate`: true for MUTUAL and ISTIO_MUTUAL;
//! - ALPN `h2,http/1.1` (ISTIO_MUTUAL on a TCP/TLS server: `istio-peer-exchange,istio`);
//! - certificates: ISTIO_MUTUAL → SDS `default`, peers validated with SDS `ROOTCA`
//!   (and `subjectAltNames`); `credentialName` (`credentialNames`) → the Kubernetes Secret's
//!   certificate, key and CA (its own or `<name>-cacert`) inlined; else the
//!   `serverCertificate`/`privateKey`/`caCertificates` files (and `tlsCertificates`);
//! - which Secret a `credentialName` names and whether this proxy may have it, as Istio's SDS
//!   server decides (`filterAuthorizedResources` in `pilot/pkg/xds/sds.go`, with the
//!   references `MergeGateways` verifies): `name`, `kubernetes://name` → the proxy's
//!   namespace; `kubernetes://ns/name` only when `ns` is the proxy's namespace;
//!   `kubernetes-gateway://ns/name` for a Gateway in the proxy's namespace when `ns` is that
//!   namespace too, or when the Gateway came from the Gateway API conversion (which admitted
//!   the cross-namespace reference only under a ReferenceGrant; a hand-written Istio Gateway
//!   using `kubernetes-gateway://` across namespaces is refused, as Istio does without a
//!   grant); `builtin://` → the proxy's own certificate (SDS `default`, clients checked
//!   against `ROOTCA`);
//! - client validation for MUTUAL / OPTIONAL_MUTUAL / ISTIO_MUTUAL: `trusted_ca`,
//!   `match_typed_subject_alt_names` from `subjectAltNames`, `verify_certificate_spki`,
//!   `verify_certificate_hash`, `crl` from `caCrl`;
//! - `tls_params` for SIMPLE / MUTUAL / OPTIONAL_MUTUAL only: `minProtocolVersion`,
//!   `maxProtocolVersion`, `cipherSuites` (duplicates dropped, as Istio's
//!   `FilterCipherSuites`). Istio sets no cipher list of its own when `cipherSuites` is unset
//!   (the mesh `tlsDefaults` are empty by default): Envoy's defaults apply, and so here.

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::CombinedCertificateValidationContext;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::tls_parameters::TlsProtocol as EnvoyTlsProtocol;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, TlsCertificate,
    TlsParameters,
};
use envoy_types::pb::google::protobuf::BoolValue;
use mast_config::networking::gateway::{ServerTlsMode, ServerTlsSettings, TlsProtocol};
use mast_model::gateway_api::uses_gateway_semantics;
use mast_model::snapshot::GatewayServer;
use mast_model::snapshot::gateway::Credential;
use mast_model::{MeshSnapshot, ProxyNode};

use crate::cluster::tls::{file, san};
use crate::sds;

#[cfg(test)]
mod tests;

/// ALPN of terminating HTTP servers.
pub const ALPN_HTTP: [&str; 2] = ["h2", "http/1.1"];
/// ALPN of an ISTIO_MUTUAL TCP/TLS server (Istio's `ALPNDownstream`).
pub const ALPN_ISTIO: [&str; 2] = ["istio-peer-exchange", "istio"];

/// Why a server's TLS context cannot be built: the server is left out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// `credentialName` names no Secret with a certificate in the gateway's namespace.
    #[error("Secret {namespace}/{name} with a certificate not found")]
    MissingSecret {
        /// The proxy's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
    /// MUTUAL with `credentialName` but no CA (neither in the Secret nor in `<name>-cacert`).
    #[error("Secret {namespace}/{name} has no CA certificate for MUTUAL (nor {name}-cacert)")]
    MissingCa {
        /// The proxy's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
    /// A `credentialName` that cannot be parsed or that this proxy may not read.
    #[error("credential {credential:?} refused: {reason}")]
    Refused {
        /// The `credentialName` as written.
        credential: String,
        /// Why.
        reason: String,
    },
    /// No certificate configured at all.
    #[error("no server certificate: set credentialName or serverCertificate and privateKey")]
    NoCertificate,
}

/// The TLS context of `server` (which terminates TLS) on `proxy`.
pub fn downstream_context(
    snapshot: &MeshSnapshot,
    proxy: &ProxyNode,
    server: &GatewayServer<'_>,
) -> Result<DownstreamTlsContext, TlsError> {
    let Some(tls) = server.server.tls.as_ref() else {
        return Err(TlsError::NoCertificate);
    };
    let mode = tls.mode();
    let alpn: &[&str] = if mode == ServerTlsMode::IstioMutual
        && !server.protocol.is_http()
        && server.protocol != mast_model::Protocol::Https
    {
        &ALPN_ISTIO
    } else {
        &ALPN_HTTP
    };
    let require = matches!(mode, ServerTlsMode::Mutual | ServerTlsMode::IstioMutual);
    let validate = require || mode == ServerTlsMode::OptionalMutual;
    let mut common = CommonTlsContext {
        alpn_protocols: alpn.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    };
    if mode == ServerTlsMode::IstioMutual || is_builtin(tls) {
        workload_certificate(
            &mut common,
            tls,
            validate || mode == ServerTlsMode::IstioMutual,
        );
        if mode != ServerTlsMode::IstioMutual {
            common.tls_params = tls_params(tls);
        }
    } else {
        let gateway = server.gateway;
        let gateway_ns = (
            gateway.namespace.as_str(),
            uses_gateway_semantics(&gateway.name),
        );
        let (certs, ca) = certificates(snapshot, proxy, gateway_ns, tls, validate)?;
        common.tls_certificates = certs;
        if validate {
            let mut v = client_checks(tls);
            v.trusted_ca = ca;
            common.validation_context_type = Some(ValidationContextType::ValidationContext(v));
        }
        common.tls_params = tls_params(tls);
    }
    Ok(DownstreamTlsContext {
        common_tls_context: Some(common),
        require_client_certificate: Some(BoolValue { value: require }),
        ..Default::default()
    })
}

/// The proxy's own certificate (SDS `default`), clients checked against the mesh root (SDS
/// `ROOTCA`) when `validate`: ISTIO_MUTUAL, and `credentialName: builtin://` (Istio's
/// credential SDS names `default` / `ROOTCA` for it).
fn workload_certificate(common: &mut CommonTlsContext, tls: &ServerTlsSettings, validate: bool) {
    common.tls_certificate_sds_secret_configs = vec![sds::default_secret()];
    if validate {
        common.validation_context_type = Some(ValidationContextType::CombinedValidationContext(
            CombinedCertificateValidationContext {
                default_validation_context: Some(client_checks(tls)),
                validation_context_sds_secret_config: Some(sds::rootca_secret()),
                ..Default::default()
            },
        ));
    }
}

/// The server certificates and the CA that validates clients.
fn certificates(
    snapshot: &MeshSnapshot,
    proxy: &ProxyNode,
    gateway_ns: (&str, bool),
    tls: &ServerTlsSettings,
    validate: bool,
) -> Result<(Vec<TlsCertificate>, Option<DataSource>), TlsError> {
    let mut names: Vec<&str> = tls.credential_names.iter().map(String::as_str).collect();
    if let Some(n) = tls.credential_name.as_deref().filter(|n| !n.is_empty()) {
        names.insert(0, n);
    }
    if !names.is_empty() {
        return credential_certificates(snapshot, proxy, gateway_ns, tls, &names, validate);
    }
    let mut certs = Vec::new();
    let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    if let (Some(c), Some(k)) = (
        nonempty(&tls.server_certificate),
        nonempty(&tls.private_key),
    ) {
        certs.push(cert_pair(file(&c), file(&k)));
    }
    let mut ca = nonempty(&tls.ca_certificates);
    for t in &tls.tls_certificates {
        if let (Some(c), Some(k)) = (nonempty(&t.server_certificate), nonempty(&t.private_key)) {
            certs.push(cert_pair(file(&c), file(&k)));
        }
        ca = ca.or_else(|| nonempty(&t.ca_certificates));
    }
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok((certs, ca.map(|c| file(&c))))
}

/// Certificates from the Kubernetes Secrets `names` name, inlined; `gateway_ns`: the
/// Gateway's namespace and whether the Gateway API conversion made it.
fn credential_certificates(
    snapshot: &MeshSnapshot,
    proxy: &ProxyNode,
    gateway_ns: (&str, bool),
    tls: &ServerTlsSettings,
    names: &[&str],
    validate: bool,
) -> Result<(Vec<TlsCertificate>, Option<DataSource>), TlsError> {
    let mut certs = Vec::with_capacity(names.len());
    let mut ca = None;
    for credential in names {
        let (namespace, name) = readable_secret(proxy, gateway_ns, credential)?;
        let secret =
            snapshot
                .tls_secret(&namespace, &name)
                .ok_or_else(|| TlsError::MissingSecret {
                    namespace: namespace.clone(),
                    name: name.clone(),
                })?;
        certs.push(cert_pair(
            inline(&secret.cert_chain),
            inline(&secret.private_key),
        ));
        ca = ca.or_else(|| secret.ca_cert.clone());
    }
    if let Some(n) = tls
        .ca_cert_credential_name
        .as_deref()
        .filter(|n| !n.is_empty())
    {
        let (namespace, name) = readable_secret(proxy, gateway_ns, n)?;
        ca = snapshot.secret_ca(&namespace, &name).map(str::to_owned);
    }
    if ca.is_none() && validate {
        let first = names[0];
        let (namespace, name) = readable_secret(proxy, gateway_ns, first)?;
        return Err(TlsError::MissingCa { namespace, name });
    }
    Ok((certs, ca.map(|c| inline(&c))))
}

/// The `(namespace, name)` of the Secret `credential` names, when `proxy` may read it (see
/// the module doc).
fn readable_secret(
    proxy: &ProxyNode,
    (gateway_ns, converted): (&str, bool),
    credential: &str,
) -> Result<(String, String), TlsError> {
    let refused = |reason: String| TlsError::Refused {
        credential: credential.to_owned(),
        reason,
    };
    let parsed = Credential::parse(credential, &proxy.namespace).map_err(refused)?;
    let own = proxy.namespace.as_str();
    let allowed = match &parsed {
        Credential::Secret { namespace, .. } => namespace == own,
        Credential::GatewaySecret { namespace, .. } => {
            gateway_ns == own && (namespace == own || converted)
        }
        Credential::Builtin => false,
    };
    match parsed.secret() {
        Some((namespace, name)) if allowed => Ok((namespace.to_owned(), name.to_owned())),
        Some((namespace, _)) => Err(refused(format!(
            "a gateway proxy in namespace {own:?} may not read Secrets of namespace {namespace:?} (a cross-namespace certificate needs a Gateway API certificateRef allowed by a ReferenceGrant)"
        ))),
        None => Err(refused(
            "builtin:// cannot be combined with other credentials".into(),
        )),
    }
}

/// Whether the server's certificate is the proxy's own (`credentialName: builtin://…`).
fn is_builtin(tls: &ServerTlsSettings) -> bool {
    tls.credential_name
        .as_deref()
        .is_some_and(|n| Credential::parse(n, "").is_ok_and(|c| c == Credential::Builtin))
}

fn cert_pair(chain: DataSource, key: DataSource) -> TlsCertificate {
    TlsCertificate {
        certificate_chain: Some(chain),
        private_key: Some(key),
        ..Default::default()
    }
}

fn inline(pem: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::InlineString(pem.to_owned())),
        ..Default::default()
    }
}

/// What a client certificate is checked against besides its CA: SANs, SPKI and hashes, CRL.
fn client_checks(tls: &ServerTlsSettings) -> CertificateValidationContext {
    CertificateValidationContext {
        match_typed_subject_alt_names: tls.subject_alt_names.iter().map(|s| san(s)).collect(),
        verify_certificate_spki: tls.verify_certificate_spki.clone(),
        verify_certificate_hash: tls.verify_certificate_hash.clone(),
        crl: tls.ca_crl.as_deref().filter(|s| !s.is_empty()).map(file),
        ..Default::default()
    }
}

/// `minProtocolVersion`, `maxProtocolVersion` and `cipherSuites`; `None` when none is set.
fn tls_params(tls: &ServerTlsSettings) -> Option<TlsParameters> {
    let mut params = TlsParameters::default();
    let mut set = false;
    if let Some(v) = tls
        .min_protocol_version
        .filter(|v| *v != TlsProtocol::TlsAuto)
    {
        params.tls_minimum_protocol_version = protocol(v) as i32;
        set = true;
    }
    if let Some(v) = tls
        .max_protocol_version
        .filter(|v| *v != TlsProtocol::TlsAuto)
    {
        params.tls_maximum_protocol_version = protocol(v) as i32;
        set = true;
    }
    let mut ciphers: Vec<String> = Vec::new();
    for c in &tls.cipher_suites {
        if !ciphers.contains(c) {
            ciphers.push(c.clone());
        }
    }
    if !ciphers.is_empty() {
        params.cipher_suites = ciphers;
        set = true;
    }
    set.then_some(params)
}

/// The Envoy version for an Istio one (the enums map one to one).
pub fn protocol(v: TlsProtocol) -> EnvoyTlsProtocol {
    match v {
        TlsProtocol::TlsAuto => EnvoyTlsProtocol::TlsAuto,
        TlsProtocol::TlsV1_0 => EnvoyTlsProtocol::TlSv10,
        TlsProtocol::TlsV1_1 => EnvoyTlsProtocol::TlSv11,
        TlsProtocol::TlsV1_2 => EnvoyTlsProtocol::TlSv12,
        TlsProtocol::TlsV1_3 => EnvoyTlsProtocol::TlSv13,
    }
}
