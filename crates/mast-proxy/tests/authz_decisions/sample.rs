//! Sample requests and connections for the decision tests, and the [`Subject`] the RBAC
//! engines see for them.
//!
//! One sample gives the SAME subject to Mast's filters and to Istio's golden filters. The
//! dynamic metadata carries both ways of naming an authenticated request, so each side finds
//! the one it reads:
//! - `envoy.filters.http.jwt_authn` / `payload` `{iss, sub}`: what `jwt_authn` writes and
//!   Mast (like current Istio) matches for `request.auth.principal` / `requestPrincipals`.
//! - `istio_authn` `{request.auth.principal: "<iss>/<sub>", source.principal: <peer SAN
//!   without spiffe://>}`: what Istio's own authn filter wrote, which the (older) golden
//!   files match. Upstream Envoy never writes it; the values here are exactly those Istio's
//!   filter derived from the same token and peer certificate.
//!
//! A request principal without `/` stands for a token whose `iss` is that value and whose
//! `sub` is empty (current Istio's reading of such a value).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use mast_proxy::hcm::stream::ConnInfo;
use mast_proxy::rbac::{Metadata, Subject};
use mast_proxy::tls::PeerTls;
use serde_json::{Map, Value, json};

/// What a request or connection should get, by Istio's semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed, no AUDIT policy matched.
    Allow,
    /// Denied (403 / connection closed).
    Deny,
    /// Allowed and an AUDIT policy matched (logged).
    Log,
}

/// One sample request (HTTP) or connection (TCP: only addresses and TLS count).
#[derive(Debug, Clone)]
pub struct Sample {
    /// Shown in failures.
    pub name: &'static str,
    method: &'static str,
    host: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    peer: IpAddr,
    remote: Option<IpAddr>,
    local: SocketAddr,
    tls: bool,
    sans: Vec<&'static str>,
    sni: Option<&'static str>,
    jwt: Option<&'static str>,
    /// The decision Istio's semantics give.
    pub want: Verdict,
}

/// `GET http://httpbin.foo.svc.cluster.local/` from 10.0.0.5 to 10.0.0.1:8000, plaintext,
/// no token; expected to be denied until told otherwise.
pub fn req(name: &'static str) -> Sample {
    Sample {
        name,
        method: "GET",
        host: "httpbin.foo.svc.cluster.local",
        path: "/",
        headers: Vec::new(),
        peer: ip("10.0.0.5"),
        remote: None,
        local: "10.0.0.1:8000".parse().expect("address"),
        tls: false,
        sans: Vec::new(),
        sni: None,
        jwt: None,
        want: Verdict::Deny,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

impl Sample {
    /// Renames the sample.
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// `:method`.
    pub fn method(mut self, m: &'static str) -> Self {
        self.method = m;
        self
    }

    /// `:authority`.
    pub fn host(mut self, h: &'static str) -> Self {
        self.host = h;
        self
    }

    /// `:path`.
    pub fn path(mut self, p: &'static str) -> Self {
        self.path = p;
        self
    }

    /// One more request header (repeated names are separate header lines).
    pub fn header(mut self, k: &'static str, v: &'static str) -> Self {
        self.headers.push((k, v));
        self
    }

    /// Replaces every request header with this one.
    pub fn header_only(mut self, k: &'static str, v: &'static str) -> Self {
        self.headers.clear();
        self.header(k, v)
    }

    /// Removes every request header.
    pub fn clear_headers(&mut self) {
        self.headers.clear();
    }

    /// The connection's peer address (`source.ip`, `ipBlocks`).
    pub fn from(mut self, peer: &'static str) -> Self {
        self.peer = ip(peer);
        self
    }

    /// The downstream remote address x-forwarded-for gave (`remote.ip`, `remoteIpBlocks`).
    pub fn xff(mut self, remote: &'static str) -> Self {
        self.remote = Some(ip(remote));
        self
    }

    /// The local address (`destination.ip`, `destination.port`, `ports`).
    pub fn to(mut self, local: &'static str) -> Self {
        self.local = local.parse().unwrap_or_else(|e| panic!("{local}: {e}"));
        self
    }

    /// The local port only.
    pub fn port(mut self, port: u16) -> Self {
        self.local.set_port(port);
        self
    }

    /// A mutual TLS peer with this URI SAN (call again for more SANs).
    pub fn mtls(mut self, san: &'static str) -> Self {
        self.tls = true;
        self.sans.push(san);
        self
    }

    /// TLS without a client certificate.
    pub fn tls_without_cert(mut self) -> Self {
        self.tls = true;
        self
    }

    /// The SNI the client sent (`connection.sni`); implies TLS.
    pub fn sni(mut self, sni: &'static str) -> Self {
        self.tls = true;
        self.sni = Some(sni);
        self
    }

    /// A verified JWT whose request principal is `iss/sub`.
    pub fn jwt(mut self, principal: &'static str) -> Self {
        self.jwt = Some(principal);
        self
    }

    /// Istio allows it.
    pub fn allow(mut self) -> Self {
        self.want = Verdict::Allow;
        self
    }

    /// Istio denies it.
    pub fn deny(mut self) -> Self {
        self.want = Verdict::Deny;
        self
    }

    /// Istio allows it and an AUDIT policy logs it.
    pub fn log(mut self) -> Self {
        self.want = Verdict::Log;
        self
    }

    fn peer_tls(&self) -> Option<PeerTls> {
        self.tls.then(|| PeerTls {
            peer_uri_sans: self.sans.iter().map(|s| (*s).to_owned()).collect(),
            sni: self.sni.map(str::to_owned),
            ..PeerTls::default()
        })
    }

    fn metadata(&self) -> Metadata {
        let mut md = Metadata::new();
        let mut authn = Map::new();
        if let Some(san) = self.sans.first() {
            let principal = san.strip_prefix("spiffe://").unwrap_or(san);
            authn.insert("source.principal".into(), json!(principal));
        }
        if let Some(p) = self.jwt {
            authn.insert("request.auth.principal".into(), json!(p));
            let (iss, sub) = p.rsplit_once('/').unwrap_or((p, ""));
            md.insert(
                "envoy.filters.http.jwt_authn".into(),
                json!({ "payload": { "iss": iss, "sub": sub } }),
            );
        }
        if !authn.is_empty() {
            md.insert("istio_authn".into(), Value::Object(authn));
        }
        md
    }

    fn header_map(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for &(k, v) in &self.headers {
            let name = HeaderName::from_bytes(k.as_bytes()).expect("header name");
            headers.append(name, HeaderValue::from_static(v));
        }
        headers
    }

    /// Runs `f` with the sample as an HTTP request.
    pub fn http<R>(&self, f: impl FnOnce(&Subject<'_>) -> R) -> R {
        let headers = self.header_map();
        let metadata = self.metadata();
        let tls = self.peer_tls();
        let s = Subject {
            method: self.method,
            authority: self.host,
            path: self.path,
            scheme: "http",
            headers: &headers,
            local: self.local,
            peer: SocketAddr::new(self.peer, 40000),
            remote_ip: self.remote.unwrap_or(self.peer),
            tls: tls.as_ref(),
            metadata: &metadata,
        };
        f(&s)
    }

    /// The sample as a new TCP connection.
    pub fn conn(&self) -> ConnInfo {
        ConnInfo {
            local: self.local,
            peer: SocketAddr::new(self.peer, 40000),
            tls: self.peer_tls().map(Arc::new),
        }
    }

    /// Runs `f` with the subject a network RBAC filter builds for the connection (no
    /// request, no headers, no metadata; `remote_ip` is the peer).
    pub fn tcp<R>(&self, f: impl FnOnce(&Subject<'_>) -> R) -> R {
        let headers = HeaderMap::new();
        let metadata = Metadata::new();
        let tls = self.peer_tls();
        let s = Subject {
            method: "",
            authority: "",
            path: "",
            scheme: "",
            headers: &headers,
            local: self.local,
            peer: SocketAddr::new(self.peer, 40000),
            remote_ip: self.peer,
            tls: tls.as_ref(),
            metadata: &metadata,
        };
        f(&s)
    }
}
