//! The body of the `proxy_replies` fuzz target (`fuzz/fuzz_targets/proxy_replies.rs`): the
//! proxy handshakes' decoders ([`socks`](super::socks), [`http_connect`](super::http_connect))
//! fed arbitrary answers, with the checks of what they promise.
//!
//! Why it lives in the library: the handshakes are crate-internal (only the connection layer
//! drives them), so the fuzz crate cannot name them; this one hidden function is all it needs,
//! and the unit tests run it over the seed corpus too.
//!
//! Input layout: byte 0 holds flags (bits 0-1: SOCKS4, SOCKS4a, SOCKS5, SOCKS5; bit 2: with
//! credentials; bit 3: the target is a host name; bit 4: an IPv6 target; bit 5: credentials for
//! the CONNECT request of the input checks); byte 1's low nibble is a count k, the next k bytes
//! are piece sizes (cycled; 0 means 1, none: one piece), the rest is the proxy's answer, given to
//! both decoders in those pieces and one byte at a time. The checks:
//!
//! - no panic; the buffers stay within their bounds; errors are sticky and a finished machine
//!   refuses more bytes; no credential in an error sentence or in `Debug`;
//! - **split independence**: the pieces give the outcome that one byte at a time gives, except
//!   where a piece runs past a reply that the client must answer first (SOCKS5's method choice
//!   and RFC 1929 verdict: then exactly those extra bytes are reported as early) or past a 2xx
//!   head (then exactly those bytes are reported as a body); a SOCKS `Done`'s leftover is exactly
//!   the rest of its piece; `NotHttp` may quote more bytes;
//! - the answer split at its `0xFF` bytes is also used as a host name, user name, password and
//!   user agent for [`connect_request`] and [`SocksHandshake::new`]: what they accept must be
//!   well formed (the `CONNECT` head parses back with httparse to the same target, host and
//!   credentials; the SOCKS request carries the name), what they refuse is bad input.

use std::net::SocketAddr;

use super::http_connect::{
    basic_credentials, connect_request, ConnectError, ConnectErrorCategory, ConnectOutcome,
    ConnectResponse, MAX_HEAD_BYTES,
};
use super::socks::{
    SocksAuth, SocksError, SocksErrorCategory, SocksHandshake, SocksStep, SocksTarget, SocksVersion,
};

/// The password of the SOCKS runs: it must never show in an error or in `Debug`.
const SECRET: &str = "fuzz-secret-password";

/// Runs both proxy-answer decoders over `data` (layout in the module docs) and panics if one
/// breaks a promise.
pub fn proxy_replies(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Some((&k, rest)) = rest.split_first() else {
        return;
    };
    let k = usize::from(k & 0x0f).min(rest.len());
    let (sizes, answer) = rest.split_at(k);
    let pieces = piece_ends(answer.len(), sizes);
    let bytewise: Vec<usize> = (1..=answer.len()).collect();

    socks_check(flags, answer, &pieces, &bytewise);
    connect_check(answer, &pieces, &bytewise);
    inputs_check(flags, answer);
}

/// The end offsets of the pieces: sizes cycled (0 means 1); no sizes, one piece.
fn piece_ends(len: usize, sizes: &[u8]) -> Vec<usize> {
    if sizes.is_empty() {
        return vec![len];
    }
    let mut ends = Vec::new();
    let mut at = 0usize;
    for &size in sizes.iter().cycle() {
        if at >= len {
            break;
        }
        at = (at + usize::from(size).max(1)).min(len);
        ends.push(at);
    }
    ends
}

/// How a SOCKS run ended.
#[derive(Debug, PartialEq)]
enum SocksEnd {
    /// Input ran out first.
    NeedMore,
    /// The tunnel opened once `at` bytes were consumed.
    Done { at: usize, bound: String },
    /// An error in the piece ending at `piece_end`.
    Failed { error: SocksError, piece_end: usize },
}

/// A SOCKS run: each `Send` with the offset after which it came, and the end.
#[derive(Debug)]
struct SocksRun {
    sends: Vec<(usize, Vec<u8>)>,
    end: SocksEnd,
    method: Option<&'static str>,
}

fn socks_check(flags: u8, answer: &[u8], pieces: &[usize], bytewise: &[usize]) {
    let version = match flags & 3 {
        0 => SocksVersion::V4,
        1 => SocksVersion::V4a,
        _ => SocksVersion::V5,
    };
    let auth = (flags & 4 != 0).then_some(SocksAuth {
        user: "fuzz-user",
        password: SECRET,
    });
    let target = if flags & 8 != 0 {
        SocksTarget::Name("upload.example", 443)
    } else if flags & 16 != 0 {
        SocksTarget::Addr(SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 443)))
    } else {
        SocksTarget::Addr(SocketAddr::from(([192, 0, 2, 1], 443)))
    };
    let make = || SocksHandshake::new(version, target, auth);
    let reference = match make() {
        Ok(mut hs) => run_socks(&mut hs, answer, bytewise),
        Err(e) => {
            // Only SOCKS4 with a name or IPv6, and SOCKS4a with IPv6, are refused here.
            assert_eq!(e.category(), SocksErrorCategory::Input, "{e}");
            assert!(version != SocksVersion::V5, "{e}");
            return;
        }
    };
    let Ok(mut hs) = make() else {
        unreachable!("the same inputs were accepted above")
    };
    let pieced = run_socks(&mut hs, answer, pieces);

    match &pieced.end {
        SocksEnd::Failed {
            error: SocksError::EarlyBytes { count, .. },
            piece_end,
        } => {
            // The piece ran past a reply the client had to answer: the byte-wise run answered it
            // right there, and agreed on everything before.
            let at = piece_end - count;
            assert!(
                reference.sends.iter().any(|(pos, _)| *pos == at),
                "early bytes at {at}, but no send there: {reference:?} vs {pieced:?}"
            );
            let before: Vec<_> = reference
                .sends
                .iter()
                .filter(|(pos, _)| *pos < at)
                .cloned()
                .collect();
            assert_eq!(before, pieced.sends);
        }
        _ => {
            assert_eq!(reference.sends, pieced.sends);
            assert_eq!(reference.method, pieced.method);
            match (&reference.end, &pieced.end) {
                (SocksEnd::Failed { error: a, .. }, SocksEnd::Failed { error: b, .. }) => {
                    assert_eq!(a, b)
                }
                (a, b) => assert_eq!(a, b),
            }
        }
    }
}

fn run_socks(hs: &mut SocksHandshake, answer: &[u8], ends: &[usize]) -> SocksRun {
    let first = hs.start();
    assert!(!first.is_empty());
    assert!(hs.start().is_empty(), "start twice gives nothing");
    let mut sends = Vec::new();
    let mut start = 0;
    let mut end = SocksEnd::NeedMore;
    for &piece_end in ends {
        let piece = &answer[start..piece_end];
        start = piece_end;
        let step = hs.receive(piece);
        assert!(hs.buffered_len() <= 4 + 1 + 255 + 2);
        match step {
            Ok(SocksStep::NeedMore) => {}
            Ok(SocksStep::Send(bytes)) => {
                assert!(!bytes.is_empty());
                sends.push((piece_end, bytes));
            }
            Ok(SocksStep::Done { bound, leftover }) => {
                assert!(!bound.is_empty());
                let at = piece_end - leftover.len();
                assert_eq!(leftover, &answer[at..piece_end]);
                assert!(matches!(hs.receive(b"x"), Err(SocksError::Misuse(_))));
                assert!(matches!(hs.closed(), SocksError::Misuse(_)));
                end = SocksEnd::Done { at, bound };
                break;
            }
            Err(error) => {
                assert_eq!(hs.receive(b"x").as_ref(), Err(&error), "errors are sticky");
                assert_eq!(hs.closed(), error);
                check_socks_error(&error);
                end = SocksEnd::Failed { error, piece_end };
                break;
            }
        }
    }
    if end == SocksEnd::NeedMore {
        let error = hs.closed();
        assert!(matches!(error, SocksError::Closed { .. }), "{error:?}");
        check_socks_error(&error);
    }
    assert!(!format!("{hs:?}").contains(SECRET));
    SocksRun {
        sends,
        end,
        method: hs.auth_method().map(|m| m.as_str()),
    }
}

fn check_socks_error(error: &SocksError) {
    let sentence = error.to_string();
    assert!(
        !sentence.is_empty() && !sentence.contains(SECRET),
        "{sentence}"
    );
    assert_ne!(error.category(), SocksErrorCategory::Input, "{error:?}");
    assert_eq!(
        error.reply_code().is_some(),
        error.category() == SocksErrorCategory::Refused
    );
}

/// How a CONNECT answer run ended.
#[derive(Debug, PartialEq)]
enum ConnectEnd {
    NeedMore,
    /// An outcome; for a 2xx, where its head ended (a refusal's body is not looked at, so
    /// where its head ended is not known).
    Outcome {
        at: Option<usize>,
        outcome: ConnectOutcome,
    },
    /// A 2xx head ending at `at`, followed by bytes in its piece.
    BodyAfter {
        at: usize,
        status: u16,
    },
    Failed(ConnectError),
}

fn connect_check(answer: &[u8], pieces: &[usize], bytewise: &[usize]) {
    let reference = run_connect(answer, bytewise);
    let pieced = run_connect(answer, pieces);
    match (&reference, &pieced) {
        (
            ConnectEnd::Outcome {
                at,
                outcome: ConnectOutcome::Established { status, .. },
            },
            ConnectEnd::BodyAfter {
                at: body_at,
                status: body_status,
            },
        ) => assert_eq!((*at, status), (Some(*body_at), body_status)),
        (
            ConnectEnd::Failed(ConnectError::NotHttp { start: a }),
            ConnectEnd::Failed(ConnectError::NotHttp { start: b }),
        ) => assert!(b.starts_with(a.as_str()), "{a:?} vs {b:?}"),
        (a, b) => assert_eq!(a, b),
    }
    assert!(
        !matches!(reference, ConnectEnd::BodyAfter { .. }),
        "one byte at a time, nothing follows a head in its piece"
    );
}

fn run_connect(answer: &[u8], ends: &[usize]) -> ConnectEnd {
    let mut decoder = ConnectResponse::new();
    let mut start = 0;
    for &piece_end in ends {
        let piece = &answer[start..piece_end];
        start = piece_end;
        let result = decoder.receive(piece);
        assert!(decoder.buffered_len() <= MAX_HEAD_BYTES + 1);
        match result {
            Ok(None) => {}
            Ok(Some(outcome)) => {
                assert!(matches!(
                    decoder.receive(b"x"),
                    Err(ConnectError::Misuse(_))
                ));
                assert!(matches!(decoder.closed(), ConnectError::Misuse(_)));
                match &outcome {
                    ConnectOutcome::Established { status, head_bytes } => {
                        assert!((200..300).contains(status));
                        assert_eq!(*head_bytes, piece_end, "nothing follows the 2xx head");
                    }
                    ConnectOutcome::Refused {
                        status,
                        reason,
                        realm,
                        schemes,
                    } => {
                        assert!(*status >= 300 && *status <= 999);
                        let printable = |s: &str| {
                            s.len() <= 100 && s.bytes().all(|b| (b' '..=b'~').contains(&b))
                        };
                        assert!(printable(reason), "{reason:?}");
                        assert!(realm.as_deref().is_none_or(printable), "{realm:?}");
                        assert!(schemes.len() <= 16 && schemes.iter().all(|s| printable(s)));
                        if *status != 407 {
                            assert!(realm.is_none() && schemes.is_empty());
                        }
                    }
                }
                let at = match outcome {
                    ConnectOutcome::Established { .. } => Some(piece_end),
                    ConnectOutcome::Refused { .. } => None,
                };
                return ConnectEnd::Outcome { at, outcome };
            }
            Err(error) => {
                assert_eq!(decoder.receive(b"x").as_ref(), Err(&error), "sticky");
                assert_eq!(decoder.closed(), error);
                assert_ne!(error.category(), ConnectErrorCategory::Input);
                assert_ne!(error.category(), ConnectErrorCategory::Closed);
                assert!(!error.to_string().is_empty());
                if let ConnectError::BodyAfterEstablished { status, bytes } = error {
                    assert!(
                        bytes > 0 && bytes <= piece.len(),
                        "{bytes} of {}",
                        piece.len()
                    );
                    return ConnectEnd::BodyAfter {
                        at: piece_end - bytes,
                        status,
                    };
                }
                return ConnectEnd::Failed(error);
            }
        }
    }
    let error = decoder.closed();
    assert_eq!(
        error,
        ConnectError::Closed {
            received: answer.len()
        }
    );
    assert_eq!(error.category(), ConnectErrorCategory::Closed);
    ConnectEnd::NeedMore
}

fn inputs_check(flags: u8, answer: &[u8]) {
    let mut parts = answer
        .split(|&b| b == 0xFF)
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let host = parts.next().unwrap_or_default();
    let user = parts.next().unwrap_or_default();
    let password = parts.next().unwrap_or_default();
    let agent = parts.next().unwrap_or_default();
    let port = u16::from(flags) * 257;
    let credentials = (flags & 32 != 0).then_some((user.as_str(), password.as_str()));

    match connect_request(&host, port, credentials, &agent) {
        Ok(head) => check_connect_head(&head, &host, port, credentials, &agent),
        Err(e) => {
            assert_eq!(e.category(), ConnectErrorCategory::Input, "{e:?}");
            assert!(!e.to_string().is_empty());
        }
    }

    let version = match flags & 3 {
        0 => SocksVersion::V4,
        1 => SocksVersion::V4a,
        _ => SocksVersion::V5,
    };
    let auth = (flags & 4 != 0).then_some(SocksAuth {
        user: &user,
        password: &password,
    });
    match SocksHandshake::new(version, SocksTarget::Name(&host, port), auth) {
        Ok(mut hs) => {
            let first = hs.start();
            match version {
                SocksVersion::V5 => {
                    let greeting: &[u8] = if auth.is_some() {
                        &[5, 2, 0, 2]
                    } else {
                        &[5, 1, 0]
                    };
                    assert_eq!(first, greeting);
                    assert!((1..=255).contains(&host.len()));
                }
                SocksVersion::V4a => {
                    let mut tail = host.as_bytes().to_vec();
                    tail.push(0);
                    assert!(first.starts_with(&[4, 1]) && first.ends_with(&tail));
                    assert_eq!(first.get(4..8), Some(&[0, 0, 0, 1][..]));
                }
                SocksVersion::V4 => panic!("SOCKS4 accepted a host name"),
            }
        }
        Err(e) => {
            assert_eq!(e.category(), SocksErrorCategory::Input, "{e:?}");
            assert!(!e.to_string().is_empty());
        }
    }
}

/// A `CONNECT` head the encoder accepted parses back to what it was given.
fn check_connect_head(
    head: &[u8],
    host: &str,
    port: u16,
    credentials: Option<(&str, &str)>,
    agent: &str,
) {
    let mut headers = [httparse::EMPTY_HEADER; 8];
    let mut req = httparse::Request::new(&mut headers);
    let parsed = req.parse(head);
    assert_eq!(
        parsed,
        Ok(httparse::Status::Complete(head.len())),
        "{}",
        String::from_utf8_lossy(head)
    );
    assert_eq!(req.method, Some("CONNECT"));
    let authority = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    assert_eq!(req.path, Some(authority.as_str()));
    let field = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.to_vec())
    };
    assert_eq!(field("host"), Some(authority.into_bytes()));
    match credentials {
        Some((user, password)) => {
            let value = field("proxy-authorization").unwrap_or_default();
            let expected = basic_credentials(user, password)
                .ok()
                .map(String::into_bytes);
            assert_eq!(Some(value.clone()), expected);
            let decoded = value
                .strip_prefix(b"Basic ")
                .and_then(decode_base64)
                .unwrap_or_default();
            assert_eq!(decoded, format!("{user}:{password}").into_bytes());
        }
        None => assert_eq!(field("proxy-authorization"), None),
    }
    // httparse trims a value's surrounding whitespace.
    let agent = agent.trim_matches([' ', '\t']);
    if agent.is_empty() {
        assert!(field("user-agent").is_none_or(|v| v.is_empty()));
    } else {
        assert_eq!(field("user-agent"), Some(agent.as_bytes().to_vec()));
    }
}

/// Standard Base64 with padding, decoded (an independent check of the encoder).
fn decode_base64(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() % 4 != 0 {
        return None;
    }
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::new();
    for quad in text.chunks(4) {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 {
            return None;
        }
        let mut v = 0u32;
        for &c in &quad[..4 - pad] {
            v = (v << 6) | value(c)?;
        }
        v <<= 6 * pad as u32;
        let bytes = v.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed seed corpus of the fuzz target passes its checks.
    #[test]
    fn seed_corpus() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/proxy_replies");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            proxy_replies(&std::fs::read(&path).unwrap());
            seen += 1;
        }
        assert!(seen >= 10, "{seen} seeds in {}", dir.display());
    }

    /// Short and degenerate inputs, every flag combination.
    #[test]
    fn every_flag_on_small_inputs() {
        for flags in 0..=255u8 {
            proxy_replies(&[flags]);
            proxy_replies(&[flags, 0]);
            proxy_replies(&[flags, 0x0f, 1]);
            proxy_replies(&[flags, 1, 0, 5, 0, 5, 0, 0, 1, 1, 2, 3, 4, 0, 80]);
            proxy_replies(&[flags, 0, 0xff, 0xff, 0xff]);
        }
    }

    #[test]
    fn piece_ends_cover_the_input() {
        assert_eq!(piece_ends(5, &[]), [5]);
        assert_eq!(piece_ends(0, &[]), [0]);
        assert_eq!(piece_ends(5, &[2]), [2, 4, 5]);
        assert_eq!(piece_ends(5, &[0, 3]), [1, 4, 5]);
        assert_eq!(piece_ends(0, &[3]), Vec::<usize>::new());
    }

    #[test]
    fn base64_decoder_of_the_checks() {
        assert_eq!(decode_base64(b"Zm9vYmE="), Some(b"fooba".to_vec()));
        assert_eq!(decode_base64(b"Zg=="), Some(b"f".to_vec()));
        assert_eq!(decode_base64(b"Zg="), None);
        assert_eq!(decode_base64(b"Z==="), None);
    }
}
