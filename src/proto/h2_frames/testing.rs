//! Test helpers shared by the parser's tests and the frame tap's: frames built by hand, a
//! deterministic random source, and a whole-buffer reference parser to compare against.

use std::collections::BTreeMap;

use super::{FrameLedger, StreamTap, FLAG_END_HEADERS, FLAG_END_STREAM};

/// The client connection preface.
pub(crate) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One frame: header + payload.
pub(crate) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = len.to_be_bytes()[1..].to_vec();
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Preface + SETTINGS + HEADERS(1) + DATA(1, 100 bytes) + DATA(1, END_STREAM, 20 bytes) +
/// connection WINDOW_UPDATE.
pub(crate) fn upload_bytes() -> Vec<u8> {
    let mut v = PREFACE.to_vec();
    v.extend(frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]));
    v.extend(frame(
        0x1,
        FLAG_END_HEADERS,
        1,
        &[0x83, 0x86, 0x84, 0x41, 0x01, b'x'],
    ));
    v.extend(frame(0x0, 0, 1, &[7; 100]));
    v.extend(frame(0x0, FLAG_END_STREAM, 1, &[8; 20]));
    v.extend(frame(0x8, 0, 0, &1000u32.to_be_bytes()));
    v
}

/// xorshift64*: deterministic pseudo-random numbers for the property tests.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `count` frames of random types (known, extension and unknown), flags, streams (the reserved
/// bit set on some) and lengths (empty, small, over 16 KiB), with random payloads.
pub(crate) fn random_frames(rng: &mut Rng, count: usize) -> Vec<u8> {
    let kinds = [0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0xa, 0x10, 0xff];
    let streams = [0, 1, 3, 5, 2, 0x8000_0001];
    let mut v = Vec::new();
    for _ in 0..count {
        let len = match rng.below(10) {
            0 => 0,
            1 => 16_384 + rng.below(5000),
            _ => rng.below(300),
        };
        let payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let kind = kinds[rng.below(kinds.len())];
        let stream = streams[rng.below(streams.len())];
        v.extend(frame(kind, rng.next() as u8, stream, &payload));
    }
    v
}

/// What a whole-buffer parser says: per stream (bytes, data), frames completed, bytes.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Totals {
    pub(crate) streams: BTreeMap<u32, (u64, u64)>,
    pub(crate) frames: u64,
    pub(crate) bytes: u64,
}

/// Parses `bytes` (a whole direction, `preface` for the write direction) in one go, written
/// independently of the incremental parser.
pub(crate) fn reference(bytes: &[u8], preface: bool) -> Totals {
    let mut t = Totals {
        bytes: bytes.len() as u64,
        ..Totals::default()
    };
    let mut i = if preface { 24.min(bytes.len()) } else { 0 };
    while i + 9 <= bytes.len() {
        let h = &bytes[i..i + 9];
        let length = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
        let kind = h[3];
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        let available = length.min(bytes.len() - i - 9);
        if stream != 0 && matches!(kind, 0 | 1 | 2 | 3 | 5 | 8 | 9) {
            let e = t.streams.entry(stream).or_default();
            e.0 += 9 + available as u64;
            if kind == 0 {
                e.1 += available as u64;
            }
        }
        if available == length {
            t.frames += 1;
        }
        i += 9 + available;
    }
    t
}

/// Asserts that `ledger`'s counts for one direction (`write`, else read) of `bytes` are the
/// reference parser's.
pub(crate) fn check_against_reference(ledger: &FrameLedger, bytes: &[u8], write: bool) {
    let expected = reference(bytes, write);
    let c = ledger.connection();
    let (frames, total) = if write {
        (c.frames_written, c.total_written)
    } else {
        (c.frames_read, c.total_read)
    };
    assert_eq!((frames, total), (expected.frames, expected.bytes));
    for (&id, &(b, d)) in &expected.streams {
        let s = ledger.stream(id);
        let got = if write {
            (s.send_bytes_count, s.body_bytes_sent)
        } else {
            (s.received_byted_count, s.data_received)
        };
        assert_eq!(got, (b, d), "stream {id}");
    }
    assert_eq!(ledger.stream(0), StreamTap::default());
}

/// What a stream's bytes carried, by a whole-buffer walk written apart from the parser:
/// (header block, body, DATA padding, other framing).
pub(crate) type Carried = (u64, u64, u64, u64);

/// Per stream, what the bytes of one direction (`preface`: the write direction) carried.
pub(crate) fn reference_carried(bytes: &[u8], preface: bool) -> BTreeMap<u32, Carried> {
    let mut out: BTreeMap<u32, Carried> = BTreeMap::new();
    let mut i = if preface { 24.min(bytes.len()) } else { 0 };
    while i + 9 <= bytes.len() {
        let h = &bytes[i..i + 9];
        let length = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
        let (kind, flags) = (h[3], h[4]);
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        let payload = &bytes[i + 9..(i + 9 + length).min(bytes.len())];
        i += 9 + payload.len();
        if stream == 0 || !matches!(kind, 0 | 1 | 2 | 3 | 5 | 8 | 9) {
            continue;
        }
        let e = out.entry(stream).or_default();
        e.3 += 9;
        let padded = matches!(kind, 0 | 1) && flags & 0x8 != 0;
        let priority = kind == 1 && flags & 0x20 != 0;
        let (content_from, content_to) = match kind {
            0 | 1 => {
                let from = usize::from(padded) + if priority { 5 } else { 0 };
                let pad = if padded {
                    payload.first().map_or(0, |&p| usize::from(p))
                } else {
                    0
                };
                // A pad length over the payload leaves no content.
                (from, length.saturating_sub(pad).max(from))
            }
            9 => (0, length),
            _ => (0, 0),
        };
        for offset in 0..payload.len() {
            let content = offset >= content_from && offset < content_to;
            match (kind, content) {
                (0, true) => e.1 += 1,
                (0, false) => e.2 += 1,
                (1 | 9, true) => e.0 += 1,
                _ => e.3 += 1,
            }
        }
    }
    out
}

/// Asserts that the ledger's split of one direction of `bytes` is the reference's, and that
/// header block + body + framing is the stream's total.
pub(crate) fn check_carried_against_reference(ledger: &FrameLedger, bytes: &[u8], write: bool) {
    for (id, (header, body, padding, framing)) in reference_carried(bytes, write) {
        let s = ledger.stream(id);
        let (got, total, data) = if write {
            (
                (
                    s.header_block_sent,
                    s.data_padding_sent,
                    s.framing_sent - s.data_padding_sent,
                ),
                s.send_bytes_count,
                s.body_bytes_sent,
            )
        } else {
            (
                (
                    s.header_block_received,
                    s.data_padding_received,
                    s.framing_received - s.data_padding_received,
                ),
                s.received_byted_count,
                s.data_received,
            )
        };
        assert_eq!(got, (header, padding, framing), "stream {id}");
        assert_eq!(data - got.1, body, "stream {id}: body");
        assert_eq!(got.0 + (data - got.1) + got.1 + got.2, total, "stream {id}");
    }
}
