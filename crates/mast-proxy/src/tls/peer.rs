//! Facts of a certificate for the rest of the proxy, read with `x509-parser`: its SANs by type,
//! its subject in RFC 2253 form and the SHA-256 of its DER, and [`PeerTls`] for a terminated
//! connection.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::PeerTls;

/// A certificate's SANs by type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sans {
    /// URI SANs.
    pub uri: Vec<String>,
    /// DNS SANs.
    pub dns: Vec<String>,
    /// Email SANs.
    pub email: Vec<String>,
    /// IP SANs, in their text form.
    pub ip: Vec<String>,
}

/// The SANs of a DER certificate (empty when it does not parse).
pub fn sans(der: &[u8]) -> Sans {
    match X509Certificate::from_der(der) {
        Ok((_, cert)) => sans_of(&cert),
        Err(_) => Sans::default(),
    }
}

fn sans_of(cert: &X509Certificate<'_>) -> Sans {
    let mut out = Sans::default();
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return out;
    };
    for name in &ext.value.general_names {
        match name {
            GeneralName::URI(s) => out.uri.push((*s).to_owned()),
            GeneralName::DNSName(s) => out.dns.push((*s).to_owned()),
            GeneralName::RFC822Name(s) => out.email.push((*s).to_owned()),
            GeneralName::IPAddress(b) => {
                if let Some(ip) = ip_text(b) {
                    out.ip.push(ip);
                }
            }
            _ => {}
        }
    }
    out
}

fn ip_text(b: &[u8]) -> Option<String> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b)
            .ok()
            .map(|a| std::net::Ipv4Addr::from(a).to_string()),
        16 => <[u8; 16]>::try_from(b)
            .ok()
            .map(|a| std::net::Ipv6Addr::from(a).to_string()),
        _ => None,
    }
}

/// The URI SANs of a DER certificate.
pub fn uri_sans(der: &[u8]) -> Vec<String> {
    sans(der).uri
}

/// The subject in RFC 2253 form (`CN=a,O=b`, last RDN first), empty when it does not parse.
pub fn subject(der: &[u8]) -> String {
    match X509Certificate::from_der(der) {
        Ok((_, cert)) => subject_of(&cert),
        Err(_) => String::new(),
    }
}

fn subject_of(cert: &X509Certificate<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let mut parts = Vec::new();
    for rdn in cert.subject().iter().collect::<Vec<_>>().into_iter().rev() {
        let attrs: Vec<String> = rdn
            .iter()
            .map(|a| {
                let key = x509_parser::objects::oid2abbrev(a.attr_type(), registry)
                    .map(str::to_owned)
                    .unwrap_or_else(|_| a.attr_type().to_id_string());
                let value = a.as_str().map(escape).unwrap_or_default();
                format!("{key}={value}")
            })
            .collect();
        parts.push(attrs.join("+"));
    }
    parts.join(",")
}

fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '));
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Lower-case hex SHA-256 of `der`.
pub fn sha256_hex(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = String::with_capacity(64);
    for b in digest.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// What a server-side handshake established.
pub fn peer_tls(
    conn: &rustls::ServerConnection,
    local_uri_sans: Vec<String>,
    sni: Option<String>,
) -> PeerTls {
    let leaf = conn.peer_certificates().and_then(|c| c.first());
    let (sans, subject, hash) = match leaf {
        Some(c) => (
            sans(c.as_ref()),
            subject(c.as_ref()),
            sha256_hex(c.as_ref()),
        ),
        None => (Sans::default(), String::new(), String::new()),
    };
    PeerTls {
        peer_uri_sans: sans.uri,
        peer_dns_sans: sans.dns,
        peer_subject: subject,
        peer_cert_sha256: hash,
        peer_chain_der: Vec::new(),
        local_uri_sans,
        sni: conn.server_name().map(str::to_owned).or(sni),
        alpn: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
    }
}
