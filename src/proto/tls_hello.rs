//! The cipher suite a TLS server chose, read from the first bytes of its handshake stream (its
//! `ServerHello`), for QUIC connections.
//!
//! # Why parse it here
//!
//! Over TCP, rustls tells the client which cipher suite was negotiated. Over QUIC the TLS
//! session sits inside quinn, which exposes only the ALPN and the server name of it
//! (`quinn::crypto::rustls::HandshakeData`), not the suite. The suite is, however, on the wire
//! in the clear: QUIC carries the TLS handshake in `CRYPTO` frames, and the server's first
//! handshake message is its `ServerHello` (RFC 8446 §4.1.3), which names the suite at a fixed
//! place after the random and the (in QUIC always empty) session id echo. The transport hands
//! the first handshake bytes quinn receives to [`ServerHelloSuite`] on their way to rustls, so
//! the suite reported is exactly the one the server sent and rustls accepted (the handshake
//! fails otherwise). A `HelloRetryRequest` has the same layout and names the same suite as the
//! `ServerHello` that follows it (RFC 8446 §4.1.4).
//!
//! Bytes in, the suite out; the bytes may arrive split anywhere. Anything that is not a
//! `ServerHello` gives up quietly: the suite is then reported empty, never guessed.

/// TLS handshake message type of `ServerHello` (and `HelloRetryRequest`).
const SERVER_HELLO: u8 = 2;
/// msg_type (1) + length (3) + legacy_version (2) + random (32): where the session id length is.
const SESSION_ID_AT: usize = 38;
/// The longest prefix ever needed: up to the suite after a 32-byte session id.
const MAX_PREFIX: usize = SESSION_ID_AT + 1 + 32 + 2;

/// What the prefix read so far says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scan {
    /// Not enough bytes yet.
    NeedMore,
    /// The server chose this cipher suite (its TLS code point).
    Suite(u16),
    /// The bytes are not a `ServerHello`.
    NotServerHello,
}

/// Read the cipher suite from the start of a server's handshake stream.
pub(crate) fn scan(prefix: &[u8]) -> Scan {
    let Some(&kind) = prefix.first() else {
        return Scan::NeedMore;
    };
    if kind != SERVER_HELLO {
        return Scan::NotServerHello;
    }
    let Some(&session_id_len) = prefix.get(SESSION_ID_AT) else {
        return Scan::NeedMore;
    };
    if session_id_len > 32 {
        return Scan::NotServerHello;
    }
    let at = SESSION_ID_AT + 1 + usize::from(session_id_len);
    match prefix.get(at..at + 2) {
        Some(suite) => Scan::Suite(u16::from_be_bytes([suite[0], suite[1]])),
        None => Scan::NeedMore,
    }
}

/// Collects the first bytes of a server's handshake stream, as they arrive, until the suite is
/// known (or known not to be there). Holds at most 73 bytes.
#[derive(Debug, Default)]
pub(crate) struct ServerHelloSuite {
    prefix: Vec<u8>,
    done: Option<Option<u16>>,
}

impl ServerHelloSuite {
    /// The next bytes of the handshake stream; the suite once it is known.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Option<u16> {
        if let Some(done) = self.done {
            return done;
        }
        let room = MAX_PREFIX - self.prefix.len();
        self.prefix
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
        match scan(&self.prefix) {
            Scan::NeedMore if self.prefix.len() < MAX_PREFIX => return None,
            Scan::Suite(suite) => self.done = Some(Some(suite)),
            Scan::NeedMore | Scan::NotServerHello => self.done = Some(None),
        }
        self.prefix = Vec::new();
        self.done.flatten()
    }

    /// The suite has been read, or it never will be: the bytes need not be shown any more.
    pub(crate) fn is_done(&self) -> bool {
        self.done.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ServerHello choosing `suite`, with a session id of `sid` bytes and one extension.
    fn server_hello(suite: u16, sid: u8) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[0xAB; 32]);
        body.push(sid);
        body.extend(std::iter::repeat_n(0x55, usize::from(sid)));
        body.extend_from_slice(&suite.to_be_bytes());
        body.push(0); // legacy_compression_method
        body.extend_from_slice(&[0x00, 0x06, 0x00, 0x2b, 0x00, 0x02, 0x03, 0x04]); // supported_versions
        let mut msg = vec![SERVER_HELLO];
        msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend_from_slice(&body);
        msg
    }

    #[test]
    fn reads_the_suite_with_and_without_a_session_id() {
        assert_eq!(scan(&server_hello(0x1301, 0)), Scan::Suite(0x1301));
        assert_eq!(scan(&server_hello(0x1303, 32)), Scan::Suite(0x1303));
    }

    #[test]
    fn the_same_suite_whatever_the_split() {
        for sid in [0, 7, 32] {
            let hello = server_hello(0x1302, sid);
            for cut in 0..hello.len() {
                let mut s = ServerHelloSuite::default();
                let first = s.push(&hello[..cut]);
                let second = s.push(&hello[cut..]);
                assert_eq!(first.or(second), Some(0x1302), "sid {sid} cut {cut}");
                assert!(s.is_done());
            }
            // One byte at a time.
            let mut s = ServerHelloSuite::default();
            let got = hello.iter().find_map(|b| s.push(std::slice::from_ref(b)));
            assert_eq!(got, Some(0x1302));
        }
    }

    #[test]
    fn other_messages_and_garbage_give_no_suite_and_stop_collecting() {
        let mut s = ServerHelloSuite::default();
        assert_eq!(s.push(&[1, 0, 0, 10]), None); // a ClientHello
        assert!(s.is_done());
        assert_eq!(s.push(&server_hello(0x1301, 0)), None);

        let mut bad = server_hello(0x1301, 0);
        bad[SESSION_ID_AT] = 33; // no session id is that long
        assert_eq!(scan(&bad), Scan::NotServerHello);

        // A stream that never gets long enough keeps asking; a long one that is cut off is
        // never mistaken for a suite.
        assert_eq!(scan(&[SERVER_HELLO, 0, 0]), Scan::NeedMore);
        assert_eq!(scan(&[]), Scan::NeedMore);
        let mut s = ServerHelloSuite::default();
        let mut long = server_hello(0x1301, 32);
        long.truncate(SESSION_ID_AT + 1 + 32 + 1);
        assert_eq!(s.push(&long), None);
        assert!(!s.is_done());
        assert_eq!(s.push(&[0x01]), Some(0x1301));
    }

    #[test]
    fn never_holds_more_than_the_prefix() {
        let mut s = ServerHelloSuite::default();
        let mut hello = server_hello(0x1301, 32);
        hello.truncate(SESSION_ID_AT + 1);
        assert_eq!(s.push(&hello), None);
        assert!(s.prefix.len() <= MAX_PREFIX);
        assert_eq!(s.push(&[0u8; 1000]), Some(0)); // whatever follows at that place
        assert!(s.prefix.is_empty());
    }
}
