//! HTTP/3 frames on a request stream, counted by what they carry.
//!
//! # Why
//!
//! The profile reports a request's bytes at HTTP level (`sendBytesCount`,
//! `receivedBytedCount`) and, of those, the header block, the body and the protocol's own
//! bytes (`requestHeaderBytesSent`, `bodyBytesSent`, `requestFramingBytes`, and the response's
//! three), so that the three add up to the total exactly. Over HTTP/3 the glue between quinn
//! and `h3` (`transport::quic_glue`) sees a request stream's bytes where they cross into and
//! out of quinn, but not what they are: `h3` builds the frames. This module is the sans-IO half:
//! a [`FrameCounter`] per direction is fed, in order, exactly the bytes quinn accepted (or
//! delivered), split anywhere, and tells them apart.
//!
//! # What counts as what (RFC 9114 §7)
//!
//! A request stream is a sequence of frames, each a variable-length integer type, a
//! variable-length integer payload length, and the payload.
//!
//! - *header block*: the payload of HEADERS frames (type 0x01): the QPACK-encoded field section,
//!   its two-part prefix included, as it is on the wire (interim responses, the final head and
//!   trailers alike);
//! - *body*: the payload of DATA frames (type 0x00);
//! - *framing*: every frame's type and length integers, and the whole payload of any other frame
//!   type on the stream (reserved "grease" frames, unknown extensions, or frames that do not
//!   belong on a request stream).
//!
//! `header_block + body + framing == total` holds after every call. Malformed input (a length
//! beyond what follows) never panics: what arrives is counted as the frame it claims to be.

/// Frame type DATA (RFC 9114 §7.2.1).
const TYPE_DATA: u64 = 0x00;
/// Frame type HEADERS (RFC 9114 §7.2.2).
const TYPE_HEADERS: u64 = 0x01;

/// A request stream's bytes in one direction, by what they carried (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FrameBytes {
    /// Every byte seen.
    pub total: u64,
    /// HEADERS payloads (QPACK field sections).
    pub header_block: u64,
    /// DATA payloads.
    pub body: u64,
    /// Frame types and lengths, and other frames' payloads.
    pub framing: u64,
}

/// Where the counter is in the frame sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Reading the frame type's integer.
    Type,
    /// Reading the payload length's integer of a frame of this type.
    Length { kind: u64 },
    /// In the payload of a frame of this type, with this many bytes to go.
    Payload { kind: u64, remaining: u64 },
}

/// One direction of a request stream, counted as it goes by (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct FrameCounter {
    part: Part,
    /// The integer being read: its bytes so far, and how many it has (0: none read yet).
    int: [u8; 8],
    int_read: usize,
    int_len: usize,
    bytes: FrameBytes,
}

impl Default for FrameCounter {
    fn default() -> Self {
        FrameCounter {
            part: Part::Type,
            int: [0; 8],
            int_read: 0,
            int_len: 0,
            bytes: FrameBytes::default(),
        }
    }
}

impl FrameCounter {
    /// What the bytes fed so far carried.
    pub(crate) fn bytes(&self) -> FrameBytes {
        self.bytes
    }

    /// Observe the next `bytes` of the stream in this counter's direction.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        self.bytes.total += bytes.len() as u64;
        while let Some((&b, rest)) = bytes.split_first() {
            match self.part {
                Part::Type => {
                    self.bytes.framing += 1;
                    bytes = rest;
                    if let Some(kind) = self.int_byte(b) {
                        self.part = Part::Length { kind };
                    }
                }
                Part::Length { kind } => {
                    self.bytes.framing += 1;
                    bytes = rest;
                    if let Some(remaining) = self.int_byte(b) {
                        self.part = Part::Payload { kind, remaining };
                    }
                }
                Part::Payload { kind, remaining } => {
                    let k = usize::try_from(remaining).map_or(bytes.len(), |r| r.min(bytes.len()));
                    let counter = match kind {
                        TYPE_DATA => &mut self.bytes.body,
                        TYPE_HEADERS => &mut self.bytes.header_block,
                        _ => &mut self.bytes.framing,
                    };
                    *counter += k as u64;
                    bytes = &bytes[k..];
                    self.part = Part::Payload {
                        kind,
                        remaining: remaining - k as u64,
                    };
                }
            }
            if let Part::Payload { remaining: 0, .. } = self.part {
                self.part = Part::Type;
            }
        }
    }

    /// One byte of a variable-length integer (RFC 9000 §16); its value once it is complete.
    fn int_byte(&mut self, b: u8) -> Option<u64> {
        if self.int_read == 0 {
            self.int_len = 1 << (b >> 6);
            self.int[0] = b & 0x3f;
        } else {
            self.int[self.int_read] = b;
        }
        self.int_read += 1;
        if self.int_read < self.int_len {
            return None;
        }
        self.int_read = 0;
        Some(
            self.int[..self.int_len]
                .iter()
                .fold(0u64, |v, &b| (v << 8) | u64::from(b)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A variable-length integer in its shortest form.
    fn varint(v: u64) -> Vec<u8> {
        match v {
            0..=0x3f => vec![v as u8],
            0x40..=0x3fff => ((v as u16) | 0x4000).to_be_bytes().to_vec(),
            0x4000..=0x3fff_ffff => ((v as u32) | 0x8000_0000).to_be_bytes().to_vec(),
            _ => (v | 0xc000_0000_0000_0000).to_be_bytes().to_vec(),
        }
    }

    fn frame(kind: u64, payload: &[u8]) -> Vec<u8> {
        [varint(kind), varint(payload.len() as u64), payload.to_vec()].concat()
    }

    /// Feeds `bytes` in pieces of `max`; checks the sum after every piece.
    fn count(bytes: &[u8], max: usize) -> FrameBytes {
        let mut c = FrameCounter::default();
        for piece in bytes.chunks(max.max(1)) {
            c.feed(piece);
            let b = c.bytes();
            assert_eq!(b.header_block + b.body + b.framing, b.total);
        }
        c.bytes()
    }

    #[test]
    fn headers_data_and_other_frames_are_told_apart_however_split() {
        let grease = 0x1f * 7 + 0x21;
        let bytes = [
            frame(TYPE_HEADERS, &[0, 0, 0xd1, 0xd7, 0x50, 0x01, b'a']),
            frame(grease, b"xyz"),
            frame(TYPE_DATA, &[1; 100]),
            frame(TYPE_DATA, &[2; 20_000]),
            frame(TYPE_DATA, &[]),
            frame(TYPE_HEADERS, &[0, 0, 0x80]),
        ]
        .concat();
        // Frame headers: HEADERS 1+1, grease 2+1, DATA 1+2, DATA 1+4 (20000 > 16383), empty
        // DATA 1+1, trailers 1+1; the grease payload.
        let framing = 2 + 3 + 3 + 5 + 2 + 2 + 3;
        for max in [1, 2, 3, 7, 64, 1000, usize::MAX] {
            let b = count(&bytes, max);
            assert_eq!(b.header_block, 7 + 3, "pieces of {max}");
            assert_eq!(b.body, 20_100, "pieces of {max}");
            assert_eq!(b.framing, framing, "pieces of {max}");
            assert_eq!(b.total, bytes.len() as u64);
        }
    }

    #[test]
    fn every_split_of_every_integer_width_agrees() {
        // Types and lengths of 1, 2, 4 and 8 bytes (non-shortest forms too).
        let long_type = [0xc0, 0, 0, 0, 0, 0, 0, 0x01]; // HEADERS in 8 bytes
        let mut bytes = long_type.to_vec();
        bytes.extend([0x80, 0, 0, 3]); // length 3 in 4 bytes
        bytes.extend([9, 9, 9]);
        bytes.extend([0x40, 0x00]); // DATA in 2 bytes
        bytes.extend([0x40, 0x02, 7, 7]); // length 2 in 2 bytes
        let whole = count(&bytes, usize::MAX);
        assert_eq!(
            whole,
            FrameBytes {
                total: bytes.len() as u64,
                header_block: 3,
                body: 2,
                framing: 8 + 4 + 2 + 2,
            }
        );
        for cut in 0..=bytes.len() {
            let mut c = FrameCounter::default();
            c.feed(&bytes[..cut]);
            c.feed(&bytes[cut..]);
            assert_eq!(c.bytes(), whole, "cut at {cut}");
        }
    }

    #[test]
    fn a_cut_short_stream_and_garbage_are_counted_without_panicking() {
        // A DATA frame claiming more than follows: what arrives is body.
        let mut c = FrameCounter::default();
        c.feed(&[0x00, 0x80, 0x01, 0, 0, 1, 2, 3]);
        assert_eq!(c.bytes().body, 3);
        // The largest length there is.
        let mut c = FrameCounter::default();
        c.feed(&[0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 5]);
        assert_eq!((c.bytes().framing, c.bytes().body), (9, 1));
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let garbage: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for max in [1, 13, 4096] {
            let b = count(&garbage, max);
            assert_eq!(b.total, garbage.len() as u64);
        }
    }
}
