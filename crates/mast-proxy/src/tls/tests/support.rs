//! Test PKI and contexts: an rcgen CA issuing workload certificates (URI SANs, expired ones),
//! bundles, and the TLS contexts mastd generates (STRICT inbound, Istio upstream).

use envoy_types::pb::envoy::config::core::v3::{ConfigSource, TransportSocket, transport_socket};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::{
    CombinedCertificateValidationContext, ValidationContextType,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig,
    SubjectAltNameMatcher, TlsParameters,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use mast_ca::CertBundle;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SanType as RcSan,
};

/// A test certificate authority.
pub(crate) struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} root"));
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    pub(crate) fn root_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf with `uri` (and `dns`) SANs: (chain PEM, key PEM).
    pub(crate) fn leaf(&self, uri: &str, dns: &[&str], expired: bool) -> (String, String) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "mast");
        params
            .subject_alt_names
            .push(RcSan::URI(uri.try_into().unwrap()));
        for d in dns {
            params
                .subject_alt_names
                .push(RcSan::DnsName((*d).try_into().unwrap()));
        }
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.serial_number = Some(fastrand::u64(1..).into());
        if expired {
            params.not_before = rcgen::date_time_ymd(2001, 1, 1);
            params.not_after = rcgen::date_time_ymd(2002, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A workload bundle for `ns`/`sa`.
    pub(crate) fn bundle(&self, ns: &str, sa: &str) -> CertBundle {
        let (chain, key) = self.leaf(&spiffe(ns, sa), &[], false);
        CertBundle::from_chain(&[chain, self.root_pem()], key).unwrap()
    }
}

pub(crate) fn spiffe(ns: &str, sa: &str) -> String {
    format!("spiffe://cluster.local/ns/{ns}/sa/{sa}")
}

/// A bundle from a fresh CA.
pub(crate) fn bundle(ns: &str, sa: &str) -> CertBundle {
    Ca::new("test").bundle(ns, sa)
}

pub(crate) fn sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.into(),
        sds_config: Some(ConfigSource::default()),
    }
}

pub(crate) fn uri_matcher(pattern: MatchPattern) -> SubjectAltNameMatcher {
    SubjectAltNameMatcher {
        san_type: SanType::Uri as i32,
        matcher: Some(StringMatcher {
            match_pattern: Some(pattern),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Istio's common context: TLS 1.2–1.3, SDS `default` and `ROOTCA`, URI SAN matchers.
pub(crate) fn istio_common(alpn: &[&str], sans: Vec<SubjectAltNameMatcher>) -> CommonTlsContext {
    CommonTlsContext {
        tls_params: Some(TlsParameters {
            tls_minimum_protocol_version: 3,
            tls_maximum_protocol_version: 4,
            ..Default::default()
        }),
        alpn_protocols: alpn.iter().map(|s| (*s).to_owned()).collect(),
        tls_certificate_sds_secret_configs: vec![sds("default")],
        validation_context_type: Some(ValidationContextType::CombinedValidationContext(
            CombinedCertificateValidationContext {
                default_validation_context: Some(CertificateValidationContext {
                    match_typed_subject_alt_names: sans,
                    ..Default::default()
                }),
                validation_context_sds_secret_config: Some(sds("ROOTCA")),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

/// The STRICT inbound context mastd generates.
pub(crate) fn strict_context() -> DownstreamTlsContext {
    DownstreamTlsContext {
        common_tls_context: Some(istio_common(&["h2", "http/1.1"], Vec::new())),
        require_client_certificate: Some(envoy_types::pb::google::protobuf::BoolValue {
            value: true,
        }),
        ..Default::default()
    }
}

/// `ts` as an `envoy.transport_sockets.tls` transport socket.
pub(crate) fn tls_socket<M: prost::Name>(ctx: M) -> TransportSocket {
    TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(
            envoy_types::util::pack_any(ctx),
        )),
    }
}
