//! The sans-IO HTTP/1.1 exchange state machine (`uploadfile::proto::h1_exchange`) driven by an
//! arbitrary script of I/O events, as a driver would report them.
//!
//! Input layout: byte 0 holds flags (bit 0: the request has a body, bit 1: it sends
//! `Expect: 100-continue`, bit 2: a tiny response cap); bytes 1-2 the head length (1..=4096),
//! bytes 3-4 the body length; then a script, one op per byte (its low 3 bits), some ops taking
//! the next byte as a size:
//!
//! 0 write (up to the size byte's worth of what may be written now), 1 flush, 2 a write fails,
//! 3 the 100-continue wait runs out, 4 read (the size byte says how many of the response bytes
//! that follow the script to feed), 5 the connection ends, 6 the late flush (when wanted) returns
//! or fails, 7 finish. The response bytes are what is left after a 0xFF 0xFF marker.
//!
//! The fuzz driver behaves like a correct driver (it writes only what `may_write` allows, the
//! head alone when it asks for 100 Continue, never more than the request's bytes), passes
//! instants that never go backwards, and checks what the machine promises: no panic; nothing
//! may be written once the response is complete or a write failed; a finished exchange has its
//! request instants in order, its response instants in order, no `requestEnd` when the answer
//! was early, and is reusable only when the request was completely written and not early;
//! a failure after which the request may go again has seen no response byte.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use uploadfile::proto::h1_exchange::{Finished, Http1Exchange, RequestSpec, SendState};

fn check(done: &Finished) {
    let t = done.timings;
    let ordered = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
        (Some(a), Some(b)) => assert!(a <= b, "{t:?}"),
        _ => {}
    };
    ordered(t.request_start, t.request_head_end);
    ordered(t.request_head_end, t.request_end);
    ordered(t.first_interim_response, t.response_start);
    ordered(t.response_start, t.response_end);
    assert!(t.response_start.is_some() && t.response_end.is_some());
    if done.early_response {
        assert!(t.request_end.is_none(), "an early answer has no requestEnd");
        assert!(!done.reusable);
    }
    if done.reusable {
        assert!(done.request_complete);
    }
    if done.request_complete {
        assert!(t.request_end.is_some());
    }
    assert!(done.wire_bytes > 0);
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let flags = data[0];
    let head_len = (u16::from_be_bytes([data[1], data[2]]) % 4096 + 1) as u64;
    let body_len = (flags & 1 != 0).then(|| u16::from_be_bytes([data[3], data[4]]) as u64);
    let expect = (flags & 2 != 0).then(|| Duration::from_millis(500));
    let cap = if flags & 4 != 0 { 8 } else { 1 << 20 };
    let rest = &data[5..];
    let (script, response) = match rest.windows(2).position(|w| w == [0xFF, 0xFF]) {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None => (rest, &[][..]),
    };
    let spec = RequestSpec {
        head_len,
        body_len,
        expect_continue: expect,
    };
    let mut ex = Http1Exchange::new(spec, cap);
    let base = Instant::now();
    let mut clock = 0u64;
    let mut now = || {
        clock += 1;
        base + Duration::from_millis(clock)
    };
    let (mut head_written, mut body_written) = (0u64, 0u64);
    let mut fed = 0usize;
    let mut ops = script.iter().copied();
    while let Some(op) = ops.next() {
        match op & 7 {
            0 => {
                let size = ops.next().unwrap_or(255) as u64 * 16 + 1;
                if !ex.may_write() {
                    continue;
                }
                let state = ex.send_state();
                let (mut h, mut b) = (0, 0);
                if state == SendState::Head {
                    h = (head_len - head_written).min(size);
                }
                let head_done = head_written + h == head_len;
                let body_may = state == SendState::Body || (head_done && expect.is_none());
                if body_may {
                    b = (body_len.unwrap_or(0) - body_written).min(size - h);
                }
                if h == 0 && b == 0 {
                    continue;
                }
                let started = now();
                ex.on_write(h as usize, b as usize, started, now());
                head_written += h;
                body_written += b;
            }
            1 => {
                if ex.may_write() && ex.send_state() == SendState::Flush {
                    let t = now();
                    ex.on_flushed(t);
                }
            }
            2 => {
                if ex.may_write() {
                    ex.on_write_failed("broken pipe");
                }
            }
            3 => {
                if ex.continue_deadline().is_some() {
                    ex.on_continue_timeout();
                }
            }
            4 => {
                let size = ops.next().unwrap_or(255) as usize + 1;
                let end = (fed + size).min(response.len());
                if fed == end || ex.is_complete() {
                    continue;
                }
                let t = now();
                let mut got = ex.on_read(&response[fed..end], t);
                fed = end;
                loop {
                    match got {
                        Ok(g) if g.final_head && !g.complete => {
                            assert!(ex.response_head().is_some());
                            got = ex.poll(t);
                        }
                        Ok(g) => {
                            if g.complete {
                                assert!(!ex.may_write(), "wrote after the response");
                            }
                            break;
                        }
                        Err(f) => {
                            assert!(f.response_seen || f.body_sent <= f.body_len);
                            return;
                        }
                    }
                }
            }
            5 => {
                let t = now();
                match ex.on_eof(t) {
                    Ok(g) if !g.complete => {
                        let f = ex.failure_at_close().expect("an incomplete close is a failure");
                        let _ = f.to_string();
                        return;
                    }
                    Ok(_) => {}
                    Err(f) => {
                        let _ = f.to_string();
                        return;
                    }
                }
            }
            6 => {
                if ex.wants_late_flush() {
                    if ops.next().unwrap_or(0) & 1 == 0 {
                        let t = now();
                        let end = ex.on_late_flush(t);
                        assert!(end <= t);
                    } else {
                        ex.on_late_flush_failed("broken pipe");
                    }
                }
            }
            _ => break,
        }
    }
    if ex.wants_late_flush() {
        let t = now();
        ex.on_late_flush(t);
    }
    match ex.finish() {
        Ok(done) => {
            check(&done);
            assert!(done.head_written <= head_len);
            assert!(done.body_sent <= body_len.unwrap_or(0));
            assert!(done.body.len() <= cap);
        }
        Err(f) => {
            let _ = f.to_string();
        }
    }
});
