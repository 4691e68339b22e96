//! The prober against real applications on 127.0.0.1.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ::http::{HeaderMap, Request, Response};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::*;

/// An HTTP/1 application: `/ok` 200, `/moved` 301 (no Location), `/fail` 503 "down",
/// `/slow` 200 after 3 s, `/echo-ua` 200 unless the user agent is `kube-probe/1.35`
/// and `x-probe: yes` (then 418).
async fn app(tls: bool) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tls.then(|| {
        let cert = rcgen::generate_simple_self_signed(vec!["app".to_owned()]).unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))
    });
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = service_fn(handle);
                let builder = hyper::server::conn::http1::Builder::new();
                match acceptor {
                    Some(a) => {
                        let Ok(tls) = a.accept(tcp).await else { return };
                        let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                    }
                }
            });
        }
    });
    addr
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: u16, body: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *r.status_mut() = ::http::StatusCode::from_u16(status).unwrap();
        Ok(r)
    };
    match req.uri().path() {
        "/ok" => reply(200, "fine"),
        "/moved" => reply(301, ""),
        "/fail" => reply(503, "down"),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            reply(200, "late")
        }
        "/headers" => {
            let h = req.headers();
            let ua = h.get("user-agent").and_then(|v| v.to_str().ok());
            let custom = h.get("x-probe").and_then(|v| v.to_str().ok());
            let host = h.get("host").and_then(|v| v.to_str().ok()).unwrap_or("");
            if ua == Some("kube-probe/1.35")
                && custom == Some("yes")
                && host.starts_with("127.0.0.1:")
            {
                reply(418, "headers seen")
            } else {
                reply(400, "headers missing")
            }
        }
        _ => reply(404, "no"),
    }
}

fn table(json: &str) -> AppProbers {
    AppProbers::parse(json).unwrap()
}

async fn ask(probers: &AppProbers, path: &str) -> Answer {
    probers.answer(path, &HeaderMap::new()).await.unwrap()
}

#[tokio::test]
async fn http_probes_answer_the_applications_status() {
    let port = app(false).await.port();
    let probers = table(&format!(
        r#"{{
        "/app-health/app/readyz": {{"httpGet": {{"path": "/ok", "port": {port}, "scheme": "HTTP"}}, "timeoutSeconds": 1}},
        "/app-health/app/livez": {{"httpGet": {{"path": "fail", "port": {port}}}}},
        "/app-health/app/startupz": {{"httpGet": {{"path": "/moved", "port": "{port}"}}}},
        "/app-health/slow/readyz": {{"httpGet": {{"path": "/slow", "port": {port}}}, "timeoutSeconds": 1}},
        "/app-health/hdr/readyz": {{"httpGet": {{"path": "/headers", "port": {port},
            "httpHeaders": [{{"name": "x-probe", "value": "yes"}}]}}}}
    }}"#
    ));
    assert_eq!(ask(&probers, "/app-health/app/readyz").await.status, 200);
    let fail = ask(&probers, "/app-health/app/livez").await;
    assert_eq!((fail.status, &fail.body[..]), (503, &b"down"[..]));
    assert_eq!(
        ask(&probers, "/app-health/app/startupz").await.status,
        200,
        "3xx → 200"
    );
    let started = Instant::now();
    let slow = ask(&probers, "/app-health/slow/readyz").await;
    assert_eq!(slow.status, 500);
    assert!(
        String::from_utf8_lossy(&slow.body).contains("within 1 s"),
        "{slow:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "timeoutSeconds honoured"
    );
    let mut kubelet = HeaderMap::new();
    kubelet.insert("user-agent", "kube-probe/1.35".parse().unwrap());
    let hdr = probers
        .answer("/app-health/hdr/readyz", &kubelet)
        .await
        .unwrap();
    assert_eq!((hdr.status, &hdr.body[..]), (418, &b"headers seen"[..]));
    let unknown = ask(&probers, "/app-health/other/readyz").await;
    assert_eq!(unknown.status, 400);
    assert!(
        probers
            .answer("/stats/prometheus", &kubelet)
            .await
            .is_none()
    );
}

#[tokio::test]
async fn https_probes_do_not_verify_the_certificate() {
    let port = app(true).await.port();
    let probers = table(&format!(
        r#"{{"/app-health/app/readyz": {{"httpGet": {{"path": "/ok", "port": {port}, "scheme": "HTTPS"}}}},
            "/app-health/app/livez": {{"httpGet": {{"path": "/fail", "port": {port}, "scheme": "HTTPS"}}}}}}"#
    ));
    assert_eq!(ask(&probers, "/app-health/app/readyz").await.status, 200);
    assert_eq!(ask(&probers, "/app-health/app/livez").await.status, 503);
}

#[tokio::test]
async fn closed_ports_fail_http_tcp_and_grpc_probes() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let open = app(false).await.port();
    let probers = table(&format!(
        r#"{{"/app-health/a/readyz": {{"httpGet": {{"path": "/", "port": {closed}}}}},
            "/app-health/a/livez": {{"tcpSocket": {{"port": {closed}}}}},
            "/app-health/a/startupz": {{"grpc": {{"port": {closed}}}}},
            "/app-health/b/livez": {{"tcpSocket": {{"port": {open}}}}}}}"#
    ));
    for path in [
        "/app-health/a/readyz",
        "/app-health/a/livez",
        "/app-health/a/startupz",
    ] {
        let a = ask(&probers, path).await;
        assert_eq!(a.status, 500, "{path}: {a:?}");
        assert!(
            String::from_utf8_lossy(&a.body).contains(&closed.to_string()),
            "{a:?}"
        );
    }
    assert_eq!(ask(&probers, "/app-health/b/livez").await.status, 200);
}

/// A gRPC application answering Health/Check with `status` (h2c, hand-framed).
async fn grpc_app(status: u8) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| async move {
                    let known = req.uri().path() == grpc::CHECK_PATH;
                    let _ = req.into_body().collect().await;
                    let (mut tx, body) = http_body_util::Channel::<Bytes, Infallible>::new(2);
                    tokio::spawn(async move {
                        let mut trailers = HeaderMap::new();
                        if known {
                            let _ = tx
                                .send_data(Bytes::from(vec![0, 0, 0, 0, 2, 8, status]))
                                .await;
                            trailers.insert("grpc-status", "0".parse().unwrap());
                        } else {
                            trailers.insert("grpc-status", "12".parse().unwrap());
                        }
                        let _ = tx.send_trailers(trailers).await;
                    });
                    let mut r = Response::new(body);
                    r.headers_mut()
                        .insert("content-type", "application/grpc".parse().unwrap());
                    Ok::<_, Infallible>(r)
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    port
}

#[tokio::test]
async fn grpc_probes_call_the_health_service() {
    let (serving, not_serving) = (grpc_app(1).await, grpc_app(2).await);
    let probers = table(&format!(
        r#"{{"/app-health/g/readyz": {{"grpc": {{"port": {serving}, "service": ""}}}},
            "/app-health/g/livez": {{"grpc": {{"port": {not_serving}}}}}}}"#
    ));
    let ok = ask(&probers, "/app-health/g/readyz").await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let no = ask(&probers, "/app-health/g/livez").await;
    assert_eq!(no.status, 500);
    assert!(
        String::from_utf8_lossy(&no.body).contains("not SERVING"),
        "{no:?}"
    );
}

#[test]
fn bad_tables_are_refused_naming_the_variable_path_and_field() {
    let cases = [
        ("{", "ISTIO_KUBE_APP_PROBERS: not valid JSON"),
        ("[]", "not a JSON object"),
        (
            r#"{"/healthz": {"tcpSocket": {"port": 1}}}"#,
            "\"/healthz\": the path must be",
        ),
        (
            r#"{"/app-health/a/readyz": {"exec": {}}}"#,
            "/app-health/a/readyz: (probe): give exactly one",
        ),
        (
            r#"{"/app-health/a/readyz": {"httpGet": {"port": "http"}}}"#,
            "httpGet.port: \"http\" is not a port number",
        ),
        (
            r#"{"/app-health/a/readyz": {"tcpSocket": {"port": 70000}}}"#,
            "tcpSocket.port: 70000",
        ),
        (
            r#"{"/app-health/a/readyz": {"httpGet": {"port": 1, "scheme": "FTP"}}}"#,
            "httpGet.scheme",
        ),
        (
            r#"{"/app-health/a/readyz": {"tcpSocket": {"port": 1}, "timeoutSeconds": "1"}}"#,
            "timeoutSeconds",
        ),
        (
            r#"{"/app-health/a/readyz": {"httpGet": {"port": 1, "httpHeaders": [{"value": "x"}]}}}"#,
            "httpGet.httpHeaders[0]",
        ),
    ];
    for (text, expected) in cases {
        let err = AppProbers::parse(text).unwrap_err().to_string();
        assert!(err.starts_with("ISTIO_KUBE_APP_PROBERS: "), "{err}");
        assert!(err.contains(expected), "{text}: {err}");
    }
    assert!(AppProbers::parse("").unwrap().is_empty());
    let t = table(
        r#"{"/app-health/a/readyz": {"grpc": {"port": 9090, "service": "s"}, "timeoutSeconds": 3}}"#,
    );
    let p = t.get("/app-health/a/readyz").unwrap();
    assert_eq!(p.timeout, Duration::from_secs(3));
    assert_eq!(
        p.probe,
        Probe::Grpc(GrpcAction {
            port: 9090,
            service: "s".into()
        })
    );
    assert_eq!(t.paths().collect::<Vec<_>>(), ["/app-health/a/readyz"]);
}
