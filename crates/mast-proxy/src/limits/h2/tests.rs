use super::*;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn feed_all(g: &mut FloodGuard, frames: &[Vec<u8>], step: usize) -> Option<Flood> {
    let bytes: Vec<u8> = frames.concat();
    bytes.chunks(step).find_map(|c| g.inbound(c))
}

#[test]
fn a_ping_burst_above_envoys_limit_is_a_flood() {
    let ping = frame(PING, 0, 0, b"12345678");
    let mut g = FloodGuard::new(false);
    assert_eq!(feed_all(&mut g, &vec![ping.clone(); 1000], 4096), None);
    let mut g = FloodGuard::new(false);
    assert_eq!(
        feed_all(&mut g, &vec![ping; 1001], 13),
        Some(Flood::Control)
    );
    let ack = frame(PING, ACK, 0, b"12345678");
    let mut g = FloodGuard::new(false);
    assert_eq!(
        feed_all(&mut g, &vec![ack; 5000], 4096),
        None,
        "ACKs need no answer"
    );
}

#[test]
fn settings_floods_count_like_pings() {
    let mut g = FloodGuard::new(true);
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    for _ in 0..1001 {
        bytes.extend(frame(SETTINGS, 0, 0, b""));
    }
    assert_eq!(g.inbound(&bytes), Some(Flood::Control));
}

#[test]
fn empty_frames_without_end_stream_are_a_flood_after_one() {
    let headers = frame(HEADERS, 0x4, 1, b"\x82");
    let empty = frame(DATA, 0, 1, b"");
    let mut g = FloodGuard::new(false);
    assert_eq!(
        feed_all(
            &mut g,
            &[headers.clone(), empty.clone(), frame(DATA, 1, 1, b"")],
            5
        ),
        None
    );
    let mut g = FloodGuard::new(false);
    assert_eq!(
        feed_all(&mut g, &[headers.clone(), empty.clone(), empty], 5),
        Some(Flood::EmptyFrames)
    );
    // Padding only is empty too.
    let padded = frame(DATA, PADDED, 1, &[3, 0, 0, 0]);
    let mut g = FloodGuard::new(false);
    assert_eq!(
        feed_all(&mut g, &[headers, padded.clone(), padded], 1),
        Some(Flood::EmptyFrames)
    );
}

#[test]
fn rapid_reset_closes_at_half_of_envoys_stream_count() {
    let mut frames = Vec::new();
    for i in 0..250u32 {
        let id = 1 + 2 * i;
        frames.push(frame(HEADERS, 0x5, id, b"\x82"));
        frames.push(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
    }
    let mut g = FloodGuard::new(false);
    assert_eq!(feed_all(&mut g, &frames[..frames.len() - 2], 4096), None);
    assert_eq!(
        feed_all(&mut g, &frames[frames.len() - 2..], 4096),
        Some(Flood::PrematureReset)
    );
    assert_eq!(g.last_stream(), 499);
}

#[test]
fn priority_and_window_update_floods() {
    let mut g = FloodGuard::new(false);
    let prio = frame(PRIORITY, 0, 1, &[0, 0, 0, 0, 1]);
    assert_eq!(
        feed_all(&mut g, &vec![prio; 101], 4096),
        Some(Flood::Priority)
    );
    let mut g = FloodGuard::new(false);
    let wu = frame(WINDOW_UPDATE, 0, 0, &1u32.to_be_bytes());
    assert_eq!(feed_all(&mut g, &vec![wu.clone(); 5], 4096), None);
    assert_eq!(feed_all(&mut g, &[wu], 4096), Some(Flood::WindowUpdate));
}

#[test]
fn the_outbound_cursor_knows_frame_boundaries() {
    let mut g = FloodGuard::new(false);
    let data = frame(DATA, 0, 1, b"hello");
    g.outbound(&data[..7]);
    assert!(!g.outbound_at_boundary());
    g.outbound(&data[7..]);
    assert!(g.outbound_at_boundary());
    assert_eq!(goaway(7, 0xb)[..9], [0, 0, 8, 7, 0, 0, 0, 0, 0]);
}

#[test]
fn random_frames_never_panic() {
    let mut rng = fastrand::Rng::with_seed(11);
    for _ in 0..500 {
        let mut g = FloodGuard::new(rng.bool());
        let data: Vec<u8> = (0..rng.usize(0..2000)).map(|_| rng.u8(..)).collect();
        for c in data.chunks(rng.usize(1..100)) {
            let _ = g.inbound(c);
            g.outbound(c);
        }
    }
}
