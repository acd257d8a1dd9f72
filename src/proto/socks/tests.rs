use super::*;

const V4_TARGET: &str = "192.0.2.1:443";
const SECRET: &str = "s3cret-pw";

fn addr(s: &str) -> SocksTarget<'static> {
    SocksTarget::Addr(s.parse().unwrap())
}

fn auth() -> Option<SocksAuth<'static>> {
    Some(SocksAuth {
        user: "alice",
        password: SECRET,
    })
}

/// A started SOCKS5 handshake and its greeting.
fn v5(target: SocksTarget<'_>, auth: Option<SocksAuth<'_>>) -> (SocksHandshake, Vec<u8>) {
    let mut hs = SocksHandshake::new(SocksVersion::V5, target, auth).unwrap();
    let greeting = hs.start();
    (hs, greeting)
}

/// The SOCKS5 CONNECT reply with an IPv4 bound address 10.0.0.1:8080.
const REPLY_V4: &[u8] = &[5, 0, 0, 1, 10, 0, 0, 1, 0x1f, 0x90];

/// A SOCKS5 handshake without credentials, past the method choice.
fn v5_connecting(target: SocksTarget<'_>) -> (SocksHandshake, Vec<u8>) {
    let (mut hs, _) = v5(target, None);
    let Ok(SocksStep::Send(connect)) = hs.receive(&[5, 0]) else {
        panic!("no CONNECT request")
    };
    (hs, connect)
}

fn err_of(result: Result<SocksStep, SocksError>) -> SocksError {
    result.expect_err("an error")
}

#[test]
fn greetings_offer_no_auth_and_credentials_when_given() {
    assert_eq!(v5(addr(V4_TARGET), None).1, [5, 1, 0]);
    assert_eq!(v5(addr(V4_TARGET), auth()).1, [5, 2, 0, 2]);
}

#[test]
fn socks5_without_auth_opens_the_tunnel() {
    let (mut hs, connect) = v5_connecting(addr(V4_TARGET));
    assert_eq!(connect, [5, 1, 0, 1, 192, 0, 2, 1, 0x01, 0xbb]);
    assert_eq!(hs.auth_method(), Some(SocksAuthMethod::None));
    assert_eq!(hs.auth_method().map(SocksAuthMethod::as_str), Some("none"));
    assert_eq!(
        hs.receive(REPLY_V4),
        Ok(SocksStep::Done {
            bound: "10.0.0.1:8080".into(),
            leftover: vec![]
        })
    );
}

#[test]
fn socks5_targets_ipv6_and_names() {
    let (_, connect) = v5_connecting(addr("[2001:db8::7]:8443"));
    let mut expected = vec![5, 1, 0, 4];
    expected.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
    expected.extend_from_slice(&8443u16.to_be_bytes());
    assert_eq!(connect, expected);

    let (_, connect) = v5_connecting(SocksTarget::Name("upload.example", 443));
    let mut expected = vec![5, 1, 0, 3, 14];
    expected.extend_from_slice(b"upload.example");
    expected.extend_from_slice(&[0x01, 0xbb]);
    assert_eq!(connect, expected);
}

#[test]
fn socks5_bound_addresses_of_each_type() {
    let mut ipv6 = vec![5, 0, 0, 4];
    ipv6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
    ipv6.extend_from_slice(&[0, 80]);
    let mut name = vec![5, 0, 0, 3, 11];
    name.extend_from_slice(b"proxy.local");
    name.extend_from_slice(&[0x04, 0x38]);
    let mut odd_name = vec![5, 0, 0, 3, 4];
    odd_name.extend_from_slice(b"a\x01\\\xff");
    odd_name.extend_from_slice(&[0, 1]);
    let empty_name = [5, 0, 0, 3, 0, 0, 2];
    for (reply, bound) in [
        (REPLY_V4.to_vec(), "10.0.0.1:8080"),
        (ipv6, "[2001:db8::1]:80"),
        (name, "proxy.local:1080"),
        (odd_name, "a\\x01\\\\\\xff:1"),
        (empty_name.to_vec(), ":2"),
    ] {
        let (mut hs, _) = v5_connecting(addr(V4_TARGET));
        assert_eq!(
            hs.receive(&reply),
            Ok(SocksStep::Done {
                bound: bound.into(),
                leftover: vec![]
            }),
            "{reply:?}"
        );
    }
}

#[test]
fn socks5_reply_split_anywhere_keeps_the_leftover() {
    let mut name_reply = vec![5, 0, 0, 3, 11];
    name_reply.extend_from_slice(b"proxy.local");
    name_reply.extend_from_slice(&[0x04, 0x38]);
    for (reply, bound) in [
        (REPLY_V4.to_vec(), "10.0.0.1:8080"),
        (name_reply, "proxy.local:1080"),
    ] {
        let mut data = reply.clone();
        data.extend_from_slice(b"\x16\x03\x01early");
        for split in 0..=data.len() {
            let (mut hs, _) = v5_connecting(addr(V4_TARGET));
            let (a, b) = data.split_at(split);
            let first = hs.receive(a).unwrap();
            let done = if split < reply.len() {
                assert_eq!(first, SocksStep::NeedMore, "split {split}");
                assert_eq!(hs.buffered_len(), split);
                hs.receive(b).unwrap()
            } else {
                first
            };
            let SocksStep::Done {
                bound: got,
                leftover,
            } = done
            else {
                panic!("split {split}: {done:?}")
            };
            assert_eq!(got, bound);
            let expected_leftover = if split < reply.len() {
                &data[reply.len()..]
            } else {
                &data[reply.len()..split]
            };
            assert_eq!(leftover, expected_leftover, "split {split}");
        }
        // One byte at a time.
        let (mut hs, _) = v5_connecting(addr(V4_TARGET));
        for (i, byte) in reply.iter().enumerate() {
            let step = hs.receive(&[*byte]).unwrap();
            if i + 1 < reply.len() {
                assert_eq!(step, SocksStep::NeedMore);
                assert!(hs.buffered_len() <= MAX_REPLY);
            } else {
                assert!(matches!(step, SocksStep::Done { .. }));
            }
        }
    }
}

#[test]
fn longest_reply_stays_within_the_buffer_bound() {
    let mut reply = vec![5, 0, 0, 3, 255];
    reply.extend(std::iter::repeat_n(b'n', 255));
    reply.extend_from_slice(&[0, 80]);
    assert_eq!(reply.len(), MAX_REPLY);
    let (mut hs, _) = v5_connecting(addr(V4_TARGET));
    let mut max = 0;
    for byte in &reply[..reply.len() - 1] {
        assert_eq!(hs.receive(&[*byte]), Ok(SocksStep::NeedMore));
        max = max.max(hs.buffered_len());
    }
    assert_eq!(max, MAX_REPLY - 1);
    let mut last = vec![*reply.last().unwrap()];
    last.extend(vec![7u8; 100_000]);
    let Ok(SocksStep::Done { bound, leftover }) = hs.receive(&last) else {
        panic!()
    };
    assert_eq!(bound, format!("{}:80", "n".repeat(255)));
    assert_eq!(
        leftover.len(),
        100_000,
        "everything after the reply is the caller's"
    );
    assert_eq!(hs.buffered_len(), 0);
}

/// Parses an RFC 1929 request as a server would.
fn parse_rfc1929(req: &[u8]) -> (String, String) {
    assert_eq!(req[0], 1);
    let ulen = usize::from(req[1]);
    let user = String::from_utf8(req[2..2 + ulen].to_vec()).unwrap();
    let plen = usize::from(req[2 + ulen]);
    let password = String::from_utf8(req[3 + ulen..3 + ulen + plen].to_vec()).unwrap();
    assert_eq!(req.len(), 3 + ulen + plen);
    (user, password)
}

#[test]
fn rfc1929_round_trip() {
    let (mut hs, _) = v5(SocksTarget::Name("upload.example", 443), auth());
    let Ok(SocksStep::Send(auth_request)) = hs.receive(&[5, 2]) else {
        panic!()
    };
    assert_eq!(
        parse_rfc1929(&auth_request),
        ("alice".into(), SECRET.into())
    );
    assert_eq!(hs.auth_method(), Some(SocksAuthMethod::UsernamePassword));
    assert_eq!(
        hs.auth_method().map(SocksAuthMethod::as_str),
        Some("username/password")
    );
    let Ok(SocksStep::Send(connect)) = hs.receive(&[1, 0]) else {
        panic!()
    };
    assert_eq!(&connect[..5], &[5, 1, 0, 3, 14]);
    assert!(matches!(hs.receive(REPLY_V4), Ok(SocksStep::Done { .. })));

    // Longest user name and password.
    let user = "u".repeat(255);
    let password = "p".repeat(255);
    let auth = SocksAuth {
        user: &user,
        password: &password,
    };
    let (mut hs, _) = v5(addr(V4_TARGET), Some(auth));
    let Ok(SocksStep::Send(auth_request)) = hs.receive(&[5, 2]) else {
        panic!()
    };
    assert_eq!(parse_rfc1929(&auth_request), (user, password));
}

#[test]
fn credentials_offered_but_not_needed() {
    let (mut hs, _) = v5(addr(V4_TARGET), auth());
    let Ok(SocksStep::Send(connect)) = hs.receive(&[5, 0]) else {
        panic!()
    };
    assert_eq!(connect[0], 5);
    assert_eq!(hs.auth_method(), Some(SocksAuthMethod::None));
}

#[test]
fn every_socks5_reply_code_by_name() {
    let names = [
        (1, "general SOCKS server failure (reply code 1)"),
        (2, "connection not allowed by ruleset (reply code 2)"),
        (3, "network unreachable (reply code 3)"),
        (4, "host unreachable (reply code 4)"),
        (5, "connection refused (reply code 5)"),
        (6, "TTL expired (reply code 6)"),
        (7, "command not supported (reply code 7)"),
        (8, "address type not supported (reply code 8)"),
        (9, "unassigned reply code 0x09"),
        (0x80, "unassigned reply code 0x80"),
        (0xff, "unassigned reply code 0xff"),
    ];
    for (code, name) in names {
        let (mut hs, _) = v5_connecting(addr(V4_TARGET));
        // Decided on the code byte: the rest of the reply is not awaited.
        assert_eq!(hs.receive(&[5]), Ok(SocksStep::NeedMore));
        let e = err_of(hs.receive(&[code]));
        assert_eq!(
            e,
            SocksError::Refused {
                version: SocksVersion::V5,
                code
            }
        );
        assert_eq!(e.category(), SocksErrorCategory::Refused);
        assert_eq!(e.reply_code(), Some(code));
        assert_eq!(
            e.to_string(),
            format!("the SOCKS5 proxy refused the tunnel: {name}")
        );
    }
}

#[test]
fn socks4_reply_codes() {
    for (code, text) in [
        (91, "request rejected or failed (reply code 91)"),
        (
            92,
            "rejected: the proxy cannot reach identd on the client (reply code 92)",
        ),
        (93, "rejected: identd user id mismatch (reply code 93)"),
        (17, "reply code 17, which SOCKS4 does not define"),
        (0, "reply code 0, which SOCKS4 does not define"),
    ] {
        for version in [SocksVersion::V4, SocksVersion::V4a] {
            let mut hs = SocksHandshake::new(version, addr(V4_TARGET), None).unwrap();
            hs.start();
            let e = err_of(hs.receive(&[0, code, 0, 0, 0, 0, 0, 0]));
            assert_eq!(e, SocksError::Refused { version, code });
            assert_eq!(e.category(), SocksErrorCategory::Refused);
            assert_eq!(
                e.to_string(),
                format!("the {} proxy refused the tunnel: {text}", version.as_str())
            );
        }
    }
}

#[test]
fn socks4_request_and_reply() {
    let auth = SocksAuth {
        user: "bob",
        password: "unused",
    };
    let mut hs = SocksHandshake::new(SocksVersion::V4, addr("192.0.2.1:80"), Some(auth)).unwrap();
    assert_eq!(hs.start(), b"\x04\x01\x00\x50\xc0\x00\x02\x01bob\x00");
    assert_eq!(hs.start(), b"", "start gives its bytes once");
    let reply = [0, 90, 0x1f, 0x90, 10, 0, 0, 9];
    for split in 0..=reply.len() {
        let mut hs = SocksHandshake::new(SocksVersion::V4, addr("192.0.2.1:80"), None).unwrap();
        hs.start();
        let mut step = hs.receive(&reply[..split]).unwrap();
        if split < reply.len() {
            assert_eq!(step, SocksStep::NeedMore);
            step = hs.receive(&reply[split..]).unwrap();
        }
        assert_eq!(
            step,
            SocksStep::Done {
                bound: "10.0.0.9:8080".into(),
                leftover: vec![]
            }
        );
        assert_eq!(hs.auth_method(), None, "SOCKS4 has no method choice");
    }
    // An IPv4-mapped IPv6 address goes as IPv4; no credentials, an empty user id.
    let mut hs =
        SocksHandshake::new(SocksVersion::V4, addr("[::ffff:192.0.2.1]:80"), None).unwrap();
    assert_eq!(hs.start(), b"\x04\x01\x00\x50\xc0\x00\x02\x01\x00");
}

#[test]
fn socks4a_sends_the_name_after_the_user_id() {
    let auth = SocksAuth {
        user: "bob",
        password: "unused",
    };
    let mut hs = SocksHandshake::new(
        SocksVersion::V4a,
        SocksTarget::Name("upload.example", 443),
        Some(auth),
    )
    .unwrap();
    assert_eq!(
        hs.start(),
        b"\x04\x01\x01\xbb\x00\x00\x00\x01bob\x00upload.example\x00"
    );
    assert!(matches!(
        hs.receive(&[0, 90, 0, 0, 0, 0, 0, 0, 1, 2]),
        Ok(SocksStep::Done { bound, leftover }) if bound == "0.0.0.0:0" && leftover == [1, 2]
    ));
    // With an address, SOCKS4a sends what SOCKS4 sends.
    let mut a = SocksHandshake::new(SocksVersion::V4a, addr("192.0.2.1:80"), None).unwrap();
    let mut b = SocksHandshake::new(SocksVersion::V4, addr("192.0.2.1:80"), None).unwrap();
    assert_eq!(a.start(), b.start());
}

#[test]
fn invalid_inputs_fail_before_any_byte() {
    let long = "x".repeat(256);
    let max = "x".repeat(255);
    let nul = "a\0b";
    let cases: Vec<(
        SocksVersion,
        SocksTarget<'_>,
        Option<SocksAuth<'_>>,
        SocksError,
        &str,
    )> = vec![
        (
            SocksVersion::V4,
            SocksTarget::Name("example.com", 80),
            None,
            SocksError::Socks4Name,
            "SOCKS4 cannot send a host name for the proxy to resolve (SOCKS4a can)",
        ),
        (
            SocksVersion::V4,
            addr("[2001:db8::1]:80"),
            None,
            SocksError::Socks4Ipv6,
            "SOCKS4 can reach IPv4 addresses only, and the target is IPv6",
        ),
        (
            SocksVersion::V4a,
            addr("[2001:db8::1]:80"),
            None,
            SocksError::Socks4aIpv6,
            "SOCKS4a cannot send an IPv6 address",
        ),
        (
            SocksVersion::V4a,
            SocksTarget::Name(&long, 80),
            None,
            SocksError::NameLength {
                version: SocksVersion::V4a,
                len: 256,
            },
            "the host name is 256 bytes long; SOCKS4a allows 1 to 255",
        ),
        (
            SocksVersion::V4a,
            SocksTarget::Name("", 80),
            None,
            SocksError::NameLength {
                version: SocksVersion::V4a,
                len: 0,
            },
            "the host name is 0 bytes long; SOCKS4a allows 1 to 255",
        ),
        (
            SocksVersion::V4a,
            SocksTarget::Name(nul, 80),
            None,
            SocksError::NameNul,
            "the host name contains a NUL byte, which SOCKS4a cannot send",
        ),
        (
            SocksVersion::V4,
            addr(V4_TARGET),
            Some(SocksAuth {
                user: &long,
                password: "",
            }),
            SocksError::UserLength {
                version: SocksVersion::V4,
                len: 256,
            },
            "the proxy user name is 256 bytes long; SOCKS4 allows at most 255 in its user id",
        ),
        (
            SocksVersion::V4a,
            addr(V4_TARGET),
            Some(SocksAuth {
                user: nul,
                password: "",
            }),
            SocksError::UserNul,
            "the proxy user name contains a NUL byte, which SOCKS4 cannot send in its user id",
        ),
        (
            SocksVersion::V5,
            SocksTarget::Name("", 443),
            None,
            SocksError::NameLength {
                version: SocksVersion::V5,
                len: 0,
            },
            "the host name is 0 bytes long; SOCKS5 allows 1 to 255",
        ),
        (
            SocksVersion::V5,
            SocksTarget::Name(&long, 443),
            None,
            SocksError::NameLength {
                version: SocksVersion::V5,
                len: 256,
            },
            "the host name is 256 bytes long; SOCKS5 allows 1 to 255",
        ),
        (
            SocksVersion::V5,
            addr(V4_TARGET),
            Some(SocksAuth {
                user: "",
                password: SECRET,
            }),
            SocksError::UserLength {
                version: SocksVersion::V5,
                len: 0,
            },
            "the proxy user name is 0 bytes long; SOCKS5 (RFC 1929) allows 1 to 255",
        ),
        (
            SocksVersion::V5,
            addr(V4_TARGET),
            Some(SocksAuth {
                user: &long,
                password: SECRET,
            }),
            SocksError::UserLength {
                version: SocksVersion::V5,
                len: 256,
            },
            "the proxy user name is 256 bytes long; SOCKS5 (RFC 1929) allows 1 to 255",
        ),
        (
            SocksVersion::V5,
            addr(V4_TARGET),
            Some(SocksAuth {
                user: "alice",
                password: "",
            }),
            SocksError::PasswordLength { len: 0 },
            "the proxy password is 0 bytes long; SOCKS5 (RFC 1929) allows 1 to 255",
        ),
        (
            SocksVersion::V5,
            addr(V4_TARGET),
            Some(SocksAuth {
                user: "alice",
                password: &long,
            }),
            SocksError::PasswordLength { len: 256 },
            "the proxy password is 256 bytes long; SOCKS5 (RFC 1929) allows 1 to 255",
        ),
    ];
    for (version, target, auth, error, sentence) in cases {
        let e = SocksHandshake::new(version, target, auth).expect_err(sentence);
        assert_eq!(e, error);
        assert_eq!(e.to_string(), sentence);
        assert_eq!(e.category(), SocksErrorCategory::Input);
    }
    // The boundaries themselves are accepted.
    let max_auth = Some(SocksAuth {
        user: &max,
        password: &max,
    });
    SocksHandshake::new(SocksVersion::V5, SocksTarget::Name(&max, 1), max_auth).unwrap();
    SocksHandshake::new(SocksVersion::V4a, SocksTarget::Name(&max, 1), max_auth).unwrap();
    SocksHandshake::new(SocksVersion::V4, addr(V4_TARGET), max_auth).unwrap();
    // SOCKS5 sends a name with NUL as it is (it is length-prefixed).
    SocksHandshake::new(SocksVersion::V5, SocksTarget::Name(nul, 1), None).unwrap();
}

#[test]
fn method_choice_errors() {
    let offered_both = "the SOCKS5 proxy accepts none of the authentication methods we offered \
                        (no authentication, username/password)";
    let offered_none = "the SOCKS5 proxy accepts none of the authentication methods we offered \
                        (no authentication only: no user name and password were given)";
    let cases = [
        (
            auth(),
            [5, 0xff],
            SocksError::NoAcceptableMethod {
                offered_credentials: true,
            },
            offered_both,
            SocksErrorCategory::Auth,
        ),
        (
            None,
            [5, 0xff],
            SocksError::NoAcceptableMethod {
                offered_credentials: false,
            },
            offered_none,
            SocksErrorCategory::Auth,
        ),
        (
            None,
            [5, 2],
            SocksError::CredentialsRequired,
            "the SOCKS5 proxy asks for a user name and password, and none were given",
            SocksErrorCategory::Auth,
        ),
        (
            auth(),
            [5, 1],
            SocksError::UnofferedMethod { method: 1 },
            "the SOCKS5 proxy chose authentication method 0x01 (GSSAPI), which we did not offer",
            SocksErrorCategory::Protocol,
        ),
        (
            None,
            [5, 0x80],
            SocksError::UnofferedMethod { method: 0x80 },
            "the SOCKS5 proxy chose authentication method 0x80 (a private method), which we did \
             not offer",
            SocksErrorCategory::Protocol,
        ),
        (
            None,
            [4, 0],
            SocksError::WrongVersion {
                reply: SocksReply::MethodChoice,
                expected: 5,
                got: 4,
            },
            "the proxy's version byte in its reply to our SOCKS5 greeting is 0x04, not 0x05",
            SocksErrorCategory::Protocol,
        ),
        (
            None,
            [0, 91],
            SocksError::WrongVersion {
                reply: SocksReply::MethodChoice,
                expected: 5,
                got: 0,
            },
            "the proxy's version byte in its reply to our SOCKS5 greeting is 0x00, not 0x05 (a \
             SOCKS4 reply: the proxy may speak only SOCKS4)",
            SocksErrorCategory::Protocol,
        ),
    ];
    for (auth, reply, error, sentence, category) in cases {
        let (mut hs, _) = v5(addr(V4_TARGET), auth);
        let e = err_of(hs.receive(&reply));
        assert_eq!(e, error);
        assert_eq!(e.to_string(), sentence);
        assert_eq!(e.category(), category);
        assert_eq!(e.reply_code(), None);
    }
}

#[test]
fn an_http_proxy_answering_a_greeting() {
    let answer = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    for version in [SocksVersion::V5, SocksVersion::V4, SocksVersion::V4a] {
        // At once, and byte by byte: undecided until "HTTP/" is complete.
        let mut hs = SocksHandshake::new(version, addr(V4_TARGET), None).unwrap();
        hs.start();
        assert_eq!(hs.receive(answer), Err(SocksError::NotSocks));
        let mut hs = SocksHandshake::new(version, addr(V4_TARGET), None).unwrap();
        hs.start();
        for byte in &answer[..4] {
            assert_eq!(hs.receive(&[*byte]), Ok(SocksStep::NeedMore));
        }
        let e = err_of(hs.receive(&answer[4..5]));
        assert_eq!(e, SocksError::NotSocks);
        assert_eq!(
            e.to_string(),
            "the proxy answered in HTTP, not SOCKS (it looks like an HTTP proxy)"
        );
        assert_eq!(e.category(), SocksErrorCategory::Protocol);
    }
    // 'H' that does not go on as "HTTP/" is a wrong version byte.
    let (mut hs, _) = v5(addr(V4_TARGET), None);
    assert_eq!(
        hs.receive(b"HTX"),
        Err(SocksError::WrongVersion {
            reply: SocksReply::MethodChoice,
            expected: 5,
            got: b'H'
        })
    );
}

#[test]
fn authentication_verdict_errors() {
    let cases = [
        (
            [1, 1],
            SocksError::AuthRejected { status: 1 },
            "the SOCKS5 proxy refused the user name and password (RFC 1929 status 0x01)",
            SocksErrorCategory::Auth,
        ),
        (
            [1, 0xff],
            SocksError::AuthRejected { status: 0xff },
            "the SOCKS5 proxy refused the user name and password (RFC 1929 status 0xff)",
            SocksErrorCategory::Auth,
        ),
        (
            [5, 0],
            SocksError::WrongVersion {
                reply: SocksReply::AuthVerdict,
                expected: 1,
                got: 5,
            },
            "the proxy's version byte in its reply to our user name and password (RFC 1929) is \
             0x05, not 0x01 (RFC 1929's version is 0x01; the proxy answered with SOCKS5's)",
            SocksErrorCategory::Protocol,
        ),
        (
            [2, 0],
            SocksError::WrongVersion {
                reply: SocksReply::AuthVerdict,
                expected: 1,
                got: 2,
            },
            "the proxy's version byte in its reply to our user name and password (RFC 1929) is \
             0x02, not 0x01",
            SocksErrorCategory::Protocol,
        ),
    ];
    for (reply, error, sentence, category) in cases {
        let (mut hs, _) = v5(addr(V4_TARGET), auth());
        assert!(matches!(hs.receive(&[5, 2]), Ok(SocksStep::Send(_))));
        let e = err_of(hs.receive(&reply));
        assert_eq!(e, error);
        assert_eq!(e.to_string(), sentence);
        assert_eq!(e.category(), category);
        assert!(!format!("{e} {e:?} {hs:?}").contains(SECRET));
    }
}

#[test]
fn connect_reply_violations() {
    let cases: [(&[u8], SocksError, &str); 4] = [
        (
            &[4, 0, 0, 1],
            SocksError::WrongVersion {
                reply: SocksReply::Connect5,
                expected: 5,
                got: 4,
            },
            "the proxy's version byte in its reply to our SOCKS5 CONNECT request is 0x04, not \
             0x05",
        ),
        (
            &[5, 0, 1, 1],
            SocksError::ReservedNotZero { got: 1 },
            "the reserved byte of the SOCKS5 proxy's CONNECT reply is 0x01, not 0x00",
        ),
        (
            &[5, 0, 0, 2, 0, 0],
            SocksError::UnknownAddressType { atyp: 2 },
            "the SOCKS5 proxy's CONNECT reply has address type 0x02, none of IPv4 (1), domain \
             name (3), IPv6 (4)",
        ),
        (
            &[5, 0, 0, 0],
            SocksError::UnknownAddressType { atyp: 0 },
            "the SOCKS5 proxy's CONNECT reply has address type 0x00, none of IPv4 (1), domain \
             name (3), IPv6 (4)",
        ),
    ];
    for (reply, error, sentence) in cases {
        let (mut hs, _) = v5_connecting(addr(V4_TARGET));
        let e = err_of(hs.receive(reply));
        assert_eq!(e, error);
        assert_eq!(e.to_string(), sentence);
        assert_eq!(e.category(), SocksErrorCategory::Protocol);
    }
    // SOCKS4's reply version is 0; a SOCKS5 server's 5 is named as such.
    let mut hs = SocksHandshake::new(SocksVersion::V4, addr(V4_TARGET), None).unwrap();
    hs.start();
    let e = err_of(hs.receive(&[5, 0]));
    assert_eq!(
        e.to_string(),
        "the proxy's version byte in its reply to our SOCKS4 CONNECT request is 0x05, not 0x00 \
         (a SOCKS5 reply: the proxy may speak only SOCKS5)"
    );
}

#[test]
fn bytes_before_our_request_are_a_violation() {
    let (mut hs, _) = v5(addr(V4_TARGET), auth());
    let e = err_of(hs.receive(&[5, 2, 1, 0]));
    assert_eq!(
        e,
        SocksError::EarlyBytes {
            after: SocksReply::MethodChoice,
            count: 2
        }
    );
    assert_eq!(
        e.to_string(),
        "the SOCKS5 proxy sent 2 bytes after its reply to our SOCKS5 greeting, before it had our \
         next request"
    );
    let (mut hs, _) = v5(addr(V4_TARGET), auth());
    assert!(matches!(hs.receive(&[5, 2]), Ok(SocksStep::Send(_))));
    let e = err_of(hs.receive(&[1, 0, 5]));
    assert_eq!(
        e.to_string(),
        "the SOCKS5 proxy sent 1 byte after its reply to our user name and password (RFC 1929), \
         before it had our CONNECT request"
    );
    assert_eq!(e.category(), SocksErrorCategory::Protocol);
}

#[test]
fn closed_says_where() {
    let (mut hs, _) = v5(addr(V4_TARGET), None);
    let e = hs.closed();
    assert_eq!(
        e.to_string(),
        "the proxy closed the connection before its reply to our SOCKS5 greeting"
    );
    assert_eq!(e.category(), SocksErrorCategory::Protocol);
    assert_eq!(err_of(hs.receive(&[5, 0])), e, "closed is final");

    let (mut hs, _) = v5_connecting(addr(V4_TARGET));
    assert_eq!(hs.receive(&REPLY_V4[..3]), Ok(SocksStep::NeedMore));
    assert_eq!(
        hs.closed().to_string(),
        "the proxy closed the connection after 3 bytes of its reply to our SOCKS5 CONNECT request"
    );

    let mut hs = SocksHandshake::new(SocksVersion::V4a, addr(V4_TARGET), None).unwrap();
    hs.start();
    assert_eq!(hs.receive(&[0]), Ok(SocksStep::NeedMore));
    assert_eq!(
        hs.closed().to_string(),
        "the proxy closed the connection after 1 byte of its reply to our SOCKS4 CONNECT request"
    );

    let (mut hs, _) = v5(addr(V4_TARGET), auth());
    assert!(matches!(hs.receive(&[5, 2]), Ok(SocksStep::Send(_))));
    assert_eq!(
        hs.closed().to_string(),
        "the proxy closed the connection before its reply to our user name and password (RFC 1929)"
    );
}

#[test]
fn misuse_and_sticky_errors() {
    let mut hs = SocksHandshake::new(SocksVersion::V5, addr(V4_TARGET), None).unwrap();
    let e = err_of(hs.receive(&[5, 0]));
    assert_eq!(e, SocksError::Misuse("bytes received before start"));
    assert_eq!(
        e.to_string(),
        "SOCKS handshake used out of order: bytes received before start"
    );
    // Not sticky: the driver can still start.
    assert_eq!(hs.start(), [5, 1, 0]);

    let (mut hs, _) = v5_connecting(addr(V4_TARGET));
    assert!(matches!(hs.receive(REPLY_V4), Ok(SocksStep::Done { .. })));
    assert_eq!(
        err_of(hs.receive(b"more")),
        SocksError::Misuse("bytes received after the tunnel opened")
    );
    assert_eq!(
        hs.closed(),
        SocksError::Misuse("closed after the tunnel opened")
    );

    let (mut hs, _) = v5_connecting(addr(V4_TARGET));
    let e = err_of(hs.receive(&[5, 5]));
    assert_eq!(err_of(hs.receive(&[0, 0, 1])), e);
    assert_eq!(err_of(hs.receive(&[])), e);
    assert_eq!(hs.closed(), e);
}

#[test]
fn empty_reads_change_nothing() {
    let (mut hs, _) = v5_connecting(addr(V4_TARGET));
    assert_eq!(hs.receive(&[]), Ok(SocksStep::NeedMore));
    assert_eq!(hs.receive(&REPLY_V4[..1]), Ok(SocksStep::NeedMore));
    assert_eq!(hs.receive(&[]), Ok(SocksStep::NeedMore));
    assert!(matches!(
        hs.receive(&REPLY_V4[1..]),
        Ok(SocksStep::Done { .. })
    ));
}

#[test]
fn no_credential_in_debug_output() {
    let (hs, _) = v5(addr(V4_TARGET), auth());
    let shown = format!("{hs:?} {:?}", auth());
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(!shown.contains("alice"), "{shown}");
}

#[test]
fn the_whole_conversation_at_every_split_of_every_reply() {
    // Each reply of a SOCKS5 handshake with authentication and a domain-typed bound address,
    // fed in two pieces at every split point.
    let mut connect_reply = vec![5, 0, 0, 3, 5];
    connect_reply.extend_from_slice(b"bound");
    connect_reply.extend_from_slice(&[0, 9]);
    let replies: [&[u8]; 3] = [&[5, 2], &[1, 0], &connect_reply];
    for (which, reply) in replies.iter().enumerate() {
        for split in 0..=reply.len() {
            let (mut hs, _) = v5(SocksTarget::Name("upload.example", 443), auth());
            for (i, r) in replies.iter().enumerate() {
                let step = if i == which {
                    let first = hs.receive(&r[..split]).unwrap();
                    if split < r.len() {
                        assert_eq!(first, SocksStep::NeedMore);
                        hs.receive(&r[split..]).unwrap()
                    } else {
                        first
                    }
                } else {
                    hs.receive(r).unwrap()
                };
                match i {
                    0 | 1 => assert!(matches!(step, SocksStep::Send(_)), "{step:?}"),
                    _ => assert_eq!(
                        step,
                        SocksStep::Done {
                            bound: "bound:9".into(),
                            leftover: vec![]
                        }
                    ),
                }
            }
        }
    }
}
