//! Decoding of the `chunked` transfer coding (RFC 9112 §7.1).
//!
//! ```text
//! chunked-body = *chunk last-chunk trailer-section CRLF
//! chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! last-chunk   = 1*("0") [ chunk-ext ] CRLF
//! ```
//!
//! The framing is walked one byte at a time through a small state machine,
//! so input may be split anywhere — mid size, mid extension, between CR and
//! LF — and every split gives the same result. Chunk *data* is not copied:
//! it is split off the decoder's buffer as [`Bytes`] sharing its allocation.
//!
//! Choices, all on the strict side because a misread frame boundary shifts
//! every byte after it:
//! - line ends in the framing must be CRLF (a bare LF is an error, as in
//!   hyper); the head parser is more lenient because httparse is;
//! - a chunk size that does not fit in `u64` is an error, never a wrap;
//! - extensions are skipped without interpretation, but may not contain
//!   control characters, and a size line may be at most
//!   [`MAX_CHUNK_LINE`] bytes so a peer cannot stall us in an endless one;
//! - trailer fields are checked for shape (`token ":" value CRLF`) and
//!   discarded; their bytes count against the head-size limit and their
//!   number against the header-count limit.
//!
//! Every byte consumed is one of three kinds, counted apart so that the
//! profile can say what a response's bytes carried: chunk data (the body),
//! trailer field lines ([`trailer_field_bytes`](ChunkedDecoder::trailer_field_bytes),
//! header bytes like the head's), and the rest of the coding: size lines
//! with their extensions, the CRLF after each chunk's data, the last chunk
//! and the final CRLF ([`framing_bytes`](ChunkedDecoder::framing_bytes)).

use bytes::{Buf, Bytes, BytesMut};

use super::error::ProtoError;
use super::request::is_tchar;

/// The longest chunk-size line (size, extensions, CRLF) accepted.
pub(crate) const MAX_CHUNK_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    /// Reading hex digits of the size.
    Size,
    /// Whitespace after the size (tolerated before `;` or CR).
    SizeWs,
    /// Inside chunk extensions, up to CR.
    Ext,
    /// Expecting the LF of the size line.
    SizeLf,
    /// Reading `remaining` bytes of chunk data.
    Data,
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or the final CRLF).
    TrailerStart,
    /// In a trailer field name.
    TrailerName,
    /// In a trailer field value.
    TrailerValue,
    /// Expecting the LF of a trailer line.
    TrailerLf,
    /// Expecting the LF of the final CRLF.
    EndLf,
    /// The last chunk and trailers have been read.
    Done,
}

/// What one call to [`ChunkedDecoder::decode`] produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Decoded body bytes (never empty).
    Data(Bytes),
    /// The chunked body is complete.
    Done,
    /// The buffer is exhausted; push more input.
    NeedMore,
}

/// Incremental `chunked` decoder.
#[derive(Debug, Clone)]
pub(crate) struct ChunkedDecoder {
    st: St,
    /// Size being parsed, then bytes left in the current chunk.
    size: u64,
    digits: usize,
    line_len: usize,
    trailer_bytes: usize,
    trailer_fields: usize,
    max_trailer_bytes: usize,
    max_trailer_fields: usize,
    /// Framing bytes consumed (see the module docs).
    framing: u64,
    /// Trailer field line bytes consumed.
    trailer_field_bytes: u64,
}

impl ChunkedDecoder {
    /// A decoder whose trailer section may hold at most `max_trailer_bytes`
    /// bytes (including the final CRLF) and `max_trailer_fields` fields.
    pub(crate) fn new(max_trailer_bytes: usize, max_trailer_fields: usize) -> Self {
        ChunkedDecoder {
            st: St::Size,
            size: 0,
            digits: 0,
            line_len: 0,
            trailer_bytes: 0,
            trailer_fields: 0,
            max_trailer_bytes,
            max_trailer_fields,
            framing: 0,
            trailer_field_bytes: 0,
        }
    }

    /// Bytes of the coding consumed so far that are neither chunk data nor trailer field
    /// lines: size lines (extensions included), the CRLF after each chunk's data, the last
    /// chunk and the final CRLF. With the data and
    /// [`trailer_field_bytes`](Self::trailer_field_bytes), the `wire` count of
    /// [`decode`](Self::decode).
    pub(crate) fn framing_bytes(&self) -> u64 {
        self.framing
    }

    /// Bytes of trailer field lines (`name: value` CRLF) consumed so far.
    pub(crate) fn trailer_field_bytes(&self) -> u64 {
        self.trailer_field_bytes
    }

    /// Decodes from the front of `buf`, removing what it consumes and adding
    /// the number of consumed bytes (data and framing) to `wire`.
    pub(crate) fn decode(
        &mut self,
        buf: &mut BytesMut,
        wire: &mut u64,
    ) -> Result<Step, ProtoError> {
        loop {
            match self.st {
                St::Done => return Ok(Step::Done),
                St::Data => {
                    if self.size == 0 {
                        self.st = St::DataCr;
                        continue;
                    }
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let n = usize::try_from(self.size).map_or(buf.len(), |s| s.min(buf.len()));
                    self.size -= n as u64;
                    *wire += n as u64;
                    return Ok(Step::Data(buf.split_to(n).freeze()));
                }
                _ => {
                    let mut used = 0;
                    let mut trailer_fields = 0u64;
                    let mut result = Ok(());
                    for &b in buf.iter() {
                        used += 1;
                        if self.in_trailer_field(b) {
                            trailer_fields += 1;
                        }
                        result = self.framing_byte(b);
                        if result.is_err() || matches!(self.st, St::Data | St::Done) {
                            break;
                        }
                    }
                    result?;
                    buf.advance(used);
                    *wire += used as u64;
                    self.trailer_field_bytes += trailer_fields;
                    self.framing += used as u64 - trailer_fields;
                    if !matches!(self.st, St::Data | St::Done) {
                        return Ok(Step::NeedMore);
                    }
                }
            }
        }
    }

    /// Whether `b`, the next byte, belongs to a trailer field line (its name, value or line
    /// end); the empty line that ends the trailer section does not.
    fn in_trailer_field(&self, b: u8) -> bool {
        match self.st {
            St::TrailerStart => b != b'\r',
            St::TrailerName | St::TrailerValue | St::TrailerLf => true,
            _ => false,
        }
    }

    fn framing_byte(&mut self, b: u8) -> Result<(), ProtoError> {
        if matches!(self.st, St::Size | St::SizeWs | St::Ext | St::SizeLf) {
            self.line_len += 1;
            if self.line_len > MAX_CHUNK_LINE {
                return Err(ProtoError::BadChunkFraming {
                    reason: "chunk size line longer than 4096 bytes",
                });
            }
        }
        if matches!(
            self.st,
            St::TrailerStart | St::TrailerName | St::TrailerValue | St::TrailerLf | St::EndLf
        ) {
            self.trailer_bytes += 1;
            if self.trailer_bytes > self.max_trailer_bytes {
                return Err(ProtoError::InvalidTrailers {
                    reason: "trailer section larger than the head size limit",
                });
            }
        }
        self.st = match self.st {
            St::Size => match b {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    let d = hex_value(b);
                    self.size = self
                        .size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(d))
                        .ok_or(ProtoError::ChunkSizeOverflow)?;
                    self.digits += 1;
                    St::Size
                }
                _ if self.digits == 0 => return Err(ProtoError::InvalidChunkSize),
                b' ' | b'\t' => St::SizeWs,
                b';' => St::Ext,
                b'\r' => St::SizeLf,
                _ => return Err(ProtoError::InvalidChunkSize),
            },
            St::SizeWs => match b {
                b' ' | b'\t' => St::SizeWs,
                b';' => St::Ext,
                b'\r' => St::SizeLf,
                _ => return Err(ProtoError::InvalidChunkSize),
            },
            St::Ext => match b {
                b'\r' => St::SizeLf,
                b'\t' => St::Ext,
                b if b < 0x20 || b == 0x7f => {
                    return Err(ProtoError::BadChunkFraming {
                        reason: "control character in chunk extension",
                    })
                }
                _ => St::Ext,
            },
            St::SizeLf => match b {
                b'\n' => {
                    self.line_len = 0;
                    self.digits = 0;
                    if self.size == 0 {
                        St::TrailerStart
                    } else {
                        St::Data
                    }
                }
                _ => {
                    return Err(ProtoError::BadChunkFraming {
                        reason: "chunk size line not ended by CRLF",
                    })
                }
            },
            St::DataCr | St::DataLf => {
                let expected = if self.st == St::DataCr { b'\r' } else { b'\n' };
                if b != expected {
                    return Err(ProtoError::BadChunkFraming {
                        reason: "chunk data not followed by CRLF (chunk longer than its size?)",
                    });
                }
                if self.st == St::DataCr {
                    St::DataLf
                } else {
                    St::Size
                }
            }
            St::TrailerStart => match b {
                b'\r' => St::EndLf,
                b if is_tchar(b) => {
                    self.trailer_fields += 1;
                    if self.trailer_fields > self.max_trailer_fields {
                        return Err(ProtoError::InvalidTrailers {
                            reason: "more trailer fields than the header count limit",
                        });
                    }
                    St::TrailerName
                }
                _ => {
                    return Err(ProtoError::InvalidTrailers {
                        reason: "malformed trailer field name",
                    })
                }
            },
            St::TrailerName => match b {
                b':' => St::TrailerValue,
                b if is_tchar(b) => St::TrailerName,
                _ => {
                    return Err(ProtoError::InvalidTrailers {
                        reason: "malformed trailer field name",
                    })
                }
            },
            St::TrailerValue => match b {
                b'\r' => St::TrailerLf,
                b'\t' => St::TrailerValue,
                b if b < 0x20 || b == 0x7f => {
                    return Err(ProtoError::InvalidTrailers {
                        reason: "control character in trailer field value",
                    })
                }
                _ => St::TrailerValue,
            },
            St::TrailerLf => match b {
                b'\n' => St::TrailerStart,
                _ => {
                    return Err(ProtoError::InvalidTrailers {
                        reason: "trailer line not ended by CRLF",
                    })
                }
            },
            St::EndLf => match b {
                b'\n' => St::Done,
                _ => {
                    return Err(ProtoError::BadChunkFraming {
                        reason: "chunked body not ended by CRLF",
                    })
                }
            },
            // Not reached: `decode` only feeds framing states.
            St::Data | St::Done => self.st,
        };
        Ok(())
    }
}

fn hex_value(b: u8) -> u64 {
    u64::from(match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` pushed in pieces of `step` bytes; returns the body,
    /// whether the end was reached, the bytes left over and the wire count.
    fn decode(input: &[u8], step: usize) -> Result<(Vec<u8>, bool, Vec<u8>, u64), ProtoError> {
        let mut d = ChunkedDecoder::new(1024, 8);
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut wire = 0;
        let mut done = false;
        for piece in input.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match d.decode(&mut buf, &mut wire)? {
                    Step::Data(b) => {
                        assert!(!b.is_empty());
                        body.extend_from_slice(&b)
                    }
                    Step::Done => {
                        done = true;
                        break;
                    }
                    Step::NeedMore => break,
                }
            }
        }
        Ok((body, done, buf.to_vec(), wire))
    }

    fn all_splits(input: &[u8]) -> Result<(Vec<u8>, bool, Vec<u8>, u64), ProtoError> {
        let whole = decode(input, input.len());
        for step in [1, 2, 3, 7] {
            assert_eq!(decode(input, step), whole, "step {step}");
        }
        whole
    }

    #[test]
    fn simple() {
        let input = b"4\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\n\r\n";
        let (body, done, rest, wire) = all_splits(input).unwrap();
        assert_eq!(body, b"Wikipedia in \r\n\r\nchunks.");
        assert!(done);
        assert!(rest.is_empty());
        assert_eq!(wire, input.len() as u64);
    }

    #[test]
    fn extensions_whitespace_and_trailers() {
        let input =
            b"5 ;name=\"va;l\"\r\nhello\r\n000\t;x\r\nExpires: never\r\nX-Sum: 1\r\n\r\nNEXT";
        let (body, done, rest, wire) = all_splits(input).unwrap();
        assert_eq!(body, b"hello");
        assert!(done);
        assert_eq!(rest, b"NEXT");
        assert_eq!(wire, input.len() as u64 - 4);
    }

    #[test]
    fn incomplete_needs_more() {
        let (body, done, _, _) = all_splits(b"a\r\n0123").unwrap();
        assert_eq!(body, b"0123");
        assert!(!done);
        let (_, done, _, _) = all_splits(b"0\r\n").unwrap();
        assert!(!done);
    }

    #[test]
    fn overflow_is_an_error() {
        assert_eq!(
            all_splits(b"FFFFFFFFFFFFFFFF\r\n").map(|r| r.1),
            Ok(false),
            "u64::MAX itself fits"
        );
        assert_eq!(
            all_splits(b"10000000000000000\r\n"),
            Err(ProtoError::ChunkSizeOverflow)
        );
        let zeros = b"0000000000000000000000000000001\r\nx";
        assert_eq!(
            all_splits(zeros),
            Ok((b"x".to_vec(), false, vec![], zeros.len() as u64))
        );
    }

    #[test]
    fn malformed_framing() {
        for (input, want) in [
            (&b"\r\n"[..], ProtoError::InvalidChunkSize),
            (b"x\r\n", ProtoError::InvalidChunkSize),
            (b";ext\r\n", ProtoError::InvalidChunkSize),
            (b"-1\r\n", ProtoError::InvalidChunkSize),
            (b"1 2\r\n", ProtoError::InvalidChunkSize),
            (b"0x1\r\n", ProtoError::InvalidChunkSize),
            (b"1\n", ProtoError::InvalidChunkSize),
            (
                b"1\r\r",
                ProtoError::BadChunkFraming {
                    reason: "chunk size line not ended by CRLF",
                },
            ),
            (
                b"1;a\nb\r\n",
                ProtoError::BadChunkFraming {
                    reason: "control character in chunk extension",
                },
            ),
            (
                b"1\r\nab\r\n",
                ProtoError::BadChunkFraming {
                    reason: "chunk data not followed by CRLF (chunk longer than its size?)",
                },
            ),
            (
                b"1\r\na\n",
                ProtoError::BadChunkFraming {
                    reason: "chunk data not followed by CRLF (chunk longer than its size?)",
                },
            ),
            (
                b"0\r\nbad header\r\n\r\n",
                ProtoError::InvalidTrailers {
                    reason: "malformed trailer field name",
                },
            ),
            (
                b"0\r\n: v\r\n\r\n",
                ProtoError::InvalidTrailers {
                    reason: "malformed trailer field name",
                },
            ),
            (
                b"0\r\n folded\r\n\r\n",
                ProtoError::InvalidTrailers {
                    reason: "malformed trailer field name",
                },
            ),
            (
                b"0\r\nA: b\nC: d\r\n\r\n",
                ProtoError::InvalidTrailers {
                    reason: "control character in trailer field value",
                },
            ),
            (
                b"0\r\nA: b\r\r",
                ProtoError::InvalidTrailers {
                    reason: "trailer line not ended by CRLF",
                },
            ),
            (
                b"0\r\n\rX",
                ProtoError::BadChunkFraming {
                    reason: "chunked body not ended by CRLF",
                },
            ),
        ] {
            assert_eq!(
                all_splits(input),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn limits() {
        let mut long = b"1;".to_vec();
        long.resize(MAX_CHUNK_LINE - 2, b'x');
        long.extend_from_slice(b"\r\n");
        assert!(all_splits(&long).is_ok());
        let mut too_long = b"1;".to_vec();
        too_long.resize(MAX_CHUNK_LINE - 1, b'x');
        too_long.extend_from_slice(b"\r\n");
        assert!(matches!(
            all_splits(&too_long),
            Err(ProtoError::BadChunkFraming { .. })
        ));
        let many = b"0\r\na:1\r\nb:2\r\nc:3\r\nd:4\r\ne:5\r\nf:6\r\ng:7\r\nh:8\r\ni:9\r\n\r\n";
        assert!(matches!(
            all_splits(many),
            Err(ProtoError::InvalidTrailers { .. })
        ));
        let mut big = b"0\r\nX: ".to_vec();
        big.resize(2000, b'v');
        big.extend_from_slice(b"\r\n\r\n");
        assert!(matches!(
            all_splits(&big),
            Err(ProtoError::InvalidTrailers { .. })
        ));
    }

    /// Decodes `input` in pieces of `step` bytes; returns (data, trailer field, framing, wire)
    /// byte counts.
    fn kinds(input: &[u8], step: usize) -> (u64, u64, u64, u64) {
        let mut d = ChunkedDecoder::new(1024, 8);
        let mut buf = BytesMut::new();
        let (mut data, mut wire) = (0u64, 0u64);
        'feed: for piece in input.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match d.decode(&mut buf, &mut wire) {
                    Ok(Step::Data(b)) => data += b.len() as u64,
                    Ok(Step::Done) | Err(_) => break 'feed,
                    Ok(Step::NeedMore) => break,
                }
            }
        }
        (data, d.trailer_field_bytes(), d.framing_bytes(), wire)
    }

    #[test]
    fn data_trailer_fields_and_framing_add_up_to_the_wire_count() {
        // 4 and 6 bytes of data; size lines "4\r\n" and "6;x=y\r\n", two data CRLFs, the last
        // chunk "0\r\n", trailers "A: b\r\n" and "Cc: d\r\n", the final CRLF.
        let input = b"4\r\nWiki\r\n6;x=y\r\npedia!\r\n0\r\nA: b\r\nCc: d\r\n\r\nNEXT";
        for step in 1..=input.len() {
            let (data, trailers, framing, wire) = kinds(input, step);
            assert_eq!(data, 10, "step {step}");
            assert_eq!(trailers, 6 + 7, "step {step}");
            assert_eq!(framing, 3 + 7 + 2 + 2 + 3 + 2, "step {step}");
            assert_eq!(data + trailers + framing, wire, "step {step}");
            assert_eq!(wire, input.len() as u64 - 4, "step {step}");
        }
        // No trailers: the final CRLF is framing.
        assert_eq!(kinds(b"1\r\nx\r\n0\r\n\r\n", 1), (1, 0, 3 + 2 + 3 + 2, 11));
        // Cut short: what was consumed adds up.
        for cut in 0..input.len() {
            let (data, trailers, framing, wire) = kinds(&input[..cut], 3);
            assert_eq!(data + trailers + framing, wire, "cut {cut}");
        }
        // An error discards nothing counted before it, and counts nothing of the failed call.
        let (data, trailers, framing, wire) = kinds(b"2\r\nab\r\n0\r\nbad header\r\n", 1);
        assert_eq!((data, data + trailers + framing), (2, wire));
    }

    #[test]
    fn huge_chunk_streams_without_buffering() {
        // A chunk bigger than anything in memory just streams.
        let mut d = ChunkedDecoder::new(1024, 8);
        let mut buf = BytesMut::from(&b"FFFFFFFFFFFF\r\nabc"[..]);
        let mut wire = 0;
        assert_eq!(
            d.decode(&mut buf, &mut wire),
            Ok(Step::Data(Bytes::from_static(b"abc")))
        );
        assert_eq!(d.decode(&mut buf, &mut wire), Ok(Step::NeedMore));
        assert_eq!(wire, 17);
    }
}
