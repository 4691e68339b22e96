//! Gateway TLS cases through the listener manager: egress TLS origination (SNI, CA file, SAN
//! check, ALPN), MUTUAL / OPTIONAL_MUTUAL client verification with SANs and a certificate
//! hash pin (and the client certificate in `x-forwarded-client-cert`), and PASSTHROUGH split
//! by `tcp_proxy` weights.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use mast_proxy::cluster::ClusterConfig;
use mast_test_support::EchoServer;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::{
    Ca, Reply, collect, decode, env, h1_get, hcm, header, listener, start, static_cluster, table,
    tls_backend_as, tls_connect,
};

/// An HTTPS/1.1 server answering every request with `<SNI>|<ALPN>` it saw.
async fn https_backend(ca: &Ca, name: &str) -> u16 {
    use rustls::pki_types::pem::PemObject as _;
    let (cert, key, _) = ca.leaf(&[name]);
    let certs = vec![rustls::pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((s, _)) = l.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(s).await else {
                    return;
                };
                let (_, conn) = tls.get_ref();
                let seen = format!(
                    "{}|{}",
                    conn.server_name().unwrap_or("-"),
                    conn.alpn_protocol()
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                        .unwrap_or_else(|| "-".into())
                );
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{seen}",
                    seen.len()
                );
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

/// A cluster originating TLS: `sni`, the CA from a file, a DNS SAN to match, ALPN http/1.1.
fn egress_cluster(name: &str, port: u16, ca_file: &str, san: &str) -> ClusterConfig {
    let c: Cluster = decode(json!({
        "name": name, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint":
            {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
        "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": "api.example.com",
            "common_tls_context": {
                "alpn_protocols": ["http/1.1"],
                "validation_context": {
                    "trusted_ca": {"filename": ca_file},
                    "match_typed_subject_alt_names": [
                        {"san_type": "DNS", "matcher": {"exact": san}}]}}}}
    }));
    ClusterConfig::from_proto(&c).unwrap()
}

#[tokio::test]
async fn egress_originates_tls_with_sni_ca_file_and_san_check() {
    let ca = Ca::new();
    let backend = https_backend(&ca, "api.example.com").await;
    let dir = mast_test_support::TempDir::new("egress-tls").unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.0.pem()).unwrap();
    let ca_file = ca_file.to_string_lossy().into_owned();
    let env = env(
        vec![
            egress_cluster(
                "outbound|443||api.example.com",
                backend,
                &ca_file,
                "api.example.com",
            ),
            egress_cluster("wrong-san", backend, &ca_file, "other.example.com"),
        ],
        vec![table(json!({"name": "http.80", "virtual_hosts": [
            {"name": "api", "domains": ["api.example.com"], "routes": [
                {"match": {"prefix": "/wrong"}, "route": {"cluster": "wrong-san"}},
                {"match": {"prefix": "/"}, "route": {"cluster": "outbound|443||api.example.com"}}]}]}))],
    );
    let gw = start(
        env,
        vec![listener(
            "0.0.0.0_80",
            json!([{"filters": [hcm("http.80")]}]),
            false,
        )],
    );
    let addr = gw.addrs["0.0.0.0_80"];
    let r = h1_get(
        TcpStream::connect(addr).await.unwrap(),
        "api.example.com",
        "/",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(&r.body()[..], b"api.example.com|http/1.1");
    let r = h1_get(
        TcpStream::connect(addr).await.unwrap(),
        "api.example.com",
        "/wrong",
    )
    .await;
    assert_eq!(r.status(), 503, "SAN mismatch: the handshake fails");
}

/// A TLS client presenting `cert` (chain PEM, key PEM) when given.
async fn mtls_connect(
    addr: SocketAddr,
    root: &[u8],
    sni: &str,
    cert: Option<&(String, String, Vec<u8>)>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, std::io::Error> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.to_vec().into()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match cert {
        Some((chain, key, _)) => builder
            .with_client_auth_cert(
                vec![rustls::pki_types::CertificateDer::from_pem_slice(chain.as_bytes()).unwrap()],
                rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .unwrap()
}

/// HTTP/1.1 GET over an established TLS stream; `None` when the proxy closed it (a TLS 1.3
/// client learns of a refused certificate only when it reads).
async fn try_get(tls: tokio_rustls::client::TlsStream<TcpStream>, host: &str) -> Option<Reply> {
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .ok()?;
    tokio::spawn(conn);
    let req = http::Request::get("/")
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), send.send_request(req))
        .await
        .ok()?
        .ok()?;
    Some(collect(r).await)
}

#[tokio::test]
async fn mutual_and_optional_mutual_tls_verify_client_certificates() {
    let ca = Ca::new();
    let other = Ca::new();
    let (cert, key, _) = ca.leaf(&[
        "mutual.example.com",
        "optional.example.com",
        "pinned.example.com",
    ]);
    let client = ca.leaf(&["client.example.com"]);
    let wrong_san = ca.leaf(&["intruder.example.com"]);
    let foreign = other.leaf(&["client.example.com"]);
    let up = EchoServer::start("app").unwrap();
    let route = |name: &str| {
        table(
            json!({"name": name, "virtual_hosts": [{"name": "vh", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "backend"}}]}]}),
        )
    };
    let env = env(
        vec![static_cluster("backend", up.port())],
        vec![
            route("https.443.mutual"),
            route("https.443.optional"),
            route("https.443.pinned"),
        ],
    );
    let context = |require: bool| {
        json!({"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": require,
            "common_tls_context": {
                "alpn_protocols": ["h2", "http/1.1"],
                "tls_certificates": [{"certificate_chain": {"inline_string": cert},
                                      "private_key": {"inline_string": key}}],
                "validation_context": {
                    "trusted_ca": {"inline_string": ca.0.pem()},
                    "match_typed_subject_alt_names": [
                        {"san_type": "DNS", "matcher": {"exact": "client.example.com"}}]}}}})
    };
    let mut mutual_hcm = hcm("https.443.mutual");
    mutual_hcm["typed_config"]["forward_client_cert_details"] = json!("SANITIZE_SET");
    mutual_hcm["typed_config"]["set_current_client_cert_details"] =
        json!({"subject": true, "cert": true, "dns": true, "uri": true});
    let client_hash: String = ring::digest::digest(&ring::digest::SHA256, &client.2)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut pinned = context(true);
    let validation = &mut pinned["typed_config"]["common_tls_context"]["validation_context"];
    validation["match_typed_subject_alt_names"] = json!([]);
    validation["verify_certificate_hash"] = json!([client_hash]);
    let chains = json!([
        {"filter_chain_match": {"server_names": ["pinned.example.com"]},
         "transport_socket": pinned, "filters": [hcm("https.443.pinned")]},
        {"filter_chain_match": {"server_names": ["mutual.example.com"]},
         "transport_socket": context(true), "filters": [mutual_hcm]},
        {"filter_chain_match": {"server_names": ["optional.example.com"]},
         "transport_socket": context(false), "filters": [hcm("https.443.optional")]}
    ]);
    let gw = start(env, vec![listener("0.0.0.0_443", chains, true)]);
    let addr = gw.addrs["0.0.0.0_443"];
    let root = ca.root_der();
    let get = |sni: &'static str, cert: Option<(String, String, Vec<u8>)>| {
        let root = root.clone();
        async move {
            let tls = mtls_connect(addr, &root, sni, cert.as_ref()).await.ok()?;
            try_get(tls, sni).await
        }
    };

    let r = get("mutual.example.com", Some(client.clone()))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let xfcc = header(&r, "x-echo-x-forwarded-client-cert").unwrap_or_default();
    assert!(xfcc.contains("Hash="), "{xfcc}");
    assert!(xfcc.contains("DNS=client.example.com"), "{xfcc}");
    assert!(
        xfcc.contains("Cert=\"-----BEGIN%20CERTIFICATE-----%0A"),
        "{xfcc}"
    );
    assert!(
        get("mutual.example.com", None).await.is_none(),
        "no certificate"
    );
    assert!(
        get("mutual.example.com", Some(foreign.clone()))
            .await
            .is_none(),
        "another CA"
    );
    assert!(
        get("mutual.example.com", Some(wrong_san.clone()))
            .await
            .is_none(),
        "SAN not matched"
    );

    let r = get("pinned.example.com", Some(client.clone()))
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the pinned certificate");
    assert!(
        get("pinned.example.com", Some(wrong_san.clone()))
            .await
            .is_none(),
        "same CA, another certificate: not pinned"
    );

    let r = get("optional.example.com", None).await.unwrap();
    assert_eq!(r.status(), 200, "OPTIONAL_MUTUAL: no certificate is fine");
    let r = get("optional.example.com", Some(client)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        get("optional.example.com", Some(foreign)).await.is_none(),
        "a presented certificate is verified"
    );
}

#[tokio::test]
async fn passthrough_splits_connections_by_weight() {
    let ca = Ca::new();
    let a = tls_backend_as(&ca, "db.example.com", "a").await;
    let b = tls_backend_as(&ca, "db.example.com", "b").await;
    let env = env(
        vec![static_cluster("db-a", a), static_cluster("db-b", b)],
        vec![],
    );
    let chains = json!([{
        "filter_chain_match": {"server_names": ["db.example.com"]},
        "filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": "db",
            "weighted_clusters": {"clusters": [
                {"name": "db-a", "weight": 50}, {"name": "db-b", "weight": 50}]}}}]}]);
    let gw = start(env, vec![listener("0.0.0.0_9443", chains, true)]);
    let addr = gw.addrs["0.0.0.0_9443"];
    let root = ca.root_der();
    let mut seen = HashMap::new();
    for _ in 0..6 {
        let mut tls = tls_connect(addr, &root, "db.example.com", &[]).await;
        let mut got = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_string(&mut got)).await;
        *seen.entry(got).or_insert(0) += 1;
    }
    for _ in 0..60 {
        if seen.len() == 2 {
            break;
        }
        let mut tls = tls_connect(addr, &root, "db.example.com", &[]).await;
        let mut got = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_string(&mut got)).await;
        *seen.entry(got).or_insert(0) += 1;
    }
    let mut names: Vec<&String> = seen.keys().collect();
    names.sort();
    assert_eq!(
        names,
        ["a", "b"],
        "both weighted clusters get connections: {seen:?}"
    );
}

#[tokio::test]
async fn a_crl_revokes_client_certificates() {
    let ca = Ca::new();
    let (cert, key, _) = ca.leaf(&["crl.example.com"]);
    let good = ca.leaf_serial(&["client.example.com"], 1001);
    let revoked = ca.leaf_serial(&["client.example.com"], 1002);
    let crl = rcgen::CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2024, 1, 1),
        next_update: rcgen::date_time_ymd(2099, 1, 1),
        crl_number: 1u64.into(),
        issuing_distribution_point: None,
        revoked_certs: vec![rcgen::RevokedCertParams {
            serial_number: 1002u64.into(),
            revocation_time: rcgen::date_time_ymd(2024, 1, 1),
            reason_code: None,
            invalidity_date: None,
        }],
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&ca.0)
    .unwrap()
    .pem()
    .unwrap();
    let up = EchoServer::start("app").unwrap();
    let env = env(
        vec![static_cluster("backend", up.port())],
        vec![table(
            json!({"name": "https.443.crl", "virtual_hosts": [{"name": "vh",
            "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "backend"}}]}]}),
        )],
    );
    let socket = json!({"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "require_client_certificate": true,
        "common_tls_context": {
            "alpn_protocols": ["http/1.1"],
            "tls_certificates": [{"certificate_chain": {"inline_string": cert},
                                  "private_key": {"inline_string": key}}],
            "validation_context": {
                "trusted_ca": {"inline_string": ca.0.pem()},
                "crl": {"inline_string": crl}}}}});
    let chains = json!([{"transport_socket": socket, "filters": [hcm("https.443.crl")]}]);
    let gw = start(env, vec![listener("0.0.0.0_443", chains, true)]);
    let addr = gw.addrs["0.0.0.0_443"];
    let root = ca.root_der();
    let tls = mtls_connect(addr, &root, "crl.example.com", Some(&good))
        .await
        .unwrap();
    assert_eq!(try_get(tls, "crl.example.com").await.unwrap().status(), 200);
    let refused = match mtls_connect(addr, &root, "crl.example.com", Some(&revoked)).await {
        Ok(tls) => try_get(tls, "crl.example.com").await.is_none(),
        Err(_) => true,
    };
    assert!(refused, "a revoked certificate is refused");
}
