//! What the peer of a shared TCP connection has acknowledged, per stream.
//!
//! # Why
//!
//! On HTTP/1.1 one connection carries one request at a time, so "body bytes acknowledged" is the
//! connection's acknowledged byte count minus the head. Over h2 several streams share one TCP
//! byte stream, interleaved frame by frame, under TLS records: the kernel's counters
//! (`tcpi_bytes_acked`, `TX_ACK` stamps) speak of *offsets in the connection's TCP byte stream*,
//! and each stream needs its own answer — how many of its body bytes the peer has, and when the
//! last one was acknowledged.
//!
//! This is the sans-IO half of that answer. The writer side tells it, per stream, where its
//! body bytes went in the TCP byte stream ([`ConnectionAcks::mark`]: "once the peer has
//! acknowledged `offset` bytes, it has `body` body bytes of stream `id`", and
//! [`ConnectionAcks::finish`] for the offset that ends the record carrying the stream's last
//! body byte). The poller tells it what the kernel said ([`ConnectionAcks::acknowledged`]: the
//! peer has acknowledged `offset` bytes; [`ConnectionAcks::stamp`]: a `TX_ACK` stamp says bytes up
//! to `offset` were acknowledged at `at`). Each stream then has its acknowledged body bytes
//! (never more than the peer has: between marks it interpolates and rounds down) and, once its
//! last byte is covered, the time that happened ([`AckedEnd`]).
//!
//! Offsets are the connection's TCP payload bytes counted from its first byte, as the socket
//! layer counts them; nothing here reads a socket or a clock.
//!
//! # Exact and polled ends
//!
//! The writer makes the write that ends a stream's body end exactly at [`finish`]'s offset and
//! asks the kernel to stamp it, so normally a stamp with exactly that offset arrives: the end is
//! *exact*. If none does (the kernel refused the stamp, or the queue overflowed), the first poll
//! that sees the offset acknowledged stands in, with the time of that poll (or of an earlier
//! stamp of a later offset, if one covers it): not exact. A poller that reads the counters
//! *before* taking the stamps off the queue never mistakes the second case for the first (the
//! kernel queues a stamp while it processes the acknowledgement the counters then show); and
//! since several pollers share a connection (one may apply the counters while another still
//! holds the stamp it took), a stamp of exactly the end replaces a polled end whenever it comes.
//!
//! [`finish`]: ConnectionAcks::finish

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// Most marks kept per stream; past it the newest mark replaces the last one (progress between
/// them is interpolated, so only its granularity suffers).
const MAX_MARKS: usize = 4096;
/// Most stamps remembered for streams whose end is registered after the stamp was read.
const MAX_STAMPS: usize = 64;

/// When the peer acknowledged a stream's last body byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AckedEnd {
    /// The acknowledgement's time.
    pub at: Instant,
    /// `true`: the kernel's stamp of exactly that byte; `false`: the first poll that saw it
    /// acknowledged (or a stamp of a later byte), an upper bound.
    pub exact: bool,
}

/// One stream's acknowledged state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StreamAcked {
    /// Body bytes the peer has acknowledged.
    pub body: u64,
    /// When the last body byte was acknowledged, once it was.
    pub end: Option<AckedEnd>,
}

#[derive(Debug, Default)]
struct StreamEntry {
    /// `(offset, body)` marks in increasing order, not yet reached.
    marks: VecDeque<(u64, u64)>,
    /// The last mark reached (interpolation starts there).
    reached: (u64, u64),
    /// Offset that ends the record with the last body byte, and the body size.
    end_offset: Option<u64>,
    acked: StreamAcked,
}

/// The acknowledged state of every tracked stream of one connection.
#[derive(Debug, Default)]
pub(crate) struct ConnectionAcks {
    streams: HashMap<u32, StreamEntry>,
    /// Offset the peer has acknowledged, per the counters.
    acked: u64,
    /// Recent stamps, `(offset, at)`, oldest first.
    stamps: VecDeque<(u64, Instant)>,
}

impl ConnectionAcks {
    /// Start tracking stream `id` (before any of its body is written).
    pub(crate) fn track(&mut self, id: u32) {
        self.streams.entry(id).or_default();
    }

    /// Whether stream `id` is tracked.
    pub(crate) fn is_tracked(&self, id: u32) -> bool {
        self.streams.contains_key(&id)
    }

    /// Stop tracking stream `id`.
    pub(crate) fn forget(&mut self, id: u32) {
        self.streams.remove(&id);
    }

    /// Stream `id` has `body` body bytes in the TCP byte stream once `offset` bytes of it are
    /// acknowledged. Ignored for untracked streams and marks that do not move forward.
    pub(crate) fn mark(&mut self, id: u32, offset: u64, body: u64) {
        let acked = self.acked;
        let Some(entry) = self.streams.get_mut(&id) else {
            return;
        };
        let last = entry.marks.back().copied().unwrap_or(entry.reached);
        if body <= last.1 || offset < last.0 {
            return;
        }
        if entry.marks.len() >= MAX_MARKS {
            entry.marks.pop_back();
        }
        entry.marks.push_back((offset, body));
        entry.advance(acked);
    }

    /// Stream `id`'s last body byte (of `body`) is in the record that ends at `offset`.
    pub(crate) fn finish(&mut self, id: u32, offset: u64, body: u64) {
        self.mark(id, offset, body);
        let Some(entry) = self.streams.get_mut(&id) else {
            return;
        };
        if entry.end_offset.is_some() {
            return;
        }
        entry.end_offset = Some(offset);
        // The stamp may have been read before the end was known (on loopback the peer can
        // acknowledge within the write call).
        let exact = self
            .stamps
            .iter()
            .find(|(o, _)| *o == offset)
            .map(|&(_, at)| at);
        if let Some(at) = exact {
            entry.acked.body = entry.acked.body.max(body);
            entry.acked.end = Some(AckedEnd { at, exact: true });
        }
    }

    /// The kernel stamped the acknowledgement of the bytes before `offset` at `at`.
    pub(crate) fn stamp(&mut self, offset: u64, at: Instant) {
        if self.stamps.len() >= MAX_STAMPS {
            self.stamps.pop_front();
        }
        self.stamps.push_back((offset, at));
        for entry in self.streams.values_mut() {
            // Also replaces a polled end: two pollers may take the counters and the stamps in
            // turn (one saw the end acknowledged, the other holds its stamp), and the stamp is
            // the exact answer.
            let exact = entry.acked.end.is_some_and(|e| e.exact);
            if !exact && entry.end_offset == Some(offset) {
                entry.advance(offset);
                entry.acked.end = Some(AckedEnd { at, exact: true });
            }
        }
    }

    /// The counters say the peer has acknowledged `offset` bytes, read at `now` (before the
    /// stamps queued so far were taken, see the module docs).
    pub(crate) fn acknowledged(&mut self, offset: u64, now: Instant) {
        self.acked = self.acked.max(offset);
        let acked = self.acked;
        for entry in self.streams.values_mut() {
            entry.advance(acked);
            let Some(end) = entry.end_offset else {
                continue;
            };
            if entry.acked.end.is_none() && acked >= end {
                // No stamp of exactly the end: a stamp of a later byte, or this poll, bounds it.
                let stamped = self
                    .stamps
                    .iter()
                    .filter(|(o, _)| *o >= end)
                    .map(|&(_, at)| at)
                    .min();
                let at = stamped.map_or(now, |s| s.min(now));
                entry.acked.end = Some(AckedEnd { at, exact: false });
            }
        }
    }

    /// Whether a stamp on the error queue may answer a tracked stream now that the counters show
    /// `acked`: some stream still lacks an exact end, and its end is acknowledged (or not known
    /// yet). When not, reading the queue can only find nothing (issue 15: the reads that came
    /// back empty were two system calls per small h2 upload).
    pub(crate) fn wants_stamp(&self, acked: u64) -> bool {
        self.streams.values().any(|e| {
            !e.acked.end.is_some_and(|end| end.exact) && e.end_offset.is_none_or(|end| end <= acked)
        })
    }

    /// Stream `id`'s acknowledged state (all zero if it is not tracked).
    pub(crate) fn stream(&self, id: u32) -> StreamAcked {
        self.streams.get(&id).map(|e| e.acked).unwrap_or_default()
    }

    /// The offset the counters last showed acknowledged.
    pub(crate) fn acked(&self) -> u64 {
        self.acked
    }
}

impl StreamEntry {
    /// Move this stream's acknowledged body bytes up to what `acked` offset covers.
    fn advance(&mut self, acked: u64) {
        while let Some(&(offset, body)) = self.marks.front() {
            if offset > acked {
                break;
            }
            self.reached = (offset, body);
            self.acked.body = self.acked.body.max(body);
            self.marks.pop_front();
        }
        // Between two marks the stream's bytes are spread over the connection's bytes at some
        // ratio (other streams' frames, record overhead): interpolate, rounding down.
        if let Some(&(next_offset, next_body)) = self.marks.front() {
            let (offset, body) = self.reached;
            if next_offset > offset && next_body > body && acked > offset {
                let part = (acked - offset) as u128 * (next_body - body) as u128
                    / (next_offset - offset) as u128;
                self.acked.body = self.acked.body.max(body + part as u64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn a_stamp_is_wanted_only_once_an_unstamped_end_is_acknowledged() {
        let base = Instant::now();
        let mut acks = ConnectionAcks::default();
        assert!(!acks.wants_stamp(1000), "nothing tracked");
        acks.track(1);
        assert!(acks.wants_stamp(0), "its end is not known yet");
        acks.finish(1, 600, 200);
        assert!(!acks.wants_stamp(599), "its end is not acknowledged yet");
        assert!(acks.wants_stamp(600));
        acks.acknowledged(600, t(base, 1));
        assert!(
            acks.wants_stamp(600),
            "a polled end still wants the exact stamp"
        );
        acks.stamp(600, t(base, 0));
        assert!(!acks.wants_stamp(600), "stamped");
        acks.track(3);
        acks.finish(3, 900, 100);
        assert!(!acks.wants_stamp(800));
        assert!(acks.wants_stamp(900));
        acks.forget(3);
        assert!(!acks.wants_stamp(900));
    }

    #[test]
    fn two_streams_on_one_connection_each_get_their_own_bytes_and_end() {
        let base = Instant::now();
        let mut acks = ConnectionAcks::default();
        acks.track(1);
        acks.track(3);
        // Interleaved: 1 has 100 body bytes by offset 200, 3 has 100 by 400, ...
        acks.mark(1, 200, 100);
        acks.mark(3, 400, 100);
        acks.finish(1, 600, 200);
        acks.finish(3, 800, 200);
        assert_eq!(acks.stream(1), StreamAcked::default());

        acks.acknowledged(300, t(base, 1));
        assert_eq!(acks.stream(1).body, 125, "interpolated between 200 and 600");
        assert_eq!(acks.stream(3).body, 75, "interpolated between 0 and 400");

        acks.stamp(600, t(base, 2));
        acks.acknowledged(600, t(base, 3));
        let one = acks.stream(1);
        assert_eq!(one.body, 200);
        assert_eq!(
            one.end,
            Some(AckedEnd {
                at: t(base, 2),
                exact: true
            })
        );
        assert_eq!(acks.stream(3).body, 150);
        assert_eq!(acks.stream(3).end, None);

        // Stream 3's stamp never came: the poll that sees its end stands in.
        acks.acknowledged(900, t(base, 9));
        let three = acks.stream(3);
        assert_eq!(three.body, 200);
        assert_eq!(
            three.end,
            Some(AckedEnd {
                at: t(base, 9),
                exact: false
            })
        );
    }

    #[test]
    fn a_stamp_read_before_the_end_was_registered_still_counts() {
        let base = Instant::now();
        let mut acks = ConnectionAcks::default();
        acks.track(5);
        acks.stamp(1000, t(base, 4));
        acks.acknowledged(1000, t(base, 5));
        acks.finish(5, 1000, 900);
        assert_eq!(
            acks.stream(5),
            StreamAcked {
                body: 900,
                end: Some(AckedEnd {
                    at: t(base, 4),
                    exact: true
                })
            }
        );
    }

    /// Two pollers: one applies the counters showing the end acknowledged while the other
    /// still holds the end's stamp; the stamp, applied last, is the answer.
    #[test]
    fn a_stamp_applied_after_the_poll_replaces_the_polled_end() {
        let base = Instant::now();
        let mut acks = ConnectionAcks::default();
        acks.track(1);
        acks.finish(1, 500, 400);
        acks.acknowledged(500, t(base, 9));
        assert_eq!(acks.stream(1).end.map(|e| e.exact), Some(false));
        acks.stamp(500, t(base, 4));
        assert_eq!(
            acks.stream(1).end,
            Some(AckedEnd {
                at: t(base, 4),
                exact: true
            })
        );
        // A later stamp of another offset changes nothing.
        acks.stamp(900, t(base, 12));
        assert_eq!(acks.stream(1).end.map(|e| e.at), Some(t(base, 4)));
    }

    #[test]
    fn a_later_stamp_bounds_an_end_without_its_own() {
        let base = Instant::now();
        let mut acks = ConnectionAcks::default();
        acks.track(1);
        acks.finish(1, 500, 400);
        acks.stamp(700, t(base, 3));
        acks.acknowledged(700, t(base, 8));
        assert_eq!(
            acks.stream(1).end,
            Some(AckedEnd {
                at: t(base, 3),
                exact: false
            })
        );
    }

    #[test]
    fn untracked_streams_and_backward_marks_are_ignored() {
        let mut acks = ConnectionAcks::default();
        acks.mark(7, 100, 50);
        assert!(!acks.is_tracked(7));
        acks.track(7);
        acks.mark(7, 100, 50);
        acks.mark(7, 90, 60); // offset went back: ignored
        acks.mark(7, 120, 50); // no new body: ignored
        acks.acknowledged(1000, Instant::now());
        assert_eq!(acks.stream(7).body, 50);
        acks.forget(7);
        assert_eq!(acks.stream(7), StreamAcked::default());
    }

    #[test]
    fn marks_stay_bounded_and_progress_never_overstates() {
        let mut acks = ConnectionAcks::default();
        acks.track(1);
        for i in 1..=(3 * MAX_MARKS as u64) {
            acks.mark(1, i * 10, i * 8);
        }
        assert!(acks.streams[&1].marks.len() <= MAX_MARKS);
        for acked in [5, 10, 9_999, 20_000, 30_000, 40_960, 1 << 20] {
            acks.acknowledged(acked, Instant::now());
            // Each acknowledged byte carries at most 0.8 body bytes here.
            assert!(acks.stream(1).body * 10 <= acked.min(3 * MAX_MARKS as u64 * 10) * 8);
        }
        assert_eq!(acks.stream(1).body, 3 * MAX_MARKS as u64 * 8);
    }

    #[test]
    fn stamps_memory_is_bounded() {
        let mut acks = ConnectionAcks::default();
        let now = Instant::now();
        for i in 0..1000 {
            acks.stamp(i, now);
        }
        assert_eq!(acks.stamps.len(), MAX_STAMPS);
    }
}
