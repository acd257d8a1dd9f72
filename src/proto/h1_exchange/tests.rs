use super::*;

fn t(ms: u64) -> Instant {
    thread_local! {
        static BASE: Instant = Instant::now();
    }
    BASE.with(|b| *b + Duration::from_millis(ms))
}

fn spec(head: u64, body: Option<u64>, expect: Option<u64>) -> RequestSpec {
    RequestSpec {
        head_len: head,
        body_len: body,
        expect_continue: expect.map(Duration::from_millis),
    }
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// Feed a read and go on through any pause at the final head, as the driver does.
fn read_all(
    ex: &mut Http1Exchange,
    bytes: &[u8],
    now: Instant,
) -> Result<Received, ExchangeFailure> {
    let mut got = ex.on_read(bytes, now)?;
    let mut heads = got.final_head;
    while got.final_head && !got.complete {
        got = ex.poll(now)?;
        heads |= got.final_head;
    }
    got.final_head = heads;
    Ok(got)
}

#[test]
fn head_and_body_in_one_write_then_flush_then_response() {
    let mut ex = Http1Exchange::new(spec(50, Some(500), None), 1024);
    assert!(ex.may_write());
    ex.on_write(50, 500, t(1), t(2));
    assert_eq!(ex.send_state(), SendState::Flush);
    assert!(ex.in_body());
    ex.on_flushed(t(3));
    assert_eq!(ex.send_state(), SendState::Done);
    assert!(!ex.may_write());
    let got = read_all(&mut ex, OK, t(10)).unwrap();
    assert!(got.final_head && got.complete);
    let done = ex.finish().unwrap();
    assert_eq!(
        done.timings,
        Timings {
            request_start: Some(t(1)),
            request_head_end: Some(t(2)),
            request_end: Some(t(3)),
            first_interim_response: None,
            response_start: Some(t(10)),
            response_end: Some(t(10)),
        }
    );
    assert!(done.reusable && done.request_complete && !done.early_response);
    assert_eq!((done.head_written, done.body_sent), (50, 500));
    assert_eq!(done.wire_bytes, OK.len() as u64);
}

#[test]
fn partial_writes_move_through_head_and_body() {
    let mut ex = Http1Exchange::new(spec(10, Some(20), None), 1024);
    ex.on_write(4, 0, t(1), t(2));
    assert_eq!(ex.send_state(), SendState::Head);
    assert!(!ex.in_body());
    ex.on_write(6, 5, t(3), t(4));
    assert_eq!(ex.send_state(), SendState::Body);
    ex.on_write(0, 15, t(5), t(6));
    assert_eq!(ex.send_state(), SendState::Flush);
    ex.on_flushed(t(7));
    read_all(&mut ex, OK, t(8)).unwrap();
    let done = ex.finish().unwrap();
    // requestStart is the start of the first write; the head ended with the second one.
    assert_eq!(done.timings.request_start, Some(t(1)));
    assert_eq!(done.timings.request_head_end, Some(t(4)));
    assert_eq!(done.timings.request_end, Some(t(7)));
}

#[test]
fn a_body_less_request_goes_straight_to_flush() {
    let mut ex = Http1Exchange::new(spec(30, None, Some(1000)), 1024);
    ex.on_write(30, 0, t(0), t(1));
    assert_eq!(
        ex.send_state(),
        SendState::Flush,
        "no body: no wait for 100"
    );
    ex.on_flushed(t(2));
    read_all(&mut ex, OK, t(3)).unwrap();
    assert!(ex.finish().unwrap().reusable);
}

#[test]
fn expect_continue_waits_for_100_and_times_its_arrival() {
    let mut ex = Http1Exchange::new(spec(10, Some(100), Some(1000)), 1024);
    ex.on_write(10, 0, t(0), t(1));
    assert_eq!(ex.send_state(), SendState::AwaitContinue(t(1001)));
    assert_eq!(ex.continue_deadline(), Some(t(1001)));
    assert!(!ex.may_write() && !ex.in_body());
    let got = read_all(&mut ex, b"HTTP/1.1 100 Continue\r\n\r\n", t(5)).unwrap();
    assert_eq!(got, Received::default());
    assert_eq!(ex.send_state(), SendState::Body);
    assert_eq!(ex.continue_deadline(), None);
    ex.on_write(0, 100, t(6), t(7));
    ex.on_flushed(t(8));
    read_all(&mut ex, OK, t(20)).unwrap();
    let done = ex.finish().unwrap();
    assert_eq!(done.first_interim_status, 100);
    assert_eq!(done.timings.first_interim_response, Some(t(5)));
    assert_eq!(done.timings.response_start, Some(t(20)));
}

#[test]
fn without_100_the_body_goes_when_the_wait_runs_out() {
    let mut ex = Http1Exchange::new(spec(10, Some(100), Some(500)), 1024);
    ex.on_write(10, 0, t(0), t(1));
    ex.on_continue_timeout();
    assert_eq!(ex.send_state(), SendState::Body);
    // A 100 that arrives later changes nothing, and is still the first interim response.
    read_all(&mut ex, b"HTTP/1.1 100 Continue\r\n\r\n", t(600)).unwrap();
    assert_eq!(ex.send_state(), SendState::Body);
}

#[test]
fn a_100_before_the_head_is_written_is_not_a_go_ahead() {
    let mut ex = Http1Exchange::new(spec(10, Some(100), Some(500)), 1024);
    read_all(&mut ex, b"HTTP/1.1 100 Continue\r\n\r\n", t(0)).unwrap();
    assert_eq!(ex.send_state(), SendState::Head);
    ex.on_write(10, 0, t(1), t(2));
    assert!(matches!(ex.send_state(), SendState::AwaitContinue(_)));
}

#[test]
fn an_interim_and_the_final_head_in_one_read_share_its_instant() {
    let mut ex = Http1Exchange::new(spec(10, None, None), 1024);
    ex.on_write(10, 0, t(0), t(1));
    ex.on_flushed(t(1));
    let mut bytes = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n".to_vec();
    bytes.extend_from_slice(OK);
    read_all(&mut ex, &bytes, t(9)).unwrap();
    let done = ex.finish().unwrap();
    assert_eq!(done.first_interim_status, 103);
    assert_eq!(done.timings.first_interim_response, Some(t(9)));
    assert_eq!(done.timings.response_start, Some(t(9)));
}

#[test]
fn the_final_head_is_timed_at_the_read_with_its_first_byte() {
    let mut ex = Http1Exchange::new(spec(10, None, None), 1024);
    ex.on_write(10, 0, t(0), t(1));
    ex.on_flushed(t(1));
    let got = ex.on_read(b"HTTP/1.1 200 OK\r\nContent-Le", t(5)).unwrap();
    assert_eq!(got, Received::default());
    let got = ex.on_read(b"ngth: 2\r\n\r\n", t(7)).unwrap();
    assert!(got.final_head && !got.complete);
    assert!(!ex.poll(t(7)).unwrap().complete);
    assert!(read_all(&mut ex, b"ok", t(8)).unwrap().complete);
    let done = ex.finish().unwrap();
    assert_eq!(done.timings.response_start, Some(t(5)));
    assert_eq!(done.timings.response_end, Some(t(8)));
}

#[test]
fn decoding_pauses_after_the_final_head() {
    let mut ex = Http1Exchange::new(spec(10, None, None), 1);
    ex.on_write(10, 0, t(0), t(1));
    ex.on_flushed(t(1));
    // The body is over the cap (2 > 1), found only after the head was announced.
    let got = ex
        .on_read(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            t(2),
        )
        .unwrap();
    assert!(got.final_head && !got.complete);
    assert_eq!(ex.response_head().unwrap().status, 200);
    let failure = ex.poll(t(2)).unwrap_err();
    assert_eq!(
        failure.error,
        ExchangeError::TooLarge {
            cap: 1,
            announced: None
        }
    );
    assert!(failure.response_seen);
}

#[test]
fn an_announced_length_over_the_cap_fails_at_the_head() {
    let mut ex = Http1Exchange::new(spec(10, None, None), 1);
    ex.on_write(10, 0, t(0), t(1));
    let failure = ex.on_read(OK, t(2)).unwrap_err();
    assert_eq!(
        failure.error,
        ExchangeError::TooLarge {
            cap: 1,
            announced: Some(2)
        }
    );
    assert_eq!(
        failure.to_string(),
        "Content-Length 2 exceeds the cap of 1 bytes"
    );
}

#[test]
fn an_early_response_stands_and_the_connection_is_not_reused() {
    let mut ex = Http1Exchange::new(spec(10, Some(1_000_000), None), 1024);
    ex.on_write(10, 1000, t(0), t(1));
    let got = read_all(
        &mut ex,
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n",
        t(2),
    )
    .unwrap();
    assert!(got.complete);
    assert!(!ex.may_write(), "no more writes once the answer is in");
    assert!(!ex.wants_late_flush());
    let done = ex.finish().unwrap();
    assert!(done.early_response && !done.request_complete && !done.reusable);
    assert_eq!(done.timings.request_end, None);
    assert_eq!(done.head.status, 413);
}

#[test]
fn a_response_overtaking_the_final_flush_is_not_early() {
    let mut ex = Http1Exchange::new(spec(10, Some(90), None), 1024);
    ex.on_write(10, 90, t(0), t(4));
    assert_eq!(ex.send_state(), SendState::Flush);
    read_all(&mut ex, OK, t(6)).unwrap();
    assert!(ex.wants_late_flush());
    // The request ended when the write carrying its last byte returned, before the flush.
    assert_eq!(ex.on_late_flush(t(8)), t(4));
    let done = ex.finish().unwrap();
    assert!(!done.early_response && done.request_complete && done.reusable);
    assert_eq!(done.timings.request_end, Some(t(4)));
}

#[test]
fn a_failed_late_flush_keeps_the_answer_but_not_the_connection() {
    let mut ex = Http1Exchange::new(spec(10, Some(90), None), 1024);
    ex.on_write(10, 90, t(0), t(4));
    read_all(&mut ex, OK, t(6)).unwrap();
    ex.on_late_flush_failed("broken pipe");
    let done = ex.finish().unwrap();
    assert_eq!(done.head.status, 200);
    assert!(!done.reusable && !done.request_complete);
    assert!(done.early_response, "the request was never completely sent");
}

#[test]
fn a_write_error_then_an_answer_is_the_answer() {
    let mut ex = Http1Exchange::new(spec(10, Some(100), None), 1024);
    ex.on_write(10, 40, t(0), t(1));
    ex.on_write_failed("connection reset by peer");
    assert_eq!(ex.send_state(), SendState::Stopped);
    assert!(!ex.may_write());
    read_all(&mut ex, OK, t(2)).unwrap();
    let done = ex.finish().unwrap();
    assert_eq!(done.head.status, 200);
    // Stopped by the write error: not reused, and not counted as an early answer.
    assert!(!done.reusable && !done.early_response);
}

#[test]
fn a_write_error_then_the_close_is_judged_by_the_framing() {
    let mut ex = Http1Exchange::new(spec(10, Some(100), None), 1024);
    ex.on_write(10, 40, t(0), t(1));
    ex.on_write_failed("broken pipe");
    // The decoder says what was missing at the close; the failure carries how far the body
    // got, for the driver's note.
    let failure = ex.on_eof(t(2)).unwrap_err();
    assert_eq!(
        failure.error,
        ExchangeError::Invalid {
            error: ProtoError::IncompleteHead { received: 0 },
            at_eof: true
        }
    );
    assert!(!failure.response_seen);
    assert_eq!((failure.body_sent, failure.body_len), (40, 100));
}

#[test]
fn a_close_reads_as_the_write_error_that_came_first() {
    let closed = ExchangeError::Closed {
        write_error: Some("broken pipe".into()),
    };
    assert_eq!(closed.to_string(), "while sending the request: broken pipe");
    let closed = ExchangeError::Closed { write_error: None };
    assert_eq!(closed.to_string(), "before the response was complete");
}

#[test]
fn a_close_before_any_byte_is_unseen_and_a_close_mid_head_is_seen() {
    let mut ex = Http1Exchange::new(spec(10, None, None), 1024);
    ex.on_write(10, 0, t(0), t(1));
    ex.on_flushed(t(1));
    // The decoder reports a close before any head byte as an incomplete head.
    let failure = ex.on_eof(t(2)).unwrap_err();
    assert!(matches!(
        failure.error,
        ExchangeError::Invalid { at_eof: true, .. }
    ));
    assert!(!failure.response_seen);

    let mut ex = Http1Exchange::new(spec(10, None, None), 1024);
    ex.on_write(10, 0, t(0), t(1));
    ex.on_read(b"HTTP/1.1 200", t(2)).unwrap();
    let failure = ex.on_eof(t(3)).unwrap_err();
    assert!(failure.response_seen);
}

#[test]
fn a_close_delimited_body_completes_at_the_close() {
    let mut ex = Http1Exchange::new(spec(10, None, None), 1024);
    ex.on_write(10, 0, t(0), t(1));
    ex.on_flushed(t(1));
    read_all(&mut ex, b"HTTP/1.1 200 OK\r\n\r\nhello", t(2)).unwrap();
    let got = ex.on_eof(t(5)).unwrap();
    assert!(got.complete);
    let done = ex.finish().unwrap();
    assert_eq!(done.body, b"hello");
    assert_eq!(done.timings.response_end, Some(t(5)));
    assert!(
        !done.reusable,
        "a close-delimited response ends the connection"
    );
}

#[test]
fn garbage_is_an_invalid_response_seen() {
    let mut ex = Http1Exchange::new(spec(10, None, None), 1024);
    ex.on_write(10, 0, t(0), t(1));
    let failure = ex.on_read(b"SSH-2.0-OpenSSH\r\n", t(2)).unwrap_err();
    assert!(matches!(
        failure.error,
        ExchangeError::Invalid { at_eof: false, .. }
    ));
    assert!(failure.response_seen);
}

#[test]
fn bytes_after_the_response_make_the_connection_unusable() {
    let mut ex = Http1Exchange::new(spec(10, None, None), 1024);
    ex.on_write(10, 0, t(0), t(1));
    ex.on_flushed(t(1));
    let mut bytes = OK.to_vec();
    bytes.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    read_all(&mut ex, &bytes, t(2)).unwrap();
    assert!(!ex.finish().unwrap().reusable);
}

#[test]
fn finishing_before_the_response_is_complete_is_a_failure() {
    let mut ex = Http1Exchange::new(spec(10, None, None), 1024);
    ex.on_write(10, 0, t(0), t(1));
    ex.on_flushed(t(1));
    read_all(
        &mut ex,
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nok",
        t(2),
    )
    .unwrap();
    let failure = ex.finish().unwrap_err();
    assert_eq!(failure.error, ExchangeError::Unfinished);
    assert!(failure.response_seen);
}

#[test]
fn finishing_without_a_head_is_a_failure() {
    let ex = Http1Exchange::new(spec(10, None, None), 1024);
    let failure = ex.finish().unwrap_err();
    assert_eq!(failure.error, ExchangeError::NoHead);
    assert_eq!(failure.to_string(), "response ended without a head");
}

#[test]
fn the_same_bytes_split_anywhere_give_the_same_result() {
    let mut bytes = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
    bytes.extend_from_slice(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n");
    bytes.extend_from_slice(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    for split in 1..bytes.len() {
        let mut ex = Http1Exchange::new(spec(10, Some(5), Some(1000)), 1024);
        ex.on_write(10, 0, t(0), t(1));
        read_all(&mut ex, &bytes[..split], t(2)).unwrap();
        if ex.send_state() == SendState::Body {
            ex.on_write(0, 5, t(3), t(4));
            ex.on_flushed(t(4));
        }
        let got = read_all(&mut ex, &bytes[split..], t(5)).unwrap();
        assert!(got.complete, "split at {split}");
        if ex.wants_late_flush() {
            ex.on_late_flush(t(6));
        }
        let done = ex.finish().unwrap();
        assert_eq!(done.head.status, 201);
        assert_eq!(done.body, b"abcde", "split at {split}");
        assert_eq!(done.first_interim_status, 100);
        assert_eq!(done.wire_bytes, bytes.len() as u64);
        // Both heads; chunk framing "3\r\n" CRLF "2\r\n" CRLF "0\r\n" CRLF; the body.
        assert_eq!(done.header_bytes, (25 + 52) as u64, "split at {split}");
        assert_eq!(
            done.framing_bytes,
            3 + 2 + 3 + 2 + 3 + 2,
            "split at {split}"
        );
        assert_eq!(
            done.header_bytes + done.body.len() as u64 + done.framing_bytes,
            done.wire_bytes
        );
    }
}
