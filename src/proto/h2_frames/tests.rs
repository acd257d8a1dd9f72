//! Tests of the frame parser and the ledger. Bytes are fed directly, call by call, and call `i`
//! is made at the instant `at(base, i)`, so every timing rule is checked for the exact instant it
//! names.

use std::collections::BTreeMap;
use std::time::Duration;

use super::testing::{
    check_against_reference, check_carried_against_reference, frame, random_frames, reference,
    upload_bytes, Rng, PREFACE,
};
use super::*;

/// The instant of call `i`: `i` milliseconds after `base`.
fn at(base: Instant, i: usize) -> Instant {
    base + Duration::from_millis(i as u64)
}

/// Feeds `bytes` in calls of at most `max` bytes, call `i` at `at(base, i)`. Returns the number
/// of calls.
fn feed_by(
    parser: &mut FrameParser,
    ledger: &mut FrameLedger,
    bytes: &[u8],
    max: usize,
    base: Instant,
) -> usize {
    let mut calls = 0;
    for piece in bytes.chunks(max.min(bytes.len()).max(1)) {
        parser.feed(piece, at(base, calls), ledger);
        calls += 1;
    }
    calls
}

/// Feeds the given pieces, piece `i` at `at(base, i)`.
fn feed_pieces<P: AsRef<[u8]>>(
    parser: &mut FrameParser,
    ledger: &mut FrameLedger,
    pieces: &[P],
    base: Instant,
) {
    for (i, piece) in pieces.iter().enumerate() {
        parser.feed(piece.as_ref(), at(base, i), ledger);
    }
}

/// A fresh parser for `direction` and a fresh ledger.
fn start(direction: Direction) -> (FrameParser, FrameLedger) {
    (FrameParser::new(direction), FrameLedger::default())
}

/// Times cleared, for comparing counts only.
fn counts(mut s: StreamTap) -> StreamTap {
    s.request_start = None;
    s.request_end = None;
    s.first_headers_received_at = None;
    s.response_start = None;
    s.response_end = None;
    s
}

/// Everything the ledger holds: every stream's snapshot and the connection's.
fn everything(ledger: &FrameLedger) -> (BTreeMap<u32, StreamTap>, ConnectionTap) {
    let streams = ledger
        .streams
        .iter()
        .map(|(&id, e)| (id, e.tap.clone()))
        .collect();
    (streams, ledger.connection().clone())
}

#[test]
fn one_write_and_byte_by_byte_agree() {
    let bytes = upload_bytes();
    // Preface, then SETTINGS (9 + 6 bytes): HEADERS' first byte.
    let headers_first = PREFACE.len() + 9 + 6;
    // The last DATA frame's last byte: only the connection WINDOW_UPDATE (9 + 4 bytes) follows.
    let data_last = bytes.len() - (9 + 4) - 1;
    let base = Instant::now();
    let mut snapshots = Vec::new();
    for max in [usize::MAX, 1] {
        let (mut parser, mut ledger) = start(Direction::Write);
        let calls = feed_by(&mut parser, &mut ledger, &bytes, max, base);
        let call_of = |byte: usize| at(base, byte / max);

        let s = ledger.stream(1);
        assert_eq!(s.send_bytes_count, 9 * 3 + 6 + 100 + 20);
        assert_eq!(s.body_bytes_sent, 120);
        let (h, e) = (s.request_start.unwrap(), s.request_end.unwrap());
        assert!(base <= h && h <= e && e <= at(base, calls - 1));
        assert_eq!(h, call_of(headers_first), "HEADERS' first byte");
        assert_eq!(e, call_of(data_last), "the last DATA frame's last byte");
        assert_eq!(s.received_byted_count, 0);
        assert_eq!(ledger.stream(0), StreamTap::default());
        assert_eq!(
            *ledger.connection(),
            ConnectionTap {
                total_written: bytes.len() as u64,
                frames_written: 5,
                ..ConnectionTap::default()
            }
        );
        check_against_reference(&ledger, &bytes, true);
        snapshots.push(counts(s));
    }
    assert_eq!(snapshots[0], snapshots[1]);
}

#[test]
fn first_byte_and_last_byte_calls_are_the_ones_timed() {
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(0x1, FLAG_END_HEADERS, 1, &[0x82; 10]));
    let headers_end = bytes.len();
    bytes.extend(frame(0x0, FLAG_END_STREAM, 1, &[1; 50]));
    // Call 0: preface + the first 4 header bytes of HEADERS. Call 1: the rest of HEADERS and all
    // but the last byte of DATA. Call 2: DATA's last byte.
    let cuts = [0, 28, bytes.len() - 1, bytes.len()];
    let pieces: Vec<&[u8]> = cuts.windows(2).map(|w| &bytes[w[0]..w[1]]).collect();
    let (mut parser, mut ledger) = start(Direction::Write);
    let base = Instant::now();
    feed_pieces(&mut parser, &mut ledger, &pieces, base);
    assert!(headers_end < bytes.len() - 1);
    let s = ledger.stream(1);
    assert_eq!(
        s.request_start,
        Some(at(base, 0)),
        "HEADERS' first byte: call 0"
    );
    assert_eq!(s.request_end, Some(at(base, 2)), "DATA's last byte: call 2");
    assert_eq!(s.send_bytes_count, 9 + 10 + 9 + 50);
}

#[test]
fn a_header_over_three_calls_is_timed_at_its_first_and_last_calls() {
    // HEADERS on 1 with END_STREAM and a 4-byte block: header bytes in calls 0, 1 and 2, the
    // payload in calls 2 and 3.
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(
        0x1,
        FLAG_END_HEADERS | FLAG_END_STREAM,
        1,
        &[0x82; 4],
    ));
    let h = PREFACE.len();
    let pieces = [
        &bytes[..h + 2],
        &bytes[h + 2..h + 5],
        &bytes[h + 5..h + 11],
        &bytes[h + 11..],
    ];
    let (mut parser, mut ledger) = start(Direction::Write);
    let base = Instant::now();
    let mut written = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        parser.feed(piece, at(base, i), &mut ledger);
        written.push(ledger.stream(1).send_bytes_count);
    }
    assert_eq!(
        written,
        [0, 0, 9 + 2, 9 + 4],
        "a header counts at its 9th byte, payload as it goes"
    );
    let s = ledger.stream(1);
    assert_eq!(s.request_start, Some(at(base, 0)));
    assert_eq!(s.request_end, Some(at(base, 3)));

    // An empty frame ends with its last header byte: DATA with END_STREAM on 3, its header over
    // calls 0, 1 and 2 (received this time).
    let bytes = [
        frame(0x1, FLAG_END_HEADERS, 3, &[0x88]),
        frame(0x0, FLAG_END_STREAM, 3, &[]),
    ]
    .concat();
    let pieces = [&bytes[..11], &bytes[11..15], &bytes[15..]];
    let (mut parser, mut ledger) = start(Direction::Read);
    feed_pieces(&mut parser, &mut ledger, &pieces, base);
    let s = ledger.stream(3);
    assert_eq!(s.response_start, Some(at(base, 0)));
    assert_eq!(s.response_end, Some(at(base, 2)));
    assert_eq!(s.received_byted_count, 10 + 9);
    assert_eq!(ledger.connection().frames_read, 2);
}

#[test]
fn the_preface_split_anywhere_counts_only_toward_the_connection() {
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(0x1, FLAG_END_HEADERS | FLAG_END_STREAM, 1, &[0x82]));
    for cut in 0..=bytes.len() {
        let (mut parser, mut ledger) = start(Direction::Write);
        let base = Instant::now();
        feed_pieces(
            &mut parser,
            &mut ledger,
            &[&bytes[..cut], &bytes[cut..]],
            base,
        );
        let s = ledger.stream(1);
        assert_eq!(s.send_bytes_count, 10, "cut at {cut}");
        // The header's first byte is byte 24: in call 0 only if the cut is past it.
        let first = if cut > PREFACE.len() { 0 } else { 1 };
        assert_eq!(s.request_start, Some(at(base, first)), "cut at {cut}");
        // The last byte is in call 0 only if call 1 is empty.
        let last = if cut == bytes.len() { 0 } else { 1 };
        assert_eq!(s.request_end, Some(at(base, last)), "cut at {cut}");
        let c = ledger.connection();
        assert_eq!((c.total_written, c.frames_written), (bytes.len() as u64, 1));
    }
}

#[test]
fn pieces_of_one_call_fed_with_one_instant_are_the_call_fed_whole() {
    let mut rng = Rng(7);
    let mut bytes = PREFACE.to_vec();
    bytes.extend(random_frames(&mut rng, 40));
    for direction in [Direction::Write, Direction::Read] {
        let base = Instant::now();
        let (mut whole, mut whole_ledger) = start(direction);
        let (mut pieces, mut pieces_ledger) = start(direction);
        // Calls of up to 3000 bytes; each call's bytes whole, or in up to 5 random slices (a
        // vectored write).
        let mut i = 0;
        let mut call = 0;
        while i < bytes.len() {
            let end = (i + 1 + rng.below(3000)).min(bytes.len());
            let now = at(base, call);
            whole.feed(&bytes[i..end], now, &mut whole_ledger);
            let mut j = i;
            for _ in 0..rng.below(5) {
                let k = (j + rng.below(end - i + 1)).min(end);
                pieces.feed(&bytes[j..k], now, &mut pieces_ledger);
                j = k;
            }
            pieces.feed(&bytes[j..end], now, &mut pieces_ledger);
            i = end;
            call += 1;
        }
        assert_eq!(everything(&whole_ledger), everything(&pieces_ledger));
        check_against_reference(&whole_ledger, &bytes, direction == Direction::Write);
    }
}

#[test]
fn interim_head_then_final_head_then_trailers() {
    let interim = frame(0x1, FLAG_END_HEADERS, 1, &[0x08, 0x03, b'1', b'0', b'3']);
    let head = frame(0x1, FLAG_END_HEADERS, 1, &[0x88]);
    let data = frame(0x0, 0, 1, &[5; 30]);
    let trailers = frame(
        0x1,
        FLAG_END_HEADERS | FLAG_END_STREAM,
        1,
        &[0x40, 1, b'a', 1, b'b'],
    );
    let pieces = [interim, head, data, trailers];
    let all: Vec<u8> = pieces.concat();
    let (mut parser, mut ledger) = start(Direction::Read);
    let base = Instant::now();
    feed_pieces(&mut parser, &mut ledger, &pieces, base);
    let s = ledger.stream(1);
    let first = s.first_headers_received_at.unwrap();
    let last = s.response_start.unwrap();
    let end = s.response_end.unwrap();
    assert_eq!(first, at(base, 0));
    assert_eq!(last, at(base, 1), "trailers do not move the final head");
    assert!(first < last);
    assert_eq!(end, at(base, 3));
    assert_eq!(s.data_received, 30);
    assert_eq!(s.received_byted_count, all.len() as u64);
    assert_eq!(s.request_start, None);
    check_against_reference(&ledger, &all, false);
}

#[test]
fn trailers_after_a_final_head_without_a_body_move_it() {
    // The documented limit of not decoding HPACK: with no DATA frame in between, a trailer block
    // looks like a final head after an interim one.
    let pieces = [
        frame(0x1, FLAG_END_HEADERS, 1, &[0x88]),
        frame(
            0x1,
            FLAG_END_HEADERS | FLAG_END_STREAM,
            1,
            &[0x40, 1, b'a', 1, b'b'],
        ),
    ];
    let (mut parser, mut ledger) = start(Direction::Read);
    let base = Instant::now();
    feed_pieces(&mut parser, &mut ledger, &pieces, base);
    let s = ledger.stream(1);
    assert_eq!(s.first_headers_received_at, Some(at(base, 0)));
    assert_eq!(s.response_start, Some(at(base, 1)));
    assert_eq!(s.response_end, Some(at(base, 1)));
}

#[test]
fn the_first_headers_and_the_first_end_stream_written_are_kept() {
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(0x1, FLAG_END_HEADERS, 1, &[0x82]));
    let pieces = [
        bytes,
        frame(0x0, FLAG_END_STREAM, 1, &[1; 5]),
        // A second END_STREAM (a protocol error) and a later header block on the stream.
        frame(0x0, FLAG_END_STREAM, 1, &[1; 5]),
        frame(0x1, FLAG_END_HEADERS | FLAG_END_STREAM, 1, &[0x82]),
    ];
    let (mut parser, mut ledger) = start(Direction::Write);
    let base = Instant::now();
    feed_pieces(&mut parser, &mut ledger, &pieces, base);
    let s = ledger.stream(1);
    assert_eq!(s.request_start, Some(at(base, 0)));
    assert_eq!(s.request_end, Some(at(base, 1)));
    assert_eq!(s.body_bytes_sent, 10);
    assert_eq!(s.send_bytes_count, 4 * 9 + 1 + 5 + 5 + 1);
}

#[test]
fn head_split_across_reads_is_timed_at_its_first_byte() {
    let mut bytes = frame(0x4, 0, 0, &[]);
    bytes.extend(frame(0x1, FLAG_END_HEADERS | FLAG_END_STREAM, 3, &[0x88]));
    // Call 0: SETTINGS + 2 bytes of the HEADERS header; call 1: the rest.
    let (mut parser, mut ledger) = start(Direction::Read);
    let base = Instant::now();
    feed_pieces(
        &mut parser,
        &mut ledger,
        &[&bytes[..11], &bytes[11..]],
        base,
    );
    let s = ledger.stream(3);
    let head = s.response_start.unwrap();
    let end = s.response_end.unwrap();
    assert_eq!(head, at(base, 0));
    assert_eq!(end, at(base, 1));
    assert_eq!(s.first_headers_received_at, Some(head));
    assert_eq!(ledger.connection().frames_read, 2);
}

#[test]
fn end_stream_on_a_continued_header_block_ends_with_the_block() {
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(0x1, FLAG_END_STREAM, 1, &[0x82; 8]));
    bytes.extend(frame(0x9, 0, 1, &[0x84; 8]));
    let before_last = bytes.len();
    bytes.extend(frame(0x9, FLAG_END_HEADERS, 1, &[0x86; 8]));
    let (mut parser, mut ledger) = start(Direction::Write);
    let base = Instant::now();
    parser.feed(&bytes[..before_last], at(base, 0), &mut ledger);
    assert_eq!(ledger.stream(1).request_end, None);
    parser.feed(&bytes[before_last..], at(base, 1), &mut ledger);
    let s = ledger.stream(1);
    assert_eq!(s.request_end, Some(at(base, 1)));
    assert_eq!(s.request_start, Some(at(base, 0)));
    assert_eq!(s.send_bytes_count, 3 * (9 + 8));
    assert_eq!(s.body_bytes_sent, 0);
}

#[test]
fn a_pending_end_stream_ends_only_with_its_own_block() {
    // Another stream's CONTINUATION does not end stream 1's block; stream 1's does.
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(0x1, FLAG_END_STREAM, 1, &[0x82]));
    bytes.extend(frame(0x9, FLAG_END_HEADERS, 3, &[0x84]));
    let (mut parser, mut ledger) = start(Direction::Write);
    let base = Instant::now();
    parser.feed(&bytes, at(base, 0), &mut ledger);
    assert_eq!(ledger.stream(1).request_end, None);
    assert_eq!(ledger.stream(3).request_end, None);
    parser.feed(
        &frame(0x9, FLAG_END_HEADERS, 1, &[0x86]),
        at(base, 1),
        &mut ledger,
    );
    assert_eq!(ledger.stream(1).request_end, Some(at(base, 1)));

    // Any frame of another type in between ends the block (RFC 9113 §6.10): a CONTINUATION
    // after it no longer ends the stream.
    let mut bytes = frame(0x1, FLAG_END_STREAM, 1, &[0x82]);
    bytes.extend(frame(0x6, 0, 0, &[0; 8]));
    bytes.extend(frame(0x9, FLAG_END_HEADERS, 1, &[0x86]));
    let (mut parser, mut ledger) = start(Direction::Read);
    feed_by(&mut parser, &mut ledger, &bytes, 1, base);
    let s = ledger.stream(1);
    assert_eq!(s.response_end, None);
    assert_eq!(s.response_start, Some(base));
    assert_eq!(s.received_byted_count, 2 * 10);
}

#[test]
fn rst_stream_and_goaway_split_byte_by_byte() {
    let mut bytes = frame(0x4, 0, 0, &[0, 4, 0, 1, 0, 0]);
    bytes.extend(frame(0x3, 0, 3, &8u32.to_be_bytes()));
    bytes.extend(frame(0x3, 0, 3, &2u32.to_be_bytes())); // a second one: the first is kept
    bytes.extend(frame(0x3, 0, 5, &[0, 0])); // too short: counted, not recorded
    let mut goaway = (0x8000_0000u32 | 5).to_be_bytes().to_vec(); // reserved bit set
    goaway.extend(0u32.to_be_bytes());
    bytes.extend(frame(0x7, 0, 0, &goaway));
    let first_goaway_end = bytes.len();
    let mut goaway = 3u32.to_be_bytes().to_vec();
    goaway.extend(2u32.to_be_bytes());
    goaway.extend(b"debug data");
    bytes.extend(frame(0x7, 0, 0, &goaway));
    bytes.extend(frame(0x6, 0, 0, &[1; 8])); // PING
    let (mut parser, mut ledger) = start(Direction::Read);
    feed_by(&mut parser, &mut ledger, &bytes, 1, Instant::now());
    let s3 = ledger.stream(3);
    assert_eq!(s3.reset_received, Some(8));
    assert_eq!(s3.received_byted_count, 2 * 13);
    assert_eq!(s3.response_end, None);
    let s5 = ledger.stream(5);
    assert_eq!(s5.reset_received, None);
    assert_eq!(s5.received_byted_count, 11);
    assert_eq!(ledger.stream(0), StreamTap::default());
    let c = ledger.connection();
    assert_eq!(
        c.goaway_received,
        Some((3, 2)),
        "the latest GOAWAY, reserved bit masked"
    );
    assert_eq!(c.frames_read, 7);
    assert_eq!(c.total_read, bytes.len() as u64);
    assert_eq!(c.total_written, 0);
    check_against_reference(&ledger, &bytes, false);

    // The first GOAWAY alone: its id with the reserved bit masked.
    let (mut parser, mut ledger) = start(Direction::Read);
    let first = &bytes[..first_goaway_end];
    feed_by(&mut parser, &mut ledger, first, 1, Instant::now());
    assert_eq!(ledger.connection().goaway_received, Some((5, 0)));
}

#[test]
fn rst_stream_and_goaway_written_are_counted_not_recorded() {
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(0x3, 0, 1, &8u32.to_be_bytes()));
    let mut goaway = 1u32.to_be_bytes().to_vec();
    goaway.extend(0u32.to_be_bytes());
    bytes.extend(frame(0x7, 0, 0, &goaway));
    let (mut parser, mut ledger) = start(Direction::Write);
    parser.feed(&bytes, Instant::now(), &mut ledger);
    let s = ledger.stream(1);
    assert_eq!(s.reset_received, None);
    assert_eq!(s.send_bytes_count, 13);
    let c = ledger.connection();
    assert_eq!(c.goaway_received, None);
    assert_eq!(c.frames_written, 2);
    check_against_reference(&ledger, &bytes, true);
}

#[test]
fn max_concurrent_streams_is_the_peers_latest_setting() {
    let setting = |id: u16, value: u32| {
        let mut v = id.to_be_bytes().to_vec();
        v.extend(value.to_be_bytes());
        v
    };
    let (mut parser, mut ledger) = start(Direction::Read);
    let base = Instant::now();
    assert_eq!(ledger.connection().max_concurrent_streams, None);
    // Another setting, then the limit, split byte by byte.
    let mut payload = setting(0x4, 65_535);
    payload.extend(setting(SETTINGS_MAX_CONCURRENT_STREAMS, 100));
    feed_by(
        &mut parser,
        &mut ledger,
        &frame(0x4, 0, 0, &payload),
        1,
        base,
    );
    assert_eq!(ledger.connection().max_concurrent_streams, Some(100));
    // Not settings: an ACK, a SETTINGS frame on a stream, and a frame whose only entry is cut short.
    let limit = setting(SETTINGS_MAX_CONCURRENT_STREAMS, 7);
    let mut ignored = frame(0x4, FLAG_ACK, 0, &limit);
    ignored.extend(frame(0x4, 0, 1, &limit));
    ignored.extend(frame(0x4, 0, 0, &limit[..5]));
    feed_by(&mut parser, &mut ledger, &ignored, 4, base);
    assert_eq!(ledger.connection().max_concurrent_streams, Some(100));
    // A later frame lowers it; the last entry of a frame wins.
    let mut payload = setting(SETTINGS_MAX_CONCURRENT_STREAMS, 3);
    payload.extend(setting(SETTINGS_MAX_CONCURRENT_STREAMS, 0));
    parser.feed(&frame(0x4, 0, 0, &payload), base, &mut ledger);
    assert_eq!(ledger.connection().max_concurrent_streams, Some(0));
    assert_eq!(ledger.connection().frames_read, 5);

    // The client's own settings are not the peer's.
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(
        0x4,
        0,
        0,
        &setting(SETTINGS_MAX_CONCURRENT_STREAMS, 9),
    ));
    let (mut parser, mut ledger) = start(Direction::Write);
    parser.feed(&bytes, base, &mut ledger);
    assert_eq!(ledger.connection().max_concurrent_streams, None);
}

#[test]
fn stream_zero_and_unknown_frames_count_only_toward_the_connection() {
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(0x4, 0, 0, &[0; 12]));
    bytes.extend(frame(0x8, 0, 0, &[0, 1, 0, 0]));
    bytes.extend(frame(0x6, 0, 0, &[0; 8]));
    bytes.extend(frame(0xb, 0, 1, &[0; 17])); // unknown extension type on stream 1
    bytes.extend(frame(0x4, 0, 1, &[])); // SETTINGS on a stream: not stream-level
    bytes.extend(frame(0x8, 0, 1, &[0, 0, 1, 0])); // stream WINDOW_UPDATE: counted
    let (mut parser, mut ledger) = start(Direction::Write);
    feed_by(&mut parser, &mut ledger, &bytes, 3, Instant::now());
    assert_eq!(ledger.stream(0), StreamTap::default());
    let s1 = ledger.stream(1);
    assert_eq!(s1.send_bytes_count, 13);
    assert_eq!(s1.request_start, None);
    let c = ledger.connection();
    assert_eq!((c.frames_written, c.total_written), (6, bytes.len() as u64));
}

#[test]
fn forget_drops_the_entry_and_late_frames_do_not_bring_it_back() {
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(0x1, FLAG_END_HEADERS | FLAG_END_STREAM, 1, &[0x82]));
    bytes.extend(frame(0x1, FLAG_END_HEADERS | FLAG_END_STREAM, 3, &[0x82]));
    let (mut parser, mut ledger) = start(Direction::Write);
    let base = Instant::now();
    parser.feed(&bytes, base, &mut ledger);
    assert!(ledger.stream(1).request_end.is_some());
    ledger.forget(3);
    assert_eq!(ledger.stream(3), StreamTap::default());
    assert!(
        ledger.stream(1).request_end.is_some(),
        "other streams untouched"
    );
    // A late RST_STREAM on 3, and on 1 (still known): 3 stays gone.
    let mut late = frame(0x3, 0, 3, &8u32.to_be_bytes());
    late.extend(frame(0x3, 0, 1, &8u32.to_be_bytes()));
    // A new stream above the watermark is tracked; stream 2 (other parity) too.
    late.extend(frame(0x1, FLAG_END_HEADERS, 5, &[0x88]));
    late.extend(frame(0x1, FLAG_END_HEADERS, 2, &[0x88]));
    parser.feed(&late, at(base, 1), &mut ledger);
    assert_eq!(ledger.stream(3), StreamTap::default());
    assert!(!ledger.streams.contains_key(&3));
    assert_eq!(ledger.stream(1).send_bytes_count, 10 + 13);
    assert_eq!(ledger.stream(5).send_bytes_count, 10);
    assert_eq!(ledger.stream(2).send_bytes_count, 10);
    ledger.forget(1);
    ledger.forget(5);
    ledger.forget(2);
    ledger.forget(0);
    assert!(ledger.streams.is_empty());
    let c = ledger.connection();
    assert_eq!(c.total_written, (bytes.len() + late.len()) as u64);
    assert_eq!(c.frames_written, 6);
}

#[test]
fn the_forgotten_watermark_is_per_parity_and_ignores_the_reserved_bit() {
    let (mut parser, mut ledger) = start(Direction::Read);
    let base = Instant::now();
    // Forgotten with the reserved bit set: the watermark of odd ids is 7.
    ledger.forget(0x8000_0007);
    ledger.forget(0);
    assert_eq!(ledger.forgotten_max, [0, 7]);
    let mut bytes = Vec::new();
    for id in [1, 5, 7, 9, 2, 4] {
        bytes.extend(frame(0x0, FLAG_END_STREAM, id, &[1; 3]));
    }
    parser.feed(&bytes, base, &mut ledger);
    let mut tracked: Vec<u32> = ledger.streams.keys().copied().collect();
    tracked.sort_unstable();
    assert_eq!(tracked, [2, 4, 9]);
    assert_eq!(ledger.stream(9).response_end, Some(base));
    assert_eq!(
        ledger.stream(0x8000_0009),
        ledger.stream(9),
        "reserved bit ignored"
    );
    assert_eq!(ledger.connection().total_read, bytes.len() as u64);
}

#[test]
fn forgetting_a_stream_mid_frame_does_not_bring_it_back() {
    // DATA on 1 with END_STREAM: header and half the payload, forget, the rest.
    let bytes = frame(0x0, FLAG_END_STREAM, 1, &[1; 10]);
    let (mut parser, mut ledger) = start(Direction::Read);
    let base = Instant::now();
    parser.feed(&bytes[..14], base, &mut ledger);
    assert_eq!(ledger.stream(1).data_received, 5);
    ledger.forget(1);
    parser.feed(&bytes[14..], at(base, 1), &mut ledger);
    assert!(ledger.streams.is_empty());
    let c = ledger.connection();
    assert_eq!((c.frames_read, c.total_read), (1, bytes.len() as u64));
}

#[test]
fn random_frames_in_random_pieces_match_a_whole_buffer_parser() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..40 {
        let mut bytes = if round % 2 == 0 {
            PREFACE.to_vec()
        } else {
            Vec::new()
        };
        bytes.extend(random_frames(&mut rng, 30));
        // Sometimes cut the last frame short.
        if round % 3 == 0 {
            let cut = rng.below(bytes.len());
            bytes.truncate(cut);
        }
        let base = Instant::now();

        // Written in pieces of 1 to 64 bytes (the preface rounds only: the write direction
        // starts with it).
        let (mut parser, mut ledger) = start(Direction::Write);
        let max = 1 + rng.below(64);
        let mut i = 0;
        while i < bytes.len() {
            let k = 1 + rng.below(max).min(bytes.len() - i - 1);
            parser.feed(&bytes[i..i + k], at(base, i), &mut ledger);
            i += k;
        }
        if round % 2 == 0 {
            check_against_reference(&ledger, &bytes, true);
        }

        // Read in pieces of 1 to 500 bytes, and whole: the same counts.
        let (mut parser, mut ledger) = start(Direction::Read);
        feed_by(&mut parser, &mut ledger, &bytes, 1 + rng.below(500), base);
        check_against_reference(&ledger, &bytes, false);
        let (mut parser, mut whole) = start(Direction::Read);
        parser.feed(&bytes, base, &mut whole);
        let counts_of = |l: &FrameLedger| {
            let (streams, connection) = everything(l);
            let streams: BTreeMap<_, _> =
                streams.into_iter().map(|(id, s)| (id, counts(s))).collect();
            (streams, connection)
        };
        assert_eq!(counts_of(&ledger), counts_of(&whole));
        assert_eq!(
            whole.connection().frames_read,
            reference(&bytes, false).frames
        );
    }
}

#[test]
fn header_block_body_and_framing_are_told_apart_and_add_up() {
    // HEADERS with PADDED (pad 3) and PRIORITY: pad length byte, 5 priority bytes, a 4-byte
    // block, 3 bytes of padding; a CONTINUATION of 2; a PADDED DATA (pad 2) of 5 content
    // bytes; a plain DATA of 7; WINDOW_UPDATE, PRIORITY and RST_STREAM on the stream.
    let mut headers = vec![3, 0, 0, 0, 0, 16];
    headers.extend([0x82, 0x86, 0x84, 0x41]);
    headers.extend([0; 3]);
    let mut data = vec![2];
    data.extend([b'x'; 5]);
    data.extend([0; 2]);
    let frames = [
        frame(0x1, FLAG_PADDED | FLAG_PRIORITY, 1, &headers),
        frame(0x9, FLAG_END_HEADERS, 1, &[0x01, b'a']),
        frame(0x0, FLAG_PADDED, 1, &data),
        frame(0x0, FLAG_END_STREAM, 1, &[b'y'; 7]),
        frame(0x8, 0, 1, &1000u32.to_be_bytes()),
        frame(0x2, 0, 1, &[0, 0, 0, 0, 16]),
        frame(0x3, 0, 1, &8u32.to_be_bytes()),
    ]
    .concat();
    let frame_headers = 7 * 9;
    let framing = frame_headers + 1 + 5 + 3 + 1 + 2 + 4 + 5 + 4;
    for (direction, preface) in [(Direction::Write, true), (Direction::Read, false)] {
        let bytes = if preface {
            [&PREFACE[..], &frames].concat()
        } else {
            frames.clone()
        };
        for max in 1..=bytes.len() {
            let (mut parser, mut ledger) = start(direction);
            feed_by(&mut parser, &mut ledger, &bytes, max, Instant::now());
            let s = ledger.stream(1);
            let (header, framing_got, padding, data, total) = match direction {
                Direction::Write => (
                    s.header_block_sent,
                    s.framing_sent,
                    s.data_padding_sent,
                    s.body_bytes_sent,
                    s.send_bytes_count,
                ),
                Direction::Read => (
                    s.header_block_received,
                    s.framing_received,
                    s.data_padding_received,
                    s.data_received,
                    s.received_byted_count,
                ),
            };
            assert_eq!(header, 4 + 2, "{direction:?} in pieces of {max}");
            assert_eq!(data - padding, 5 + 7, "{direction:?} in pieces of {max}");
            assert_eq!(padding, 1 + 2, "{direction:?} in pieces of {max}");
            assert_eq!(
                framing_got, framing as u64,
                "{direction:?} in pieces of {max}"
            );
            assert_eq!(total, frames.len() as u64);
            assert_eq!(header + (data - padding) + framing_got, total);
        }
    }
}

#[test]
fn a_pad_length_over_the_payload_leaves_no_content() {
    // DATA of 4 bytes claiming 10 bytes of padding; HEADERS with PRIORITY but 3 bytes.
    let bytes = [
        frame(0x0, FLAG_PADDED, 1, &[10, b'a', b'b', b'c']),
        frame(0x1, FLAG_PRIORITY | FLAG_END_HEADERS, 1, &[0, 0, 0]),
    ]
    .concat();
    let (mut parser, mut ledger) = start(Direction::Read);
    feed_by(&mut parser, &mut ledger, &bytes, 1, Instant::now());
    let s = ledger.stream(1);
    assert_eq!(s.data_received, 4);
    assert_eq!(s.data_padding_received, 4);
    assert_eq!(s.header_block_received, 0);
    assert_eq!(s.framing_received, 2 * 9 + 4 + 3);
    assert_eq!(s.framing_received, s.received_byted_count);
    check_carried_against_reference(&ledger, &bytes, false);
}

#[test]
fn random_frames_are_told_apart_as_a_whole_buffer_walk_does() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for round in 0..60 {
        let mut frames = random_frames(&mut rng, 30);
        if round % 3 == 0 {
            let cut = rng.below(frames.len());
            frames.truncate(cut);
        }
        let written = [&PREFACE[..], &frames].concat();
        for (direction, bytes) in [(Direction::Write, &written), (Direction::Read, &frames)] {
            let (mut parser, mut ledger) = start(direction);
            let max = 1 + rng.below(200);
            feed_by(&mut parser, &mut ledger, bytes, max, Instant::now());
            check_carried_against_reference(&ledger, bytes, direction == Direction::Write);
        }
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = Rng(42);
    let mut garbage = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_vec();
    garbage.extend((0..100_000).map(|_| rng.next() as u8));
    garbage.extend([0xff; 64]);
    let base = Instant::now();
    let mut ledger = FrameLedger::default();
    let mut parser = FrameParser::new(Direction::Read);
    feed_by(&mut parser, &mut ledger, &garbage, 999, base);
    assert_eq!(ledger.connection().total_read, garbage.len() as u64);
    check_against_reference(&ledger, &garbage, false);

    let mut parser = FrameParser::new(Direction::Write);
    feed_by(&mut parser, &mut ledger, &garbage, 4096, base);
    assert_eq!(ledger.connection().total_written, garbage.len() as u64);
}

/// The end offsets (bytes from the start, preface included) of every written frame that ends a
/// stream's side: an independent whole-buffer walk, the reference for the look-ahead.
fn stream_ends(bytes: &[u8]) -> Vec<usize> {
    let mut pos = PREFACE_LEN;
    let mut pending = None;
    let mut out = Vec::new();
    while pos + FRAME_HEADER_LEN <= bytes.len() {
        let h = &bytes[pos..pos + FRAME_HEADER_LEN];
        let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
        let (kind, flags) = (h[3], h[4]);
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & STREAM_ID_MASK;
        pos += FRAME_HEADER_LEN + len;
        if kind != TYPE_CONTINUATION {
            pending = None;
        }
        if stream == 0 {
            continue;
        }
        let end_stream = flags & FLAG_END_STREAM != 0;
        let end_headers = flags & FLAG_END_HEADERS != 0;
        match kind {
            TYPE_DATA if end_stream => out.push(pos),
            TYPE_HEADERS if end_stream && end_headers => out.push(pos),
            TYPE_HEADERS if end_stream => pending = Some(stream),
            TYPE_CONTINUATION if end_headers && pending == Some(stream) => {
                pending = None;
                out.push(pos);
            }
            _ => {}
        }
    }
    out
}

/// The end offsets of the frames that end stream `id`'s side.
fn stream_ends_of(bytes: &[u8], id: u32) -> Vec<usize> {
    stream_ends(bytes)
        .into_iter()
        .filter(|&end| {
            // The frame ending at `end`: walk to it.
            let mut pos = PREFACE_LEN;
            loop {
                let h = &bytes[pos..pos + FRAME_HEADER_LEN];
                let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
                let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & STREAM_ID_MASK;
                pos += FRAME_HEADER_LEN + len;
                if pos == end {
                    return stream == id;
                }
            }
        })
        .collect()
}

/// From any point of a connection's written bytes, looking ahead over any split of the rest
/// finds exactly the next frame that ends a stream, and leaves the parser as it was.
#[test]
fn looking_ahead_finds_the_next_stream_end_from_anywhere() {
    let mut rng = Rng(0x5eed_ab1e);
    let mut bytes = PREFACE.to_vec();
    bytes.extend(upload_bytes()[PREFACE_LEN..].iter());
    for _ in 0..4 {
        bytes.extend(random_frames(&mut rng, 40));
        // Header blocks continued in CONTINUATION frames, with and without END_STREAM.
        bytes.extend(frame(TYPE_HEADERS, FLAG_END_STREAM, 7, b"abc"));
        bytes.extend(frame(TYPE_CONTINUATION, 0, 7, b"d"));
        bytes.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 7, b"e"));
        bytes.extend(frame(TYPE_HEADERS, 0, 9, b"abc"));
        bytes.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 9, b"d"));
    }
    let ends = stream_ends(&bytes);
    assert!(ends.len() > 10, "{} stream ends", ends.len());
    let now = Instant::now();
    for _ in 0..400 {
        let at = rng.below(bytes.len() + 1);
        let mut parser = FrameParser::new(Direction::Write);
        let mut ledger = FrameLedger::default();
        for piece in bytes[..at].chunks(1 + rng.below(700)) {
            parser.feed(piece, now, &mut ledger);
        }
        let rest = &bytes[at..];
        let mut pieces = Vec::new();
        let mut from = 0;
        while from < rest.len() {
            let k = (1 + rng.below(3000)).min(rest.len() - from);
            pieces.push(&rest[from..from + k]);
            from += k;
        }
        let expected = ends.iter().find(|&&e| e > at).map(|e| e - at);
        let before = format!("{parser:?}");
        assert_eq!(
            parser.bytes_to_stream_end(pieces.iter().copied(), |_| true),
            expected,
            "looking ahead from byte {at}"
        );
        // Only stream 7's ends wanted: the next of those.
        let sevens = stream_ends_of(&bytes, 7);
        assert_eq!(
            parser.bytes_to_stream_end(pieces.iter().copied(), |id| id == 7),
            sevens.iter().find(|&&e| e > at).map(|e| e - at),
            "looking ahead for stream 7 from byte {at}"
        );
        assert_eq!(format!("{parser:?}"), before, "the parser did not move");
    }
}

/// The streams whose body or end was written are reported once per write, in order.
#[test]
fn written_streams_are_reported_once_until_taken() {
    let mut parser = FrameParser::new(Direction::Write);
    let mut ledger = FrameLedger::default();
    let now = Instant::now();
    let mut out = Vec::new();
    parser.feed(PREFACE, now, &mut ledger);
    parser.feed(
        &frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, b"h"),
        now,
        &mut ledger,
    );
    parser.feed(
        &frame(TYPE_HEADERS, FLAG_END_HEADERS, 3, b"h"),
        now,
        &mut ledger,
    );
    ledger.take_written(&mut out);
    assert!(out.is_empty(), "HEADERS without END_STREAM carry no body");
    parser.feed(&frame(TYPE_DATA, 0, 3, b"xyz"), now, &mut ledger);
    parser.feed(&frame(TYPE_DATA, 0, 1, b"xyz"), now, &mut ledger);
    parser.feed(&frame(TYPE_DATA, 0, 3, b"xyz"), now, &mut ledger);
    ledger.take_written(&mut out);
    assert_eq!(out, [3, 1]);
    ledger.take_written(&mut out);
    assert!(out.is_empty());
    parser.feed(&frame(TYPE_DATA, FLAG_END_STREAM, 1, b""), now, &mut ledger);
    ledger.take_written(&mut out);
    assert_eq!(
        out,
        [1],
        "an empty DATA frame with END_STREAM ends the body"
    );
    ledger.forget(3);
    parser.feed(&frame(TYPE_DATA, 0, 3, b"late"), now, &mut ledger);
    ledger.take_written(&mut out);
    assert!(out.is_empty(), "a forgotten stream is not reported");
}
