//! The TLS inspector (`envoy.filters.listener.tls_inspector`): peeks at the first bytes of a
//! connection, without consuming them, to tell TLS from plaintext and to read the
//! ClientHello's server name (SNI) and ALPN protocols, which filter chains match on.

use std::time::Duration;

use tokio::net::TcpStream;

/// What the inspector saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// `tls` or `raw_buffer`.
    pub transport: &'static str,
    /// The SNI, lowercase.
    pub server_name: Option<String>,
    /// ALPN protocols offered.
    pub alpn: Vec<String>,
}

/// The most a ClientHello may take (Envoy's inspector reads up to 64 KiB).
const MAX_HELLO: usize = 16 * 1024;

/// Peeks at `stream` until a ClientHello is complete, the bytes are not TLS, or `timeout`.
pub async fn inspect(stream: &TcpStream, timeout: Duration) -> Inspected {
    let mut buf = vec![0u8; MAX_HELLO];
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen = 0;
    let mut pause = 1u64;
    loop {
        let peeked = tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await;
        let n = match peeked {
            Ok(Ok(0)) => return plaintext_or_partial(&buf[..seen]),
            Ok(Ok(n)) => n,
            _ => return plaintext_or_partial(&buf[..seen]),
        };
        match parse_client_hello(&buf[..n]) {
            Parse::Done(i) => return i,
            Parse::NotTls => return plain(),
            Parse::NeedMore if n == buf.len() => return plaintext_or_partial(&buf[..n]),
            Parse::NeedMore => {
                // Peek returns what is buffered now: wait a little for the rest.
                pause = if n > seen { 1 } else { (pause * 2).min(20) };
                seen = n;
                if tokio::time::Instant::now() >= deadline {
                    return plaintext_or_partial(&buf[..seen]);
                }
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
    }
}

fn plain() -> Inspected {
    Inspected {
        transport: "raw_buffer",
        ..Inspected::default()
    }
}

fn plaintext_or_partial(bytes: &[u8]) -> Inspected {
    if bytes.first() == Some(&0x16) {
        Inspected {
            transport: "tls",
            ..Inspected::default()
        }
    } else {
        plain()
    }
}

/// The outcome of parsing what has arrived so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    /// A complete ClientHello.
    Done(Inspected),
    /// Not a TLS handshake.
    NotTls,
    /// A TLS record, not complete yet.
    NeedMore,
}

/// A cursor over a byte slice that never panics.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(b[0]) << 8 | usize::from(b[1]))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n)
    }
}

/// Parses a TLS record holding a ClientHello.
pub fn parse_client_hello(bytes: &[u8]) -> Parse {
    let mut r = Reader(bytes);
    let (Some(kind), Some(major)) = (r.u8(), r.u8()) else {
        return if bytes.first().is_none_or(|b| *b == 0x16) {
            Parse::NeedMore
        } else {
            Parse::NotTls
        };
    };
    if kind != 0x16 || major != 3 {
        return Parse::NotTls;
    }
    let (Some(_minor), Some(len)) = (r.u8(), r.u16()) else {
        return Parse::NeedMore;
    };
    let Some(record) = r.take(len) else {
        return Parse::NeedMore;
    };
    match hello(record) {
        Some(i) => Parse::Done(i),
        None => Parse::Done(Inspected {
            transport: "tls",
            ..Inspected::default()
        }),
    }
}

fn hello(record: &[u8]) -> Option<Inspected> {
    let mut r = Reader(record);
    if r.u8()? != 1 {
        return None;
    }
    let body_len = r.u24()?;
    let mut r = Reader(r.take(body_len.min(r.0.len()))?);
    r.take(2 + 32)?; // version, random
    r.vec8()?; // session id
    r.vec16()?; // cipher suites
    r.vec8()?; // compression methods
    let mut exts = Reader(r.vec16()?);
    let mut out = Inspected {
        transport: "tls",
        ..Inspected::default()
    };
    while let (Some(kind), Some(data)) = (exts.u16(), exts.vec16()) {
        let mut d = Reader(data);
        match kind {
            0 => {
                let mut list = Reader(d.vec16()?);
                while let (Some(name_type), Some(name)) = (list.u8(), list.vec16()) {
                    if name_type == 0 {
                        out.server_name =
                            std::str::from_utf8(name).ok().map(str::to_ascii_lowercase);
                    }
                }
            }
            16 => {
                let mut list = Reader(d.vec16()?);
                while let Some(p) = list.vec8() {
                    if let Ok(p) = std::str::from_utf8(p) {
                        out.alpn.push(p.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello with SNI `api.example.com` and ALPN `h2`, `http/1.1`.
    fn hello_bytes(sni: &str) -> Vec<u8> {
        let mut ext = Vec::new();
        let name = sni.as_bytes();
        let mut sni_ext = vec![0u8];
        sni_ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sni_ext.extend_from_slice(name);
        let mut sni_list = (sni_ext.len() as u16).to_be_bytes().to_vec();
        sni_list.extend_from_slice(&sni_ext);
        ext.extend_from_slice(&0u16.to_be_bytes());
        ext.extend_from_slice(&(sni_list.len() as u16).to_be_bytes());
        ext.extend_from_slice(&sni_list);
        let mut alpn = Vec::new();
        for p in ["h2", "http/1.1"] {
            alpn.push(p.len() as u8);
            alpn.extend_from_slice(p.as_bytes());
        }
        let mut alpn_list = (alpn.len() as u16).to_be_bytes().to_vec();
        alpn_list.extend_from_slice(&alpn);
        ext.extend_from_slice(&16u16.to_be_bytes());
        ext.extend_from_slice(&(alpn_list.len() as u16).to_be_bytes());
        ext.extend_from_slice(&alpn_list);
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7u8; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher suite
        body.extend_from_slice(&[1, 0]); // null compression
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut hs = vec![1];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut rec = vec![0x16, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    #[test]
    fn reads_sni_and_alpn() {
        let Parse::Done(i) = parse_client_hello(&hello_bytes("API.example.com")) else {
            panic!("not parsed");
        };
        assert_eq!(i.transport, "tls");
        assert_eq!(i.server_name.as_deref(), Some("api.example.com"));
        assert_eq!(i.alpn, ["h2", "http/1.1"]);
    }

    #[test]
    fn partial_and_plaintext() {
        let full = hello_bytes("a.b");
        assert_eq!(parse_client_hello(&full[..20]), Parse::NeedMore);
        assert_eq!(parse_client_hello(&full[..1]), Parse::NeedMore);
        assert_eq!(parse_client_hello(b"GET / HTTP/1.1\r\n"), Parse::NotTls);
        assert_eq!(parse_client_hello(&[0x16, 9, 9]), Parse::NotTls);
    }

    #[test]
    fn garbage_never_panics() {
        for seed in 0..2_000u64 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let len = rng.usize(0..200);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            if let Some(b) = bytes.first_mut() {
                *b = 0x16;
            }
            if bytes.len() > 1 {
                bytes[1] = 3;
            }
            let _ = parse_client_hello(&bytes);
        }
    }

    #[tokio::test]
    async fn inspects_a_real_connection_without_consuming() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let bytes = hello_bytes("svc.example.com");
        let sent = bytes.clone();
        let client = tokio::spawn(async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(&sent[..10]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
            c.write_all(&sent[10..]).await.unwrap();
            c
        });
        let (mut server, _) = listener.accept().await.unwrap();
        let seen = inspect(&server, Duration::from_secs(2)).await;
        assert_eq!(seen.server_name.as_deref(), Some("svc.example.com"));
        let mut all = vec![0u8; bytes.len()];
        server.read_exact(&mut all).await.unwrap();
        assert_eq!(all, bytes, "the bytes are still there for the next filter");
        drop(client.await.unwrap());
    }
}
