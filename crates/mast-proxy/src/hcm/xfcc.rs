//! `x-forwarded-client-cert` as Envoy's HCM writes it
//! (`ConnectionManagerUtility::mutateXfccRequestHeader`): `forward_client_cert_details`
//! (SANITIZE, FORWARD_ONLY, APPEND_FORWARD, SANITIZE_SET, ALWAYS_FORWARD_ONLY) and the
//! `set_current_client_cert_details` fields, in Envoy's format and order:
//! `By=<local URI SAN>;Hash=<sha256 hex>;Cert="<url-encoded PEM>";Chain="<url-encoded PEMs>";`
//! `Subject="<subject>";URI=<peer URI SAN>;DNS=<dns>`.

use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use http::{HeaderMap, HeaderValue};

use crate::tls::PeerTls;

/// The header's name.
pub const XFCC: &str = "x-forwarded-client-cert";

/// `forward_client_cert_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Remove the header (Envoy's default).
    #[default]
    Sanitize,
    /// Forward it unchanged on mTLS connections, remove it otherwise.
    ForwardOnly,
    /// On mTLS connections, append this hop's details; remove it otherwise.
    AppendForward,
    /// On mTLS connections, replace it with this hop's details; remove it otherwise.
    SanitizeSet,
    /// Always forward it unchanged.
    AlwaysForwardOnly,
}

/// A converted XFCC policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Xfcc {
    /// The mode.
    pub mode: Mode,
    /// `set_current_client_cert_details.cert`.
    pub cert: bool,
    /// `set_current_client_cert_details.chain`.
    pub chain: bool,
    /// `set_current_client_cert_details.subject`.
    pub subject: bool,
    /// `set_current_client_cert_details.uri`.
    pub uri: bool,
    /// `set_current_client_cert_details.dns`.
    pub dns: bool,
}

impl Xfcc {
    /// Converts the HCM's fields; the error is `(field, reason)`.
    pub fn from_proto(h: &HttpConnectionManager) -> Result<Self, (String, String)> {
        let mode = match h.forward_client_cert_details {
            0 => Mode::Sanitize,
            1 => Mode::ForwardOnly,
            2 => Mode::AppendForward,
            3 => Mode::SanitizeSet,
            4 => Mode::AlwaysForwardOnly,
            m => {
                return Err((
                    "forward_client_cert_details".into(),
                    format!("unknown value {m}"),
                ));
            }
        };
        let mut x = Xfcc {
            mode,
            ..Xfcc::default()
        };
        if let Some(d) = &h.set_current_client_cert_details {
            x.cert = d.cert;
            x.chain = d.chain;
            x.subject = d.subject.is_some_and(|b| b.value);
            x.uri = d.uri;
            x.dns = d.dns;
        }
        Ok(x)
    }

    /// Rewrites the request's header for a connection with `tls` facts.
    pub fn apply(&self, headers: &mut HeaderMap, tls: Option<&PeerTls>) {
        if self.mode == Mode::AlwaysForwardOnly {
            return;
        }
        let peer = tls.filter(|t| presented(t));
        let Some(peer) = peer.filter(|_| self.mode != Mode::Sanitize) else {
            headers.remove(XFCC);
            return;
        };
        if self.mode == Mode::ForwardOnly {
            return;
        }
        let mine = self.details(peer);
        let value = if self.mode == Mode::AppendForward {
            let existing: Vec<&str> = headers
                .get_all(XFCC)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            if existing.is_empty() {
                mine
            } else {
                format!("{},{mine}", existing.join(","))
            }
        } else {
            mine
        };
        match HeaderValue::from_str(&value) {
            Ok(v) => {
                headers.insert(XFCC, v);
            }
            Err(_) => {
                headers.remove(XFCC);
            }
        }
    }

    /// This hop's element, in Envoy's field order.
    pub fn details(&self, t: &PeerTls) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(256);
        let field = |out: &mut String, args: std::fmt::Arguments<'_>| {
            if !out.is_empty() {
                out.push(';');
            }
            let _ = out.write_fmt(args);
        };
        for u in &t.local_uri_sans {
            field(&mut out, format_args!("By={u}"));
        }
        if !t.peer_cert_sha256.is_empty() {
            field(&mut out, format_args!("Hash={}", t.peer_cert_sha256));
        }
        if self.cert
            && let Some(leaf) = t.peer_chain_der.first()
        {
            field(
                &mut out,
                format_args!("Cert=\"{}\"", url_encoded_pem(&[leaf])),
            );
        }
        if self.chain && !t.peer_chain_der.is_empty() {
            let all: Vec<&Vec<u8>> = t.peer_chain_der.iter().collect();
            field(
                &mut out,
                format_args!("Chain=\"{}\"", url_encoded_pem(&all)),
            );
        }
        if self.subject {
            field(&mut out, format_args!("Subject=\"{}\"", t.peer_subject));
        }
        if self.uri {
            if t.peer_uri_sans.is_empty() {
                field(&mut out, format_args!("URI="));
            }
            for u in &t.peer_uri_sans {
                field(&mut out, format_args!("URI={u}"));
            }
        }
        if self.dns {
            for d in &t.peer_dns_sans {
                field(&mut out, format_args!("DNS={d}"));
            }
        }
        out
    }
}

/// The certificates as PEM (64-column base64, as BoringSSL writes it), percent-encoded as
/// Envoy's `urlEncodeQueryParameter` (everything but `A-Za-z0-9-._~`).
fn url_encoded_pem(certs: &[&Vec<u8>]) -> String {
    use base64::Engine as _;
    let mut pem = String::new();
    for der in certs {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    let mut out = String::with_capacity(pem.len() * 3 / 2);
    for b in pem.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether the peer presented a certificate.
fn presented(t: &PeerTls) -> bool {
    !t.peer_cert_sha256.is_empty() || !t.peer_uri_sans.is_empty() || !t.peer_subject.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> PeerTls {
        PeerTls {
            peer_uri_sans: vec!["spiffe://cluster.local/ns/foo/sa/sleep".into()],
            peer_dns_sans: vec!["sleep.foo".into()],
            peer_subject: String::new(),
            peer_cert_sha256: "ab12".into(),
            local_uri_sans: vec!["spiffe://cluster.local/ns/foo/sa/httpbin".into()],
            ..PeerTls::default()
        }
    }

    fn run(x: Xfcc, incoming: Option<&'static str>, t: Option<&PeerTls>) -> Option<String> {
        let mut h = HeaderMap::new();
        if let Some(v) = incoming {
            h.insert(XFCC, HeaderValue::from_static(v));
        }
        x.apply(&mut h, t);
        h.get(XFCC).map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn every_mode() {
        let istio = Xfcc {
            mode: Mode::AppendForward,
            subject: true,
            uri: true,
            dns: true,
            ..Xfcc::default()
        };
        let t = tls();
        let hop = "By=spiffe://cluster.local/ns/foo/sa/httpbin;Hash=ab12;Subject=\"\";\
                   URI=spiffe://cluster.local/ns/foo/sa/sleep;DNS=sleep.foo";
        let old = Some("By=a;URI=b");
        let mode = |mode| Xfcc { mode, ..istio };
        #[rustfmt::skip]
        let cases = [
            ("sanitize", mode(Mode::Sanitize), old, Some(&t), None),
            ("forward_only mtls", mode(Mode::ForwardOnly), old, Some(&t), Some("By=a;URI=b".to_owned())),
            ("forward_only plaintext", mode(Mode::ForwardOnly), old, None, None),
            ("append_forward", istio, old, Some(&t), Some(format!("By=a;URI=b,{hop}"))),
            ("append_forward first hop", istio, None, Some(&t), Some(hop.to_owned())),
            ("append_forward plaintext", istio, old, None, None),
            ("sanitize_set", mode(Mode::SanitizeSet), old, Some(&t), Some(hop.to_owned())),
            ("always_forward_only", mode(Mode::AlwaysForwardOnly), old, None, Some("By=a;URI=b".to_owned())),
        ];
        for (name, x, incoming, t, want) in cases {
            assert_eq!(run(x, incoming, t), want, "{name}");
        }
    }

    #[test]
    fn fields_follow_set_current_client_cert_details() {
        let x = Xfcc {
            mode: Mode::SanitizeSet,
            subject: false,
            uri: true,
            dns: false,
            ..Xfcc::default()
        };
        let mut t = tls();
        t.peer_uri_sans.clear();
        t.peer_subject = "CN=x".into();
        assert_eq!(
            x.details(&t),
            "By=spiffe://cluster.local/ns/foo/sa/httpbin;Hash=ab12;URI="
        );
    }

    #[test]
    fn cert_and_chain_are_url_encoded_pem_before_the_subject() {
        let x = Xfcc {
            mode: Mode::SanitizeSet,
            cert: true,
            chain: true,
            subject: true,
            ..Xfcc::default()
        };
        let mut t = tls();
        t.local_uri_sans.clear();
        t.peer_subject = "CN=x".into();
        t.peer_chain_der = vec![vec![0xfb; 3], vec![1, 2, 3]];
        let leaf = "-----BEGIN%20CERTIFICATE-----%0A%2B%2Fv7%0A-----END%20CERTIFICATE-----%0A";
        let second = "-----BEGIN%20CERTIFICATE-----%0AAQID%0A-----END%20CERTIFICATE-----%0A";
        assert_eq!(
            x.details(&t),
            format!("Hash=ab12;Cert=\"{leaf}\";Chain=\"{leaf}{second}\";Subject=\"CN=x\"")
        );
    }
}
