//! The race's rules as pure functions of what happened and when: how long QUIC's head start is,
//! and, after each event, what to do next. The driver (`race/mod.rs`) does the I/O and passes
//! each event in; it never decides.
//!
//! # The head start
//!
//! TCP is held back while QUIC's handshake runs, so that an origin that answers QUIC does not get
//! a TCP connection it will never use, and started after the head start, so that a UDP blackhole
//! costs the head start and not QUIC's whole handshake timeout. Chromium delays TCP by 1.5 times
//! the origin's smoothed RTT, or by 300 ms when it knows none (the mean time to a confirmed QUIC
//! handshake in its field data; `QuicSessionPool::GetTimeDelayForWaitingJob`), and not at all
//! when QUIC to the origin was recently broken. The same here, with:
//!
//! - **the RTT**: the origin's own (the last smoothed RTT of a QUIC or TCP connection to it),
//!   else the client's transport RTT estimate (its network quality estimator, over every
//!   origin), else the 300 ms default;
//! - **a floor** of [`HEAD_START_FLOOR`]: an RTT measures the network, but the QUIC handshake
//!   also costs CPU on both ends (the server's signature, the client's certificate checks, key
//!   derivation) that a TCP connect does not: on loopback or a LAN, 1.5 RTT is tens of
//!   microseconds, less than that work, and TCP would be started for nothing;
//! - **a ceiling** of `ClientConfig::quic_fallback_after` (1 s by default): the longest an
//!   upload waits for QUIC before TCP starts, as before the race. A ceiling below the floor
//!   wins. The QUIC attempt itself may go on for [`QUIC_ATTEMPT_TIMEOUT`] (in the background
//!   once TCP carries the hop), so a slow handshake still gives the origin's later uploads a
//!   pooled connection.
//!
//! # The race
//!
//! QUIC starts; TCP starts when the head start is over or as soon as QUIC fails. The first side
//! that is ready carries the hop. When TCP wins, the reason says what QUIC had got to: an answer
//! from the server (its handshake was slower) or nothing at all (UDP blackholed or filtered, no
//! QUIC listener). When both fail, the hop fails (with TCP's error, as when QUIC is not asked
//! for).

use std::time::{Duration, Instant};

use crate::measure::{HeadStartBasis, RaceReason, RaceWinner};

/// The head start when no RTT is known (Chromium's).
pub(crate) const HEAD_START_DEFAULT: Duration = Duration::from_millis(300);
/// The head start is this many RTTs (Chromium's 1.5: the handshake's one round trip, and half
/// of one for its variance and the work at both ends).
pub(crate) const HEAD_START_RTTS: f64 = 1.5;
/// The shortest head start from a measured RTT (see the module docs, and `docs/profile.md` for
/// the handshake times measured on loopback).
pub(crate) const HEAD_START_FLOOR: Duration = Duration::from_millis(25);

/// How long a raced QUIC attempt may take in all (the handshake timeout of Chromium, whose
/// attempt likewise goes on after TCP won). It only runs in the background after the head
/// start: no upload waits for it.
pub(crate) const QUIC_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the head start is derived from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadStartInputs {
    /// The origin's last smoothed RTT.
    pub origin_rtt: Option<Duration>,
    /// The client's transport RTT estimate.
    pub client_rtt: Option<Duration>,
    /// QUIC to the origin failed before and its broken period is over.
    pub recently_broken: bool,
    /// `quic_fallback_after`.
    pub ceiling: Duration,
}

/// QUIC's head start, and what it came from.
pub(crate) fn head_start(inputs: &HeadStartInputs) -> (Duration, HeadStartBasis) {
    if inputs.recently_broken {
        return (Duration::ZERO, HeadStartBasis::RecentlyBroken);
    }
    let (wait, basis) = match (inputs.origin_rtt, inputs.client_rtt) {
        (Some(rtt), _) => (rtt.mul_f64(HEAD_START_RTTS), HeadStartBasis::OriginRtt),
        (None, Some(rtt)) => (rtt.mul_f64(HEAD_START_RTTS), HeadStartBasis::ClientRtt),
        (None, None) => (HEAD_START_DEFAULT, HeadStartBasis::Default),
    };
    (wait.max(HEAD_START_FLOOR).min(inputs.ceiling), basis)
}

/// What happened to one side of the race.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Running,
    Ready,
    Failed,
}

/// Something the driver saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// The QUIC server's first handshake flight arrived.
    QuicAnswered,
    /// A QUIC connection is ready to carry the hop.
    QuicReady,
    /// The QUIC attempt failed (or gave up).
    QuicFailed,
    /// The driver started TCP (after [`Next::StartTcp`]).
    TcpStarted,
    /// A TCP connection (TLS done) is ready to carry the hop.
    TcpReady,
    /// The TCP attempt failed.
    TcpFailed,
}

/// What the driver does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Start TCP now.
    StartTcp,
    /// Wait for the next event, or until this instant (the end of the head start).
    Wait(Option<Instant>),
    /// This side carries the hop; the other is left (see the driver for what becomes of it).
    Carry(RaceWinner, RaceReason),
    /// Both sides failed.
    BothFailed,
}

/// One race: QUIC started at `start` with `head_start`.
#[derive(Debug, Clone)]
pub(crate) struct Race {
    tcp_at: Instant,
    quic: Side,
    tcp: Option<Side>,
    answered: bool,
}

impl Race {
    /// QUIC started at `start`; TCP is due at `start + head_start`.
    pub(crate) fn new(start: Instant, head_start: Duration) -> Race {
        Race {
            tcp_at: start + head_start,
            quic: Side::Running,
            tcp: None,
            answered: false,
        }
    }

    /// The driver saw `event`. Once a side is ready the race is decided, and later events
    /// change nothing.
    pub(crate) fn on(&mut self, event: Event) {
        if self.quic == Side::Ready || self.tcp == Some(Side::Ready) {
            return;
        }
        match event {
            Event::QuicAnswered => self.answered = true,
            Event::QuicReady => self.quic = Side::Ready,
            Event::QuicFailed => self.quic = Side::Failed,
            Event::TcpStarted => self.tcp = Some(Side::Running),
            Event::TcpReady => self.tcp = Some(Side::Ready),
            Event::TcpFailed => self.tcp = Some(Side::Failed),
        }
    }

    /// What to do at `now`.
    pub(crate) fn next(&self, now: Instant) -> Next {
        if self.quic == Side::Ready {
            let reason = if self.tcp.is_some() {
                RaceReason::Faster
            } else {
                RaceReason::First
            };
            return Next::Carry(RaceWinner::Quic, reason);
        }
        if self.tcp == Some(Side::Ready) {
            let reason = match (self.quic, self.answered) {
                (Side::Failed, _) => RaceReason::Failed,
                (_, true) => RaceReason::HandshakeSlower,
                (_, false) => RaceReason::NoAnswer,
            };
            return Next::Carry(RaceWinner::Tcp, reason);
        }
        match self.tcp {
            Some(Side::Failed) if self.quic == Side::Failed => Next::BothFailed,
            Some(_) => Next::Wait(None),
            None if self.quic == Side::Failed || now >= self.tcp_at => Next::StartTcp,
            None => Next::Wait(Some(self.tcp_at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn inputs() -> HeadStartInputs {
        HeadStartInputs {
            origin_rtt: None,
            client_rtt: None,
            recently_broken: false,
            ceiling: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_head_start_is_one_and_a_half_rtts_of_the_origin_else_of_the_client_else_300_ms() {
        let origin = HeadStartInputs {
            origin_rtt: Some(100 * MS),
            client_rtt: Some(40 * MS),
            ..inputs()
        };
        assert_eq!(head_start(&origin), (150 * MS, HeadStartBasis::OriginRtt));
        let client = HeadStartInputs {
            client_rtt: Some(40 * MS),
            ..inputs()
        };
        assert_eq!(head_start(&client), (60 * MS, HeadStartBasis::ClientRtt));
        assert_eq!(head_start(&inputs()), (300 * MS, HeadStartBasis::Default));
    }

    #[test]
    fn the_head_start_has_a_floor_and_a_ceiling_and_the_ceiling_wins() {
        let loopback = HeadStartInputs {
            origin_rtt: Some(Duration::from_micros(40)),
            ..inputs()
        };
        assert_eq!(
            head_start(&loopback),
            (HEAD_START_FLOOR, HeadStartBasis::OriginRtt)
        );
        let satellite = HeadStartInputs {
            origin_rtt: Some(900 * MS),
            ..inputs()
        };
        assert_eq!(head_start(&satellite).0, Duration::from_secs(1));
        let tight = HeadStartInputs {
            ceiling: 10 * MS,
            ..inputs()
        };
        assert_eq!(head_start(&tight), (10 * MS, HeadStartBasis::Default));
        let below_floor = HeadStartInputs {
            ceiling: 5 * MS,
            origin_rtt: Some(Duration::from_micros(40)),
            ..inputs()
        };
        assert_eq!(head_start(&below_floor).0, 5 * MS);
    }

    #[test]
    fn a_recently_broken_origin_does_not_hold_tcp_back() {
        let retry = HeadStartInputs {
            recently_broken: true,
            origin_rtt: Some(100 * MS),
            ..inputs()
        };
        assert_eq!(
            head_start(&retry),
            (Duration::ZERO, HeadStartBasis::RecentlyBroken)
        );
    }

    fn race() -> (Race, Instant) {
        let t0 = Instant::now();
        (Race::new(t0, 300 * MS), t0)
    }

    #[test]
    fn quic_within_its_head_start_wins_without_tcp() {
        let (mut r, t0) = race();
        assert_eq!(r.next(t0), Next::Wait(Some(t0 + 300 * MS)));
        r.on(Event::QuicAnswered);
        assert_eq!(r.next(t0 + 10 * MS), Next::Wait(Some(t0 + 300 * MS)));
        r.on(Event::QuicReady);
        assert_eq!(
            r.next(t0 + 20 * MS),
            Next::Carry(RaceWinner::Quic, RaceReason::First)
        );
    }

    #[test]
    fn tcp_starts_after_the_head_start_and_quic_can_still_win() {
        let (mut r, t0) = race();
        assert_eq!(r.next(t0 + 299 * MS), Next::Wait(Some(t0 + 300 * MS)));
        assert_eq!(r.next(t0 + 300 * MS), Next::StartTcp);
        r.on(Event::TcpStarted);
        assert_eq!(r.next(t0 + 301 * MS), Next::Wait(None));
        r.on(Event::QuicReady);
        assert_eq!(
            r.next(t0 + 310 * MS),
            Next::Carry(RaceWinner::Quic, RaceReason::Faster)
        );
    }

    #[test]
    fn tcp_first_says_whether_quic_had_heard_back() {
        for (answered, reason) in [
            (false, RaceReason::NoAnswer),
            (true, RaceReason::HandshakeSlower),
        ] {
            let (mut r, t0) = race();
            if answered {
                r.on(Event::QuicAnswered);
            }
            assert_eq!(r.next(t0 + 300 * MS), Next::StartTcp);
            r.on(Event::TcpStarted);
            r.on(Event::TcpReady);
            assert_eq!(r.next(t0 + 302 * MS), Next::Carry(RaceWinner::Tcp, reason));
            // A QUIC connection that completes later does not take the hop back.
            r.on(Event::QuicReady);
            assert_eq!(r.next(t0 + 303 * MS), Next::Carry(RaceWinner::Tcp, reason));
        }
    }

    #[test]
    fn a_failed_quic_starts_tcp_at_once_and_tcp_then_carries_it() {
        let (mut r, t0) = race();
        r.on(Event::QuicFailed);
        assert_eq!(r.next(t0 + 5 * MS), Next::StartTcp);
        r.on(Event::TcpStarted);
        assert_eq!(r.next(t0 + 6 * MS), Next::Wait(None));
        r.on(Event::TcpReady);
        assert_eq!(
            r.next(t0 + 9 * MS),
            Next::Carry(RaceWinner::Tcp, RaceReason::Failed)
        );
    }

    #[test]
    fn a_failed_tcp_waits_for_quic_and_both_failing_ends_the_race() {
        let (mut r, t0) = race();
        r.on(Event::TcpStarted);
        r.on(Event::TcpFailed);
        assert_eq!(r.next(t0 + 400 * MS), Next::Wait(None));
        let mut won = r.clone();
        won.on(Event::QuicReady);
        assert_eq!(
            won.next(t0 + 500 * MS),
            Next::Carry(RaceWinner::Quic, RaceReason::Faster)
        );
        r.on(Event::QuicFailed);
        assert_eq!(r.next(t0 + 1000 * MS), Next::BothFailed);
    }

    #[test]
    fn a_zero_head_start_starts_tcp_with_quic() {
        let t0 = Instant::now();
        let r = Race::new(t0, Duration::ZERO);
        assert_eq!(r.next(t0), Next::StartTcp);
    }
}
