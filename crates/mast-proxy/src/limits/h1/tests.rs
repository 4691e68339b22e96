use super::*;

fn verdicts(scanner: &mut HeadScanner, input: &[u8], step: usize) -> Vec<(u64, u16)> {
    input
        .chunks(step.max(1))
        .filter_map(|c| scanner.feed(c).reject)
        .collect()
}

#[test]
fn content_length_with_transfer_encoding_is_rejected_in_either_order() {
    for head in [
        &b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n",
    ] {
        for step in [1, 3, 1000] {
            let mut s = HeadScanner::new(60 * 1024);
            assert_eq!(verdicts(&mut s, head, step), vec![(0, 400)]);
            assert!(s.stopped());
        }
    }
}

#[test]
fn envoys_content_length_and_transfer_encoding_rules() {
    let cases: [(&[u8], Option<u16>); 8] = [
        (b"content-length: 4\r\ncontent-length: 4\r\n", Some(400)),
        (b"content-length: 4, 4\r\n", Some(400)),
        (b"content-length: +4\r\n", Some(400)),
        (b"transfer-encoding: gzip, chunked\r\n", Some(501)),
        (
            b"transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n",
            Some(501),
        ),
        (b"transfer-encoding: Chunked\r\n", None),
        (b"content-length: 0\r\n", None),
        (b"", None),
    ];
    for (extra, want) in cases {
        let mut head = b"POST / HTTP/1.1\r\nhost: a\r\n".to_vec();
        head.extend_from_slice(extra);
        head.extend_from_slice(b"\r\n");
        let mut s = HeadScanner::new(1024);
        let got = s.feed(&head).reject.map(|(_, st)| st);
        assert_eq!(got, want, "{}", String::from_utf8_lossy(extra));
    }
}

#[test]
fn bodies_are_skipped_so_the_next_pipelined_head_is_judged() {
    let hidden = "POST /x HTTP/1.1\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n";
    let stream = format!(
        "POST /a HTTP/1.1\r\nhost: a\r\ncontent-length: {}\r\n\r\n{hidden}\
POST /b HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n\
5;ext=1\r\nhello\r\n0\r\nx-trailer: 1\r\n\r\n\
GET /c HTTP/1.1\r\nhost: a\r\n\r\n\
POST /d HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n",
        hidden.len()
    );
    let stream = stream.as_bytes();
    for step in [1, 2, 7, 4096] {
        let mut s = HeadScanner::new(1024);
        // The first body (50 bytes) holds a smuggling-looking head that must not count.
        assert_eq!(
            verdicts(&mut s, stream, step),
            vec![(3, 400)],
            "step {step}"
        );
    }
}

#[test]
fn upgrades_and_connect_make_the_stream_opaque() {
    let mut s = HeadScanner::new(1024);
    let fed =
        s.feed(b"GET /ws HTTP/1.1\r\nhost: a\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n");
    assert!(fed.opaque && s.stopped());
    let mut s = HeadScanner::new(1024);
    assert!(
        s.feed(b"CONNECT a:443 HTTP/1.1\r\nhost: a:443\r\n\r\n")
            .opaque
    );
    assert_eq!(
        s.feed(b"garbage content-length: 1\r\ntransfer-encoding: x\r\n\r\n")
            .reject,
        None
    );
}

#[test]
fn in_head_tracks_a_head_from_its_first_byte_to_its_end() {
    let mut s = HeadScanner::new(1024);
    assert!(!s.in_head());
    s.feed(b"\r\n");
    assert!(!s.in_head(), "empty lines between requests are not a head");
    s.feed(b"GET / HT");
    assert!(s.in_head());
    s.feed(b"TP/1.1\r\nhost: a\r\n\r\n");
    assert!(!s.in_head());
}

#[test]
fn oversized_heads_get_431_and_garbage_stops_the_scanner() {
    let mut s = HeadScanner::new(64);
    let mut head = b"GET / HTTP/1.1\r\nx: ".to_vec();
    head.extend(std::iter::repeat_n(b'a', 200));
    assert_eq!(s.feed(&head).reject, Some((0, 431)));
    assert!(s.stopped());
    let mut s = HeadScanner::new(64);
    assert_eq!(s.feed(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").reject, None);
    let mut big = b"GET / HTTP/1.1\r\nx: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 50));
    big.extend_from_slice(b"\r\n\r\n");
    assert_eq!(
        s.feed(&big).reject,
        Some((1, 431)),
        "complete but too large"
    );
    let mut s = HeadScanner::new(1024);
    assert_eq!(s.feed(b"\x00\x01garbage\r\n\r\n").reject, None);
    assert!(s.stopped());
}

#[test]
fn random_input_never_panics() {
    let mut rng = fastrand::Rng::with_seed(7);
    let alphabet = b"\r\n:; 0123456789abcdefPOSTGEcontent-lngh:transfer-encodig chunked";
    for _ in 0..2000 {
        let mut s = HeadScanner::new(256);
        let len = rng.usize(0..600);
        let data: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.usize(..alphabet.len())])
            .collect();
        for chunk in data.chunks(rng.usize(1..64)) {
            let _ = s.feed(chunk);
        }
    }
}
