//! Tests of the response decoder. Almost every input goes through
//! [`decode`], which feeds it whole, byte by byte and in irregular pieces and
//! insists that all three give the same outcome.

use super::*;
use ResponseEvent::{Body, End, Head, Interim};

/// Everything observable about one decoding run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    /// Events, adjacent `Body` pieces merged.
    events: Vec<ResponseEvent>,
    error: Option<ProtoError>,
    /// These are only compared when there was no error.
    wire: u64,
    keep_alive: bool,
    buffered: usize,
    complete: bool,
    framing: Option<BodyFraming>,
}

impl Outcome {
    fn body(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.events {
            if let Body(b) = e {
                out.extend_from_slice(b);
            }
        }
        out
    }

    fn head(&self) -> &ResponseHead {
        self.events
            .iter()
            .find_map(|e| match e {
                Head(h) => Some(h),
                _ => None,
            })
            .expect("no Head event")
    }

    fn kinds(&self) -> Vec<&'static str> {
        self.events
            .iter()
            .map(|e| match e {
                Interim(_) => "interim",
                Head(_) => "head",
                Body(_) => "body",
                End => "end",
            })
            .collect()
    }
}

/// Feeds `input` in pieces whose sizes cycle through `sizes`.
fn run(input: &[u8], req_head: bool, eof: bool, limits: DecoderLimits, sizes: &[usize]) -> Outcome {
    let mut dec = ResponseDecoder::with_limits(req_head, limits);
    let mut events: Vec<ResponseEvent> = Vec::new();
    let mut error = None;
    let drain = |dec: &mut ResponseDecoder, events: &mut Vec<ResponseEvent>| loop {
        match dec.poll_event() {
            Ok(Some(Body(b))) => {
                assert!(!b.is_empty(), "empty Body event");
                match events.last_mut() {
                    Some(Body(prev)) => {
                        let mut v = prev.to_vec();
                        v.extend_from_slice(&b);
                        *prev = Bytes::from(v);
                    }
                    _ => events.push(Body(b)),
                }
            }
            Ok(Some(e)) => events.push(e),
            Ok(None) => return None,
            Err(e) => {
                // Errors are sticky, and later input is ignored.
                dec.push(b"HTTP/1.1 200 OK\r\n\r\n");
                assert_eq!(dec.poll_event(), Err(e.clone()));
                return Some(e);
            }
        }
    };
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
        assert_wire_adds_up(&dec, &events);
    }
    if error.is_none() {
        error = drain(&mut dec, &mut events);
    }
    if error.is_none() && eof {
        dec.push_eof();
        error = drain(&mut dec, &mut events);
    }
    let clean = error.is_none();
    if clean {
        assert_wire_adds_up(&dec, &events);
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

/// The decoder's byte kinds add up to its wire count at any moment, and its body count is what
/// the `Body` events carried.
fn assert_wire_adds_up(dec: &ResponseDecoder, events: &[ResponseEvent]) {
    let body: usize = events
        .iter()
        .map(|e| match e {
            Body(b) => b.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(dec.body_bytes(), body as u64, "body bytes are the events'");
    assert_eq!(
        dec.header_bytes() + dec.body_bytes() + dec.framing_bytes(),
        dec.wire_bytes(),
        "header {} + body {} + framing {}",
        dec.header_bytes(),
        dec.body_bytes(),
        dec.framing_bytes()
    );
}

/// Decodes with several splittings and checks they agree.
fn decode_with(input: &[u8], req_head: bool, eof: bool, limits: DecoderLimits) -> Outcome {
    let whole = run(input, req_head, eof, limits, &[usize::MAX]);
    for sizes in [&[1][..], &[2], &[3, 1, 7], &[13, 5, 1, 64]] {
        let split = run(input, req_head, eof, limits, sizes);
        assert_eq!(
            split,
            whole,
            "splitting {sizes:?} changed the outcome for {:?}",
            String::from_utf8_lossy(input)
        );
    }
    whole
}

fn decode(input: &[u8]) -> Outcome {
    decode_with(input, false, false, DecoderLimits::default())
}

fn decode_eof(input: &[u8]) -> Outcome {
    decode_with(input, false, true, DecoderLimits::default())
}

#[test]
fn content_length_body() {
    let input = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
    let out = decode(input);
    assert_eq!(out.kinds(), ["head", "body", "end"]);
    assert_eq!(out.body(), b"hello");
    assert_eq!(out.error, None);
    assert_eq!(out.wire, input.len() as u64);
    assert!(out.keep_alive && out.complete);
    assert_eq!(out.buffered, 0);
    assert_eq!(out.framing, Some(BodyFraming::Length(5)));
    let head = out.head();
    assert_eq!((head.status, head.version), (200, 1));
    assert_eq!(head.reason, "OK");
    assert_eq!(head.header("content-TYPE"), Some("text/plain"));
    assert_eq!(head.header("X-Missing"), None);
    assert_eq!(head.headers[1], ("Content-Length".into(), "5".into()));
    let closed = decode_eof(input);
    assert_eq!(
        closed.events, out.events,
        "EOF after a complete message is fine"
    );
    assert!(!closed.keep_alive, "but the connection is gone");
}

#[test]
fn zero_length_and_reasonless_status() {
    let out = decode(b"HTTP/1.1 201\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(out.kinds(), ["head", "end"]);
    assert_eq!(out.head().reason, "");
    assert!(out.keep_alive);
}

#[test]
fn header_lookup_is_first_and_case_insensitive() {
    let out = decode(
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nContent-Length: 0\r\n\r\n",
    );
    let head = out.head();
    assert_eq!(head.header("SET-COOKIE"), Some("a=1"));
    assert_eq!(
        head.header_values("Set-Cookie").collect::<Vec<_>>(),
        ["a=1", "b=2"]
    );
    assert_eq!(head.headers[1].0, "set-cookie", "names kept as received");
}

#[test]
fn chunked_with_extensions_and_trailers() {
    let input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;foo=bar\r\nhello\r\n1 ; a=\"b;c\"\r\n,\r\n6\r\n world\r\n0;last\r\n\
        X-Checksum: abc\r\nX-Other: 1\r\n\r\n";
    let out = decode(input);
    assert_eq!(out.kinds(), ["head", "body", "end"]);
    assert_eq!(out.body(), b"hello, world");
    assert_eq!(out.framing, Some(BodyFraming::Chunked));
    assert_eq!(out.wire, input.len() as u64, "framing and trailers counted");
    assert!(out.keep_alive);
}

#[test]
fn chunked_wins_over_content_length_but_closes() {
    let out = decode(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    assert_eq!(out.body(), b"abc");
    assert_eq!(out.framing, Some(BodyFraming::Chunked));
    assert!(out.complete);
    assert!(
        !out.keep_alive,
        "TE + CL is a smuggling pattern: do not reuse"
    );
}

#[test]
fn transfer_coding_lists() {
    let chunked_last = decode(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n");
    assert_eq!(chunked_last.framing, Some(BodyFraming::Chunked));
    assert!(chunked_last.keep_alive);
    for te in ["gzip", "chunked, gzip", "identity"] {
        let input = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: {te}\r\nContent-Length: 3\r\n\r\n0\r\n\r\n"
        );
        let out = decode_eof(input.as_bytes());
        assert_eq!(out.framing, Some(BodyFraming::CloseDelimited), "{te}");
        assert_eq!(out.body(), b"0\r\n\r\n");
        assert!(!out.keep_alive);
    }
    let empty = decode(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: , \r\nContent-Length: 1\r\n\r\nx");
    assert_eq!(
        empty.framing,
        Some(BodyFraming::Length(1)),
        "an empty list is no coding"
    );
    let twice = decode(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n");
    assert!(matches!(
        twice.error,
        Some(ProtoError::InvalidTransferEncoding { .. })
    ));
}

#[test]
fn close_delimited_body() {
    let input = b"HTTP/1.1 200 OK\r\n\r\nsome bytes";
    let open = decode(input);
    assert_eq!(open.kinds(), ["head", "body"]);
    assert!(!open.complete);
    assert_eq!(open.framing, Some(BodyFraming::CloseDelimited));
    let closed = decode_eof(input);
    assert_eq!(closed.kinds(), ["head", "body", "end"]);
    assert_eq!(closed.body(), b"some bytes");
    assert_eq!(closed.wire, input.len() as u64);
    assert!(closed.complete && !closed.keep_alive);
    let empty = decode_eof(b"HTTP/1.0 200 OK\r\n\r\n");
    assert_eq!(empty.kinds(), ["head", "end"]);
}

#[test]
fn head_request_has_no_body() {
    let input = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
    let out = decode_with(input, true, false, DecoderLimits::default());
    assert_eq!(out.kinds(), ["head", "end"]);
    assert_eq!(out.framing, Some(BodyFraming::None));
    assert!(out.keep_alive);
    let chunked = decode_with(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        true,
        false,
        DecoderLimits::default(),
    );
    assert_eq!(chunked.kinds(), ["head", "end"]);
}

#[test]
fn no_body_statuses() {
    for status in ["204 No Content", "304 Not Modified"] {
        let input =
            format!("HTTP/1.1 {status}\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n");
        let out = decode(input.as_bytes());
        assert_eq!(out.kinds(), ["head", "end"], "{status}");
        assert_eq!(out.framing, Some(BodyFraming::None));
        assert_eq!(out.wire, input.len() as u64);
    }
}

#[test]
fn continue_then_final_in_one_push() {
    let input = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let out = decode(input);
    assert_eq!(out.kinds(), ["interim", "head", "body", "end"]);
    assert!(matches!(&out.events[0], Interim(h) if h.status == 100 && h.reason == "Continue"));
    assert_eq!(out.head().status, 200);
    assert_eq!(out.wire, input.len() as u64);
    assert!(out.keep_alive);
}

#[test]
fn continue_then_final_in_two_pushes() {
    let mut dec = ResponseDecoder::new(false);
    assert!(!dec.head_started());
    dec.push(b"HTTP/1.1 100 Continue\r\n\r\n");
    assert!(dec.head_started());
    assert!(matches!(dec.poll_event(), Ok(Some(Interim(h))) if h.status == 100));
    assert_eq!(dec.poll_event(), Ok(None));
    assert!(!dec.head_started(), "the final response has not started");
    assert_eq!(dec.buffered_len(), 0);
    assert_eq!(dec.wire_bytes(), 25);
    assert_eq!(dec.body_framing(), None);
    dec.push(b"H");
    assert_eq!(dec.poll_event(), Ok(None));
    assert!(dec.head_started());
    dec.push(b"TTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert!(matches!(dec.poll_event(), Ok(Some(Head(h))) if h.status == 200));
    assert_eq!(dec.poll_event(), Ok(Some(End)));
    assert_eq!(dec.poll_event(), Ok(None));
    assert!(dec.is_complete() && dec.keep_alive());
}

#[test]
fn start_of_final_response_buffered_after_interim() {
    let mut dec = ResponseDecoder::new(false);
    dec.push(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2");
    assert!(matches!(dec.poll_event(), Ok(Some(Interim(_)))));
    assert_eq!(dec.buffered_len(), 10);
    assert!(dec.head_started());
    assert_eq!(dec.poll_event(), Ok(None));
}

#[test]
fn early_hints_then_final() {
    let input = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n\
        HTTP/1.1 103 Early Hints\r\nLink: </app.js>; rel=preload\r\n\r\n\
        HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";
    let out = decode(input);
    assert_eq!(out.kinds(), ["interim", "interim", "head", "body", "end"]);
    assert!(
        matches!(&out.events[1], Interim(h) if h.header("link") == Some("</app.js>; rel=preload"))
    );
    assert_eq!(out.wire, input.len() as u64);
}

#[test]
fn switching_protocols_is_an_error() {
    let out = decode(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
    assert_eq!(out.error, Some(ProtoError::UnexpectedSwitchingProtocols));
    assert!(out.kinds().is_empty());
}

#[test]
fn http10_keep_alive_rules() {
    let cases: &[(&str, bool)] = &[
        ("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false),
        ("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", true),
        ("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n", true),
        ("HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n", false),
        ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true),
        ("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false),
        ("HTTP/1.1 200 OK\r\nConnection: Upgrade, CLOSE\r\nContent-Length: 0\r\n\r\n", false),
        ("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false),
        ("HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 0\r\n\r\n", true),
        ("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false),
    ];
    for (input, keep) in cases {
        let out = decode(input.as_bytes());
        assert!(out.complete, "{input:?}");
        assert_eq!(out.keep_alive, *keep, "{input:?}");
    }
    let out = decode(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(out.head().version, 0);
}

#[test]
fn keep_alive_only_when_complete_and_open() {
    let mut dec = ResponseDecoder::new(false);
    dec.push(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\no");
    assert!(matches!(dec.poll_event(), Ok(Some(Head(_)))));
    assert!(matches!(dec.poll_event(), Ok(Some(Body(_)))));
    assert!(!dec.keep_alive() && !dec.is_complete());
    dec.push(b"k");
    assert!(matches!(dec.poll_event(), Ok(Some(Body(_)))));
    assert!(dec.is_complete() && dec.keep_alive());
    assert_eq!(dec.poll_event(), Ok(Some(End)));
    assert!(dec.keep_alive());
    dec.push_eof();
    assert!(!dec.keep_alive(), "the peer closed");
    assert_eq!(dec.poll_event(), Ok(None));
}

#[test]
fn bytes_after_end_are_left_and_prevent_reuse() {
    let input = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA";
    let out = decode(input);
    assert_eq!(out.body(), b"ok");
    assert_eq!(out.buffered, 5);
    assert_eq!(out.wire, input.len() as u64 - 5);
    assert!(out.complete && !out.keep_alive);
    let no_body = decode(b"HTTP/1.1 204 No Content\r\n\r\nbody?");
    assert_eq!(no_body.buffered, 5);
    assert!(!no_body.keep_alive);
}

#[test]
fn content_length_validation() {
    let ok = decode(b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length:3\r\n\r\nabc");
    assert_eq!(ok.framing, Some(BodyFraming::Length(3)));
    assert!(ok.complete);
    let max = decode(b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n");
    assert_eq!(max.framing, Some(BodyFraming::Length(u64::MAX)));
    for (value, reason) in [
        ("5\r\nContent-Length: 6", "conflicting values"),
        ("5, 6", "conflicting values"),
        ("abc", "not a decimal number"),
        ("-1", "not a decimal number"),
        ("+5", "not a decimal number"),
        ("0x10", "not a decimal number"),
        ("5 5", "not a decimal number"),
        ("5,", "not a decimal number"),
        ("", "not a decimal number"),
        ("18446744073709551616", "too large"),
        ("99999999999999999999999999", "too large"),
    ] {
        let input = format!("HTTP/1.1 200 OK\r\nContent-Length: {value}\r\n\r\n");
        let out = decode(input.as_bytes());
        assert_eq!(
            out.error,
            Some(ProtoError::InvalidContentLength { reason }),
            "{value:?}"
        );
        assert!(
            out.kinds().is_empty(),
            "no Head for a head that cannot be framed"
        );
    }
}

#[test]
fn oversize_head() {
    let limits = DecoderLimits {
        max_head_bytes: 64,
        max_headers: 128,
    };
    let with_pad = |n: usize| {
        format!(
            "HTTP/1.1 200 OK\r\nX-Pad: {}\r\nContent-Length: 0\r\n\r\n",
            "a".repeat(n)
        )
    };
    let fits = with_pad(17);
    assert_eq!(fits.len(), 64);
    let out = decode_with(fits.as_bytes(), false, false, limits);
    assert!(out.complete, "{out:?}");
    let too_big = with_pad(18);
    let out = decode_with(too_big.as_bytes(), false, false, limits);
    assert_eq!(out.error, Some(ProtoError::HeadTooLarge { limit: 64 }));
    // A head that never ends is refused once it passes the limit.
    let endless = vec![b'a'; 100];
    let mut input = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
    input.extend_from_slice(&endless);
    let out = decode_with(&input, false, false, limits);
    assert_eq!(out.error, Some(ProtoError::HeadTooLarge { limit: 64 }));
    let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
    for _ in 0..2000 {
        big.extend_from_slice(b"X-Filler: 0123456789012345678901234567890\r\n");
    }
    big.extend_from_slice(b"\r\n");
    assert_eq!(
        decode(&big).error,
        Some(ProtoError::HeadTooLarge { limit: 64 * 1024 })
    );
}

#[test]
fn too_many_headers() {
    let head_with = |n: usize| {
        let mut s = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..n {
            s.push_str(&format!("X-{i}: {i}\r\n"));
        }
        s.push_str("Content-Length: 0\r\n\r\n");
        s
    };
    let limits = DecoderLimits {
        max_head_bytes: 64 * 1024,
        max_headers: 4,
    };
    assert!(decode_with(head_with(3).as_bytes(), false, false, limits).complete);
    assert_eq!(
        decode_with(head_with(4).as_bytes(), false, false, limits).error,
        Some(ProtoError::TooManyHeaders { limit: 4 })
    );
    // The default limit, crossing the internal array growth.
    let out = decode(head_with(127).as_bytes());
    assert_eq!(out.head().headers.len(), 128);
    assert_eq!(
        decode(head_with(128).as_bytes()).error,
        Some(ProtoError::TooManyHeaders { limit: 128 })
    );
    let none = DecoderLimits {
        max_head_bytes: 1024,
        max_headers: 0,
    };
    assert!(decode_with(b"HTTP/1.1 204 No Content\r\n\r\n", false, false, none).complete);
    assert_eq!(
        decode_with(head_with(0).as_bytes(), false, false, none).error,
        Some(ProtoError::TooManyHeaders { limit: 0 })
    );
}

#[test]
fn huge_chunk_size() {
    let out = decode(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1FFFFFFFFFFFFFFFF\r\n");
    assert_eq!(out.error, Some(ProtoError::ChunkSizeOverflow));
    assert_eq!(out.kinds(), ["head"]);
    let big =
        decode(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\nabc");
    assert_eq!(big.error, None);
    assert_eq!(big.body(), b"abc", "a huge chunk streams");
}

#[test]
fn malformed_chunks() {
    for (body, want) in [
        ("zz\r\n", ProtoError::InvalidChunkSize),
        (
            "3\r\nabcd\r\n",
            ProtoError::BadChunkFraming {
                reason: "chunk data not followed by CRLF (chunk longer than its size?)",
            },
        ),
        (
            "0\r\nBad Trailer\r\n\r\n",
            ProtoError::InvalidTrailers {
                reason: "malformed trailer field name",
            },
        ),
    ] {
        let input = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
        assert_eq!(decode(input.as_bytes()).error, Some(want), "{body:?}");
    }
}

#[test]
fn eof_before_and_mid_head() {
    let nothing = decode_eof(b"");
    assert_eq!(
        nothing.error,
        Some(ProtoError::IncompleteHead { received: 0 })
    );
    assert_eq!(
        nothing.error.unwrap().to_string(),
        "connection closed before the response head"
    );
    let partial = decode_eof(b"HTTP/1.1 200 OK\r\nContent-");
    assert_eq!(
        partial.error,
        Some(ProtoError::IncompleteHead { received: 25 })
    );
    assert!(partial.error.unwrap().to_string().contains("25 bytes"));
    let after_interim = decode_eof(b"HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(after_interim.kinds(), ["interim"]);
    assert_eq!(
        after_interim.error,
        Some(ProtoError::IncompleteHead { received: 0 })
    );
}

#[test]
fn eof_mid_body() {
    let out = decode_eof(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n1234");
    assert_eq!(out.kinds(), ["head", "body"]);
    assert_eq!(out.body(), b"1234");
    let err = out.error.unwrap();
    assert_eq!(
        err,
        ProtoError::IncompleteBody {
            received: 4,
            expected: Some(10)
        }
    );
    assert_eq!(
        err.to_string(),
        "connection closed before the body completed (got 4 of 10 bytes)"
    );
    let chunked = decode_eof(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
    assert_eq!(chunked.body(), b"ab");
    let err = chunked.error.unwrap();
    assert_eq!(
        err,
        ProtoError::IncompleteBody {
            received: 2,
            expected: None
        }
    );
    assert!(err.to_string().contains("chunked"));
    let before_last =
        decode_eof(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n");
    assert!(matches!(
        before_last.error,
        Some(ProtoError::IncompleteBody { received: 1, .. })
    ));
}

#[test]
fn not_http_is_refused_early() {
    let mut dec = ResponseDecoder::new(false);
    dec.push(b"SSH");
    assert!(matches!(
        dec.poll_event(),
        Err(ProtoError::MalformedStatusLine { .. })
    ));
    for input in [
        &b"SSH-2.0-OpenSSH_9.6\r\n"[..],
        b"HTTP/2 200\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 099 Low\r\n\r\n",
        b"HTTP/1.2 200 OK\r\n\r\n",
        b"http/1.1 200 OK\r\n\r\n",
        b" HTTP/1.1 200 OK\r\n\r\n",
        b"\rHTTP/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\x01\r\n\r\n",
        b"\x00\x01\x02",
    ] {
        let out = decode(input);
        assert!(
            matches!(out.error, Some(ProtoError::MalformedStatusLine { .. })),
            "{:?}: {:?}",
            String::from_utf8_lossy(input),
            out.error
        );
    }
}

#[test]
fn malformed_headers() {
    for input in [
        &b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\n: no name\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded-first: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: y\r\r\n\r\n",
    ] {
        let out = decode(input);
        assert!(
            matches!(out.error, Some(ProtoError::MalformedHeader { .. })),
            "{:?}: {:?}",
            String::from_utf8_lossy(input),
            out.error
        );
    }
}

#[test]
fn obs_fold_is_unfolded() {
    let out = decode(
        b"HTTP/1.1 200 OK\r\nX-Long: first\r\n  second\r\n\tthird\r\nContent-Length: 0\r\n\r\n",
    );
    let v = out.head().header("x-long").unwrap();
    assert!(v.starts_with("first") && v.ends_with("third"), "{v:?}");
    assert!(!v.contains(['\r', '\n']));
    assert_eq!(
        v.split_whitespace().collect::<Vec<_>>(),
        ["first", "second", "third"]
    );
    assert!(out.complete);
}

#[test]
fn lenient_line_endings_and_leading_empty_lines() {
    let lf = decode(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nhi");
    assert_eq!(lf.body(), b"hi");
    let input = b"\r\n\nHTTP/1.1 204 No Content\r\n\r\n";
    let leading = decode(input);
    assert!(leading.complete);
    assert_eq!(leading.wire, input.len() as u64);
}

#[test]
fn odd_statuses_and_values() {
    let out = decode_eof(b"HTTP/1.1 600 Odd\r\n\r\nx");
    assert_eq!(out.head().status, 600);
    assert_eq!(out.body(), b"x");
    let lossy =
        decode(b"HTTP/1.1 200 \xff\r\nX-Bin: caf\xc3\xa9 \xff\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(lossy.head().header("x-bin"), Some("café \u{fffd}"));
    assert_eq!(lossy.head().reason, "");
}

#[test]
fn body_is_not_copied() {
    let mut dec = ResponseDecoder::new(false);
    dec.push(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789");
    assert!(matches!(dec.poll_event(), Ok(Some(Head(_)))));
    let Ok(Some(Body(b))) = dec.poll_event() else {
        panic!("expected a body")
    };
    assert_eq!(b.as_ref(), b"0123456789");
    // `Bytes` split off a `BytesMut` is not unique until that is dropped:
    // proof it shares the decoder's allocation rather than a copy.
    assert!(b.try_into_mut().is_err());
}

#[test]
fn wire_bytes_exact_across_everything() {
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n".len();
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".len();
    let body = b"3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n".len();
    let mut input = Vec::new();
    input.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
    input.extend_from_slice(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    input.extend_from_slice(b"3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n");
    input.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    let out = decode(&input);
    assert_eq!(out.wire, (interim + head + body) as u64);
    assert_eq!(out.buffered, 17);

    let mut dec = ResponseDecoder::new(false);
    let mut seen = Vec::new();
    for &b in &input {
        dec.push(&[b]);
        while let Ok(Some(_)) = dec.poll_event() {}
        seen.push(dec.wire_bytes());
    }
    assert_eq!(
        seen[interim - 1],
        interim as u64,
        "interim counted once parsed"
    );
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "monotonic");
}

#[test]
fn header_body_and_framing_bytes_are_told_apart() {
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    let chunked = b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n";
    let input = [&interim[..], head, chunked].concat();
    for split in 0..=input.len() {
        let mut dec = ResponseDecoder::new(false);
        for piece in [&input[..split], &input[split..]] {
            dec.push(piece);
            while let Ok(Some(_)) = dec.poll_event() {}
        }
        assert!(dec.is_complete(), "split {split}");
        // Both heads and the trailer field line.
        assert_eq!(
            dec.header_bytes(),
            (interim.len() + head.len() + b"T: 1\r\n".len()) as u64
        );
        assert_eq!(dec.body_bytes(), 5);
        // "3;x=y\r\n", CRLF, "2\r\n", CRLF, "0\r\n", the final CRLF.
        assert_eq!(dec.framing_bytes(), 7 + 2 + 3 + 2 + 3 + 2);
        assert_eq!(dec.wire_bytes(), input.len() as u64);
    }
    // Content-Length and close-delimited bodies have no framing.
    for (input, eof) in [
        (
            &b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"[..],
            false,
        ),
        (&b"HTTP/1.0 200 OK\r\n\r\nabcd"[..], true),
    ] {
        let mut dec = ResponseDecoder::new(false);
        dec.push(input);
        if eof {
            dec.push_eof();
        }
        while let Ok(Some(_)) = dec.poll_event() {}
        assert!(dec.is_complete());
        assert_eq!(dec.framing_bytes(), 0);
        assert_eq!(dec.header_bytes() + dec.body_bytes(), input.len() as u64);
    }
}

#[test]
fn error_messages_are_distinct_and_clear() {
    let all = [
        ProtoError::MalformedStatusLine { reason: "r" },
        ProtoError::MalformedHeader { reason: "r" },
        ProtoError::HeadTooLarge { limit: 1 },
        ProtoError::TooManyHeaders { limit: 1 },
        ProtoError::InvalidContentLength { reason: "r" },
        ProtoError::InvalidTransferEncoding { reason: "r" },
        ProtoError::InvalidChunkSize,
        ProtoError::ChunkSizeOverflow,
        ProtoError::BadChunkFraming { reason: "r" },
        ProtoError::InvalidTrailers { reason: "r" },
        ProtoError::UnexpectedSwitchingProtocols,
        ProtoError::IncompleteHead { received: 0 },
        ProtoError::IncompleteHead { received: 3 },
        ProtoError::IncompleteBody {
            received: 1,
            expected: Some(2),
        },
        ProtoError::IncompleteBody {
            received: 1,
            expected: None,
        },
    ];
    let msgs: Vec<String> = all.iter().map(ToString::to_string).collect();
    for (i, m) in msgs.iter().enumerate() {
        assert!(!m.is_empty());
        assert!(
            msgs[i + 1..].iter().all(|o| o != m),
            "duplicate message {m:?}"
        );
    }
}

/// A tiny deterministic generator for the mutation test.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mutated_inputs_never_panic_and_ignore_splits() {
    let seeds: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX: y\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nbody",
        b"HTTP/1.1 204 No Content\r\nX-Fold: a\r\n b\r\n\r\n",
    ];
    let alphabet = b"\r\n :;0123456789aAfFxX\t\x00\xffHTTP/1.chunked";
    let limits = DecoderLimits {
        max_head_bytes: 80,
        max_headers: 3,
    };
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for round in 0..3000 {
        let mut input = seeds[round % seeds.len()].to_vec();
        for _ in 0..=rng.below(4) {
            let at = rng.below(input.len() + 1);
            match rng.below(3) {
                0 if at < input.len() => {
                    input.remove(at);
                }
                1 if at < input.len() => input[at] = alphabet[rng.below(alphabet.len())],
                _ => input.insert(at, alphabet[rng.below(alphabet.len())]),
            }
        }
        let eof = rng.below(2) == 0;
        let lim = if rng.below(2) == 0 {
            limits
        } else {
            DecoderLimits::default()
        };
        let req_head = rng.below(5) == 0;
        let whole = run(&input, req_head, eof, lim, &[usize::MAX]);
        let sizes = [rng.below(9) + 1, rng.below(3) + 1, rng.below(30) + 1];
        for s in [&[1][..], &sizes[..]] {
            assert_eq!(
                run(&input, req_head, eof, lim, s),
                whole,
                "split {s:?} of {:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(12345);
    for _ in 0..2000 {
        let len = rng.below(200);
        let input: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = decode_eof(&input);
    }
}
