//! The HTTP/1 response decoder fed arbitrary bytes in arbitrary splits.
//!
//! Input layout: byte 0 holds flags (bit 0: the request was HEAD, bit 1: push EOF at the end,
//! bit 2: tiny limits), byte 1 is the number `k` (0..=15) of split sizes, the next `k` bytes are
//! split sizes (0 = 1 byte) cycled over the rest of the input, which is the response.
//!
//! Checks: no panic, `Body` events never empty, errors sticky, and the split feed gives the
//! same outcome as feeding everything at once (events with adjacent body pieces merged, the
//! error, and when clean wire bytes, keep-alive, buffered length, completeness and framing):
//! the "split independence" promised in src/proto/response.rs.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use uploadfile::proto::{BodyFraming, DecoderLimits, ProtoError, ResponseDecoder, ResponseEvent};

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<ResponseEvent>,
    error: Option<ProtoError>,
    wire: u64,
    keep_alive: bool,
    buffered: usize,
    complete: bool,
    framing: Option<BodyFraming>,
}

fn drain(dec: &mut ResponseDecoder, events: &mut Vec<ResponseEvent>) -> Option<ProtoError> {
    loop {
        match dec.poll_event() {
            Ok(Some(ResponseEvent::Body(b))) => {
                assert!(!b.is_empty(), "empty Body event");
                match events.last_mut() {
                    Some(ResponseEvent::Body(prev)) => {
                        let mut v = BytesMut::from(&prev[..]);
                        v.extend_from_slice(&b);
                        *prev = v.freeze();
                    }
                    _ => events.push(ResponseEvent::Body(b)),
                }
            }
            Ok(Some(e)) => events.push(e),
            Ok(None) => return None,
            Err(e) => {
                // Errors are sticky and later input is ignored.
                dec.push(b"HTTP/1.1 200 OK\r\n\r\n");
                assert_eq!(dec.poll_event(), Err(e.clone()), "error not sticky");
                return Some(e);
            }
        }
    }
}

fn run(input: &[u8], req_head: bool, eof: bool, limits: DecoderLimits, sizes: &[usize]) -> Outcome {
    let mut dec = ResponseDecoder::with_limits(req_head, limits);
    let mut events = Vec::new();
    let mut error = None;
    let mut rest = input;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        i += 1;
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        dec.push(piece);
        error = drain(&mut dec, &mut events);
        if error.is_some() {
            break;
        }
    }
    if error.is_none() {
        error = drain(&mut dec, &mut events);
    }
    if error.is_none() && eof {
        dec.push_eof();
        error = drain(&mut dec, &mut events);
    }
    let clean = error.is_none();
    // Ok(None) after End, and polling again is harmless.
    if clean {
        let _ = dec.poll_event();
    }
    Outcome {
        events,
        error,
        wire: if clean { dec.wire_bytes() } else { 0 },
        keep_alive: clean && dec.keep_alive(),
        buffered: if clean { dec.buffered_len() } else { 0 },
        complete: clean && dec.is_complete(),
        framing: if clean { dec.body_framing() } else { None },
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let flags = data[0];
    let k = (data[1] & 0x0f) as usize;
    let rest = &data[2..];
    let k = k.min(rest.len());
    let sizes: Vec<usize> = rest[..k].iter().map(|&b| b as usize).collect();
    let input = &rest[k..];
    let req_head = flags & 1 != 0;
    let eof = flags & 2 != 0;
    let limits = if flags & 4 != 0 {
        DecoderLimits {
            max_head_bytes: 64,
            max_headers: 3,
        }
    } else {
        DecoderLimits::default()
    };

    let whole = run(input, req_head, eof, limits, &[usize::MAX]);
    // The body's bytes are input bytes: never more body than input.
    let body: usize = whole
        .events
        .iter()
        .map(|e| match e {
            ResponseEvent::Body(b) => b.len(),
            _ => 0,
        })
        .sum();
    assert!(body <= input.len());
    if whole.error.is_none() {
        assert!(whole.wire <= input.len() as u64, "wire_bytes beyond input");
    }
    let split_sizes: &[usize] = if sizes.is_empty() { &[1] } else { &sizes };
    let split = run(input, req_head, eof, limits, split_sizes);
    assert_eq!(
        split, whole,
        "splitting {split_sizes:?} changed the outcome"
    );
});
