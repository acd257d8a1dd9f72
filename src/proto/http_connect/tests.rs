use super::*;

fn decode(bytes: &[u8]) -> Result<Option<ConnectOutcome>, ConnectError> {
    ConnectResponse::new().receive(bytes)
}

/// The same outcome but for how many bytes `NotHttp` quotes (which depends on the split).
fn same(
    a: &Result<Option<ConnectOutcome>, ConnectError>,
    b: &Result<Option<ConnectOutcome>, ConnectError>,
) -> bool {
    match (a, b) {
        (Err(ConnectError::NotHttp { start: a }), Err(ConnectError::NotHttp { start: b })) => {
            a.starts_with(b.as_str()) || b.starts_with(a.as_str())
        }
        _ => a == b,
    }
}

/// The outcome of `bytes` fed at once, one byte at a time, and in two pieces at every split:
/// all the same (or the test fails), returned once.
fn decode_every_way(bytes: &[u8]) -> Result<Option<ConnectOutcome>, ConnectError> {
    let whole = decode(bytes);
    let mut d = ConnectResponse::new();
    let mut bytewise = Ok(None);
    for b in bytes {
        bytewise = d.receive(std::slice::from_ref(b));
        if !matches!(bytewise, Ok(None)) {
            break;
        }
    }
    assert!(
        same(&whole, &bytewise),
        "one byte at a time: {whole:?} {bytewise:?}"
    );
    for split in 0..=bytes.len() {
        let mut d = ConnectResponse::new();
        let mut got = d.receive(&bytes[..split]);
        if matches!(got, Ok(None)) {
            got = d.receive(&bytes[split..]);
        }
        assert!(same(&whole, &got), "split at {split}: {whole:?} {got:?}");
    }
    whole
}

fn refused(bytes: &[u8]) -> (u16, String, Option<String>, Vec<String>) {
    match decode_every_way(bytes) {
        Ok(Some(ConnectOutcome::Refused {
            status,
            reason,
            realm,
            schemes,
        })) => (status, reason, realm, schemes),
        other => panic!("{other:?}"),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn base64_rfc4648_vectors() {
    for (input, output) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(input.as_bytes()), output);
    }
    // Every byte value, against a straightforward bit-by-bit encoding.
    let all: Vec<u8> = (0..=255).collect();
    let mut bits = String::new();
    for b in &all {
        bits.push_str(&format!("{b:08b}"));
    }
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut expected: String = bits
        .as_bytes()
        .chunks(6)
        .map(|c| {
            let mut v = 0;
            for (i, bit) in c.iter().enumerate() {
                v |= usize::from(*bit == b'1') << (5 - i);
            }
            alphabet.as_bytes()[v] as char
        })
        .collect();
    while expected.len() % 4 != 0 {
        expected.push('=');
    }
    assert_eq!(base64(&all), expected);
}

#[test]
fn basic_credentials_rfc7617_examples() {
    assert_eq!(
        basic_credentials("Aladdin", "open sesame").unwrap(),
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    );
    // RFC 7617 §2.1: UTF-8.
    assert_eq!(
        basic_credentials("test", "123\u{a3}").unwrap(),
        "Basic dGVzdDoxMjPCow=="
    );
    // A password may contain ':'; empty ones are allowed.
    assert_eq!(basic_credentials("a", "b:c").unwrap(), "Basic YTpiOmM=");
    assert_eq!(basic_credentials("", "").unwrap(), "Basic Og==");
}

#[test]
fn basic_credentials_refuse_what_basic_cannot_carry() {
    let e = basic_credentials("al:ice", "pw").unwrap_err();
    assert_eq!(e, ConnectError::UserColon);
    assert_eq!(
        e.to_string(),
        "the proxy user name contains ':', which Basic authentication cannot carry (RFC 7617)"
    );
    assert_eq!(e.category(), ConnectErrorCategory::Input);
    for (user, password, which) in [
        ("al\rice", "pw", "user name"),
        ("alice", "p\nw", "password"),
        ("alice", "p\0w", "password"),
        ("alice", "p\u{7f}w", "password"),
        ("alice", "p\u{85}w", "password"),
    ] {
        let e = basic_credentials(user, password).unwrap_err();
        assert_eq!(e, ConnectError::CredentialControl { which });
        assert_eq!(
            e.to_string(),
            format!(
                "the proxy {which} contains a control character, which Basic authentication \
                 forbids (RFC 7617)"
            )
        );
        assert!(!e.to_string().contains("pw"));
    }
}

#[test]
fn connect_request_heads() {
    assert_eq!(
        connect_request("example.com", 443, None, "uploadfile/0.1").unwrap(),
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\
          User-Agent: uploadfile/0.1\r\n\r\n"
    );
    assert_eq!(
        connect_request("example.com", 8443, Some(("Aladdin", "open sesame")), "").unwrap(),
        b"CONNECT example.com:8443 HTTP/1.1\r\nHost: example.com:8443\r\n\
          Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
    );
    for host in ["::1", "[::1]"] {
        assert_eq!(
            connect_request(host, 443, None, "ua").unwrap(),
            b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\nUser-Agent: ua\r\n\r\n",
            "{host}"
        );
    }
    assert!(connect_request("192.0.2.1", 1, None, "")
        .unwrap()
        .starts_with(b"CONNECT 192.0.2.1:1 HTTP/1.1\r\n"));
}

#[test]
fn connect_request_refuses_bad_input() {
    let cases = [
        (
            "",
            None,
            "ua",
            ConnectError::EmptyHost,
            "the CONNECT target's host is empty",
        ),
        (
            "a\rb",
            None,
            "ua",
            ConnectError::HostByte { byte: b'\r' },
            "the CONNECT target's host contains the byte 0x0d, which cannot go in a request line",
        ),
        (
            "a\nb",
            None,
            "ua",
            ConnectError::HostByte { byte: b'\n' },
            "the CONNECT target's host contains the byte 0x0a, which cannot go in a request line",
        ),
        (
            "a\0b",
            None,
            "ua",
            ConnectError::HostByte { byte: 0 },
            "the CONNECT target's host contains the byte 0x00, which cannot go in a request line",
        ),
        (
            "a b",
            None,
            "ua",
            ConnectError::HostByte { byte: b' ' },
            "the CONNECT target's host contains the byte 0x20, which cannot go in a request line",
        ),
        (
            "a\tb",
            None,
            "ua",
            ConnectError::HostByte { byte: b'\t' },
            "the CONNECT target's host contains the byte 0x09, which cannot go in a request line",
        ),
        (
            "[::1",
            None,
            "ua",
            ConnectError::HostBrackets,
            "the CONNECT target's host starts with '[' but is not a bracketed IPv6 address",
        ),
        (
            "[]",
            None,
            "ua",
            ConnectError::HostBrackets,
            "the CONNECT target's host starts with '[' but is not a bracketed IPv6 address",
        ),
        (
            "example.com",
            Some(("a:b", "pw")),
            "ua",
            ConnectError::UserColon,
            "the proxy user name contains ':', which Basic authentication cannot carry (RFC 7617)",
        ),
        (
            "example.com",
            None,
            "ua\r\nX-Injected: 1",
            ConnectError::UserAgentByte { byte: b'\r' },
            "the User-Agent contains the byte 0x0d, which cannot go in a header",
        ),
    ];
    for (host, credentials, ua, error, sentence) in cases {
        let e = connect_request(host, 443, credentials, ua).unwrap_err();
        assert_eq!(e, error);
        assert_eq!(e.to_string(), sentence);
        assert_eq!(e.category(), ConnectErrorCategory::Input);
    }
}

#[test]
fn established_at_once_byte_by_byte_and_at_every_split() {
    for (answer, status) in [
        (&b"HTTP/1.1 200 Connection established\r\n\r\n"[..], 200),
        (
            b"HTTP/1.0 200 Connection established\r\nProxy-Agent: x\r\n\r\n",
            200,
        ),
        (b"HTTP/1.1 204 No Content\n\n", 204),
        (b"HTTP/1.1 299 \r\n\r\n", 299),
        (b"HTTP/1.1 200\r\nVia: 1.1 squid\r\n folded\r\n\r\n", 200),
    ] {
        assert_eq!(
            decode_every_way(answer),
            Ok(Some(ConnectOutcome::Established {
                status,
                head_bytes: answer.len()
            })),
            "{}",
            String::from_utf8_lossy(answer)
        );
    }
}

#[test]
fn interim_answers_are_skipped_and_counted() {
    let answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: y\r\n\r\n\
                   HTTP/1.1 200 OK\r\n\r\n";
    assert_eq!(
        decode_every_way(answer),
        Ok(Some(ConnectOutcome::Established {
            status: 200,
            head_bytes: answer.len()
        }))
    );
    let e =
        decode_every_way(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n").unwrap_err();
    assert_eq!(e, ConnectError::SwitchingProtocols);
    assert_eq!(
        e.to_string(),
        "the proxy answered CONNECT with 101 Switching Protocols, which we did not ask for"
    );
    assert_eq!(e.category(), ConnectErrorCategory::Protocol);
    // Interim answers then a refusal, and interim answers then garbage.
    assert_eq!(
        refused(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 403 Forbidden\r\n\r\n").0,
        403
    );
    assert!(matches!(
        decode_every_way(b"HTTP/1.1 100 Continue\r\n\r\nSSH-2.0"),
        Err(ConnectError::NotHttp { .. })
    ));
}

#[test]
fn a_body_after_a_2xx_head() {
    // Content-Length and Transfer-Encoding in a 2xx are ignored (RFC 9110 §9.3.6) ...
    for answer in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        assert_eq!(
            decode_every_way(answer),
            Ok(Some(ConnectOutcome::Established {
                status: 200,
                head_bytes: answer.len()
            }))
        );
    }
    // ... but bytes in the same read as the head are a body the proxy should not have sent.
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    let e = decode(answer).unwrap_err();
    assert_eq!(
        e,
        ConnectError::BodyAfterEstablished {
            status: 200,
            bytes: 5
        }
    );
    assert_eq!(
        e.to_string(),
        "the proxy sent 5 bytes after its 200 answer to CONNECT (a CONNECT response has no body)"
    );
    assert_eq!(e.category(), ConnectErrorCategory::Protocol);
    let e = decode(b"HTTP/1.1 201 Created\r\n\r\nx").unwrap_err();
    assert_eq!(
        e.to_string(),
        "the proxy sent 1 byte after its 201 answer to CONNECT (a CONNECT response has no body)"
    );
    // The count covers bytes beyond the head-size budget too.
    let mut big = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    big.extend(vec![b'x'; 2 * MAX_HEAD_BYTES]);
    assert_eq!(
        decode(&big),
        Err(ConnectError::BodyAfterEstablished {
            status: 200,
            bytes: 2 * MAX_HEAD_BYTES
        })
    );
}

#[test]
fn refusals_with_their_reason() {
    assert_eq!(
        refused(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\n\r\nno!"),
        (403, "Forbidden".into(), None, vec![])
    );
    assert_eq!(
        refused(b"HTTP/1.1 502 Bad Gateway\r\n\r\n"),
        (502, "Bad Gateway".into(), None, vec![])
    );
    assert_eq!(refused(b"HTTP/1.0 503\r\n\r\n").1, "");
    assert_eq!(refused(b"HTTP/1.1 999 Odd\r\n\r\n").0, 999);
    // Proxy-Authenticate means nothing outside a 407.
    assert_eq!(
        refused(b"HTTP/1.1 403 Forbidden\r\nProxy-Authenticate: Basic realm=\"r\"\r\n\r\n"),
        (403, "Forbidden".into(), None, vec![])
    );
}

#[test]
fn reasons_are_sanitized_and_capped() {
    // Non-ASCII (obs-text) and tabs; httparse refuses other control bytes in a reason.
    let (_, reason, _, _) = refused("HTTP/1.1 403 Interdit \u{2717}\tici\r\n\r\n".as_bytes());
    assert_eq!(reason, "Interdit ? ici");
    let long = format!("HTTP/1.1 403 {}\r\n\r\n", "R".repeat(500));
    let (_, reason, _, _) = refused(long.as_bytes());
    assert_eq!(reason, "R".repeat(100));
    assert!(matches!(
        decode(b"HTTP/1.1 403 Bad\x01Thing\r\n\r\n"),
        Err(ConnectError::MalformedHead { .. })
    ));
}

#[test]
fn realms_as_proxies_send_them() {
    let cases: &[(&str, Option<&str>, &[&str])] = &[
        // Squid.
        (
            "Proxy-Authenticate: Basic realm=\"Squid proxy-caching web server\"\r\n",
            Some("Squid proxy-caching web server"),
            &["Basic"],
        ),
        // Lower case, token value.
        (
            "proxy-authenticate: basic realm=corp\r\n",
            Some("corp"),
            &["basic"],
        ),
        // Several challenges in one field: the Basic realm wins over the first realm.
        (
            "Proxy-Authenticate: Digest realm=\"dig\", qop=\"auth\", nonce=\"n,1\", \
             Basic realm=\"bas\"\r\n",
            Some("bas"),
            &["Digest", "Basic"],
        ),
        // Several fields, token68 and bare schemes.
        (
            "Proxy-Authenticate: Negotiate\r\nProxy-Authenticate: NTLM\r\n\
             Proxy-Authenticate: Basic realm=\"corp\", charset=\"UTF-8\"\r\n",
            Some("corp"),
            &["Negotiate", "NTLM", "Basic"],
        ),
        (
            "Proxy-Authenticate: Negotiate YIIB+w==, Basic realm=x\r\n",
            Some("x"),
            &["Negotiate", "Basic"],
        ),
        (
            "Proxy-Authenticate: Negotiate abc=\r\n",
            None,
            &["Negotiate"],
        ),
        // No Basic: any scheme's realm.
        (
            "Proxy-Authenticate: Digest realm=\"only digest\", nonce=\"abc\"\r\n",
            Some("only digest"),
            &["Digest"],
        ),
        // Basic without a realm after a Digest with one.
        (
            "Proxy-Authenticate: Digest realm=\"d\"\r\nProxy-Authenticate: Basic\r\n",
            Some("d"),
            &["Digest", "Basic"],
        ),
        // Spaces around '=', escapes, the same scheme twice, an unterminated quote.
        (
            "Proxy-Authenticate: Basic realm = \"a \\\"q\\\" b\", BASIC realm=\"second\"\r\n",
            Some("a \"q\" b"),
            &["Basic"],
        ),
        (
            "Proxy-Authenticate: Basic realm=\"never ends\r\n",
            Some("never ends"),
            &["Basic"],
        ),
        // No field at all.
        ("", None, &[]),
        // Garbage.
        ("Proxy-Authenticate: ,,= \"x\" =,\r\n", None, &[]),
    ];
    for (fields, realm, schemes) in cases {
        let answer = format!(
            "HTTP/1.1 407 Proxy Authentication Required\r\n{fields}Content-Length: 0\r\n\r\n"
        );
        let got = refused(answer.as_bytes());
        assert_eq!(
            got,
            (
                407,
                "Proxy Authentication Required".to_string(),
                realm.map(str::to_string),
                strings(schemes)
            ),
            "{fields}"
        );
    }
}

#[test]
fn realms_and_schemes_are_sanitized_and_capped() {
    let answer = format!(
        "HTTP/1.1 407 x\r\nProxy-Authenticate: Basic realm=\"{}\u{e9}\t{}\"\r\n\r\n",
        "r".repeat(98),
        "cut"
    );
    let (_, _, realm, _) = refused(answer.as_bytes());
    assert_eq!(realm.unwrap(), format!("{}? ", "r".repeat(98)));
    let many: Vec<String> = (0..40).map(|i| format!("S{i}")).collect();
    let answer = format!(
        "HTTP/1.1 407 x\r\nProxy-Authenticate: {}\r\n\r\n",
        many.join(", ")
    );
    let (_, _, _, schemes) = refused(answer.as_bytes());
    assert_eq!(schemes, many[..16].to_vec());
}

#[test]
fn not_http() {
    for (answer, quoted) in [
        (&b"SSH-2.0-OpenSSH_9.6\r\n"[..], "SSH-2.0-OpenSSH_"),
        (b"\x05\x00", "\\x05\\x00"),
        (
            b"\x15\x03\x03\x00\x02\x02\x28",
            "\\x15\\x03\\x03\\x00\\x02\\x02(",
        ),
        (b"HTTX", "HTTX"),
        (b"http/1.1 200 OK\r\n\r\n", "http/1.1 200 OK\\x0d"),
        (b"\"\\", "\\\"\\\\"),
    ] {
        let e = decode(answer).unwrap_err();
        assert_eq!(
            e,
            ConnectError::NotHttp {
                start: quoted.into()
            }
        );
        assert_eq!(
            e.to_string(),
            format!("the proxy's answer to CONNECT is not HTTP: it starts with \"{quoted}\"")
        );
        assert_eq!(e.category(), ConnectErrorCategory::Protocol);
    }
    // Decided on the first byte that cannot start "HTTP/".
    let mut d = ConnectResponse::new();
    assert_eq!(d.receive(b"HTT"), Ok(None));
    assert_eq!(
        d.receive(b"X"),
        Err(ConnectError::NotHttp {
            start: "HTTX".into()
        })
    );
}

#[test]
fn malformed_heads() {
    for (answer, reason) in [
        (
            &b"HTTP/1.1 2x0 OK\r\n"[..],
            "invalid status code or reason phrase",
        ),
        (b"HTTP/9.9 200 OK\r\n", "invalid HTTP version"),
        (
            b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            "invalid character in a header name",
        ),
        (
            b"HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n",
            "invalid character in a header value",
        ),
        (b"HTTP/1.1 099 Low\r\n\r\n", "status code below 100"),
    ] {
        let e = decode_every_way(answer).unwrap_err();
        assert_eq!(e, ConnectError::MalformedHead { reason });
        assert_eq!(
            e.to_string(),
            format!("the proxy's answer to CONNECT is malformed: {reason}")
        );
    }
    // A malformed status line fails at its end, not when the head would end.
    let mut d = ConnectResponse::new();
    assert_eq!(d.receive(b"HTTP/1.1 2x0 OK"), Ok(None));
    assert!(d.receive(b"\r\n").is_err());
}

#[test]
fn head_size_limit() {
    // Exactly the limit is accepted; one byte more is not, whatever the split.
    let make = |len: usize| {
        let start = b"HTTP/1.1 200 OK\r\nX: ";
        let end = b"\r\n\r\n";
        let mut v = start.to_vec();
        v.extend(vec![b'a'; len - start.len() - end.len()]);
        v.extend_from_slice(end);
        assert_eq!(v.len(), len);
        v
    };
    let ok = make(MAX_HEAD_BYTES);
    assert_eq!(
        decode(&ok),
        Ok(Some(ConnectOutcome::Established {
            status: 200,
            head_bytes: MAX_HEAD_BYTES
        }))
    );
    let too_big = make(MAX_HEAD_BYTES + 1);
    let e = decode(&too_big).unwrap_err();
    assert_eq!(
        e,
        ConnectError::HeadTooLarge {
            limit: MAX_HEAD_BYTES
        }
    );
    assert_eq!(
        e.to_string(),
        "the proxy's answer to CONNECT has no end of head within 65536 bytes"
    );
    let mut d = ConnectResponse::new();
    let mut result = Ok(None);
    for chunk in too_big.chunks(1000) {
        result = d.receive(chunk);
        assert!(d.buffered_len() <= MAX_HEAD_BYTES + 1);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(e));
    // An endless head fails without buffering more than the limit.
    let mut d = ConnectResponse::new();
    assert_eq!(d.receive(b"HTTP/1.1 200 OK\r\n"), Ok(None));
    let mut rounds = 0;
    loop {
        rounds += 1;
        match d.receive(&[b'x'; 4096]) {
            Ok(None) => assert!(rounds < 20),
            Err(ConnectError::HeadTooLarge { .. }) => break,
            other => panic!("{other:?}"),
        }
        assert!(d.buffered_len() <= MAX_HEAD_BYTES + 1);
    }
    // Interim heads count toward the same budget.
    let interim = b"HTTP/1.1 100 Continue\r\nX: yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\r\n\r\n";
    let mut endless = Vec::new();
    while endless.len() <= MAX_HEAD_BYTES {
        endless.extend_from_slice(interim);
    }
    assert_eq!(
        decode(&endless),
        Err(ConnectError::HeadTooLarge {
            limit: MAX_HEAD_BYTES
        })
    );
}

#[test]
fn header_count_limit() {
    let make = |n: usize| {
        let mut v = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..n {
            v.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        v.extend_from_slice(b"\r\n");
        v
    };
    assert!(matches!(
        decode(&make(MAX_HEADERS)),
        Ok(Some(ConnectOutcome::Established { .. }))
    ));
    let e = decode(&make(MAX_HEADERS + 1)).unwrap_err();
    assert_eq!(e, ConnectError::TooManyHeaders { limit: 128 });
    assert_eq!(
        e.to_string(),
        "the proxy's answer to CONNECT has more than 128 header fields"
    );
}

#[test]
fn closed_before_the_answer() {
    let mut d = ConnectResponse::new();
    let e = d.closed();
    assert_eq!(e, ConnectError::Closed { received: 0 });
    assert_eq!(
        e.to_string(),
        "the proxy closed the connection without answering CONNECT"
    );
    assert_eq!(e.category(), ConnectErrorCategory::Closed);
    assert_eq!(
        d.receive(b"HTTP/1.1 200 OK\r\n\r\n"),
        Err(e),
        "closed is final"
    );

    let mut d = ConnectResponse::new();
    assert_eq!(
        d.receive(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2"),
        Ok(None)
    );
    let e = d.closed();
    assert_eq!(
        e.to_string(),
        "the proxy closed the connection after 35 bytes of its answer to CONNECT, before the end \
         of its head"
    );
    let mut d = ConnectResponse::new();
    assert_eq!(d.receive(b"H"), Ok(None));
    assert_eq!(
        d.closed().to_string(),
        "the proxy closed the connection after 1 byte of its answer to CONNECT, before the end \
         of its head"
    );
}

#[test]
fn misuse_and_sticky_errors() {
    let mut d = ConnectResponse::new();
    assert!(matches!(
        d.receive(b"HTTP/1.1 200 OK\r\n\r\n"),
        Ok(Some(ConnectOutcome::Established { .. }))
    ));
    let e = d.receive(b"x").unwrap_err();
    assert_eq!(e, ConnectError::Misuse("bytes received after the answer"));
    assert_eq!(
        e.to_string(),
        "CONNECT decoder used out of order: bytes received after the answer"
    );
    assert_eq!(d.closed(), ConnectError::Misuse("closed after the answer"));

    let mut d = ConnectResponse::new();
    let e = d.receive(b"garbage").unwrap_err();
    assert_eq!(d.receive(b"HTTP/1.1 200 OK\r\n\r\n"), Err(e.clone()));
    assert_eq!(d.receive(b""), Err(e.clone()));
    assert_eq!(d.closed(), e);
    assert_eq!(d.buffered_len(), 0);
}

#[test]
fn empty_reads_change_nothing() {
    let mut d = ConnectResponse::default();
    assert_eq!(d.receive(b""), Ok(None));
    assert_eq!(d.receive(b"HTTP/1.1 200 OK\r\n"), Ok(None));
    assert_eq!(d.receive(b""), Ok(None));
    assert!(matches!(
        d.receive(b"\r\n"),
        Ok(Some(ConnectOutcome::Established { .. }))
    ));
}
